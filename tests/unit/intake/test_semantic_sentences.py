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
    text = "Hi team. My card was stolen yesterday! Can you block it?\nThanks for the help"
    assert split_sentences(text) == [
        "Hi team.",
        "My card was stolen yesterday!",
        "Can you block it?",
        "Thanks for the help",
    ]


def test_fragments_join_the_next_sentence() -> None:
    assert split_sentences("Help!! My phone was stolen.") == ["Help!! My phone was stolen."]
    assert split_sentences("Hi,\n[NAME] here. Someone used my card") == [
        "Hi, [NAME] here.",
        "Someone used my card",
    ]


def test_bounds_on_count_and_length() -> None:
    many = " ".join(f"Sentence number {i} is here." for i in range(100))
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
    text = "This is not a complaint about the app. But my card was used in another country."
    assert list(scorable_sentences(text)) == ["But my card was used in another country."]
