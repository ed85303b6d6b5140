"""Sentences the indicator models score, and denials that must never trigger them."""

from __future__ import annotations

import pytest

from riskrelay.intake.semantic.sentences import (
    MAX_SENTENCE_CHARS,
    MAX_SENTENCES,
    denies_risk,
    scorable_sentences,
    split_sentences,
)

pytestmark = pytest.mark.unit


def test_splits_on_sentence_punctuation_and_lines() -> None:
    text = (
        "Hi team, I hope you are well today. My debit card was stolen from my bag yesterday!"
        " Can you please block it right away?\nThanks a lot for all the help"
    )
    assert split_sentences(text) == [
        "Hi team, I hope you are well today.",
        "My debit card was stolen from my bag yesterday!",
        "Can you please block it right away?",
        "Thanks a lot for all the help",
    ]


def test_short_sentences_are_read_with_their_context() -> None:
    assert split_sentences("Help!! My phone was stolen.") == ["Help!! My phone was stolen."]
    assert split_sentences("My old bank had it. Your app does not have round-ups yet?") == [
        "My old bank had it. Your app does not have round-ups yet?"
    ]
    assert split_sentences("card stolen") == ["card stolen"]


def test_bounds_on_count_and_length() -> None:
    many = " ".join(f"This is sentence number {i} of the message." for i in range(300))
    assert len(split_sentences(many)) == MAX_SENTENCES
    long = "word " * 1_000
    assert all(len(s) <= MAX_SENTENCE_CHARS for s in split_sentences(long))


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "!!!", "🙂🙂"])
def test_empty_or_wordless_text_has_no_sentences(text: str) -> None:
    assert split_sentences(text) == []


@pytest.mark.parametrize(
    "sentence",
    [
        "This is not a security issue, I just want to update my email.",
        "It's not a data breach or anything.",
        "No data was exposed, I only have a question.",
        "Nothing was stolen.",
        "None of my details were leaked as far as I know.",
        "My account wasn't hacked, I just forgot the password.",
        "I'm not going to post about it online, just tell me when it ships.",
        "Just a quick question about the invoice.",
        "I checked and there has been no unauthorised access on the account.",
    ],
)
def test_denials_are_not_scored(sentence: str) -> None:
    assert denies_risk(sentence)
    assert list(scorable_sentences(sentence)) == []


@pytest.mark.parametrize(
    "sentence",
    [
        "There is a charge on my card that I did not make.",
        "Someone I don't know has used my card without permission.",
        "I never authorised this transfer.",
        "My phone was stolen.",
        "I can't log in and my email was changed by someone else.",
        "We will go to the press if this is not fixed.",
    ],
)
def test_negated_reports_are_still_scored(sentence: str) -> None:
    assert not denies_risk(sentence)


def test_only_the_denying_sentence_is_dropped() -> None:
    text = "This is not a complaint about the app at all. But my card was used in another country."
    assert list(scorable_sentences(text)) == ["But my card was used in another country."]


def test_only_the_customers_words_are_read() -> None:
    transcript = (
        "Bot: Welcome to live chat. An agent will be with you shortly.\n"
        "Customer: my card was used in a shop I have never been to\n"
        "Agent: Thanks, let me take a look at that for you.\n"
        "Full name: [NAME]\n"
        "Phone: [PHONE]"
    )
    assert split_sentences(transcript) == ["my card was used in a shop I have never been to"]


def test_a_subject_repeating_the_description_is_read_once() -> None:
    assert split_sentences("my visa got stolen\n\nmy visa got stolen") == ["my visa got stolen"]
    assert split_sentences("Card stolen\n\nCard stolen at the station this morning") == [
        "Card stolen at the station this morning"
    ]
