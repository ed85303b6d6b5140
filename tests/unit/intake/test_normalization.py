"""Normalization: HTML, Unicode, whitespace, quoted replies, vocabularies and size limits."""

from __future__ import annotations

import pytest

from riskrelay.intake.errors import FieldTooLargeError, UnknownVocabularyError
from riskrelay.intake.normalization import (
    CHANNELS,
    PRIORITIES,
    enforce_size_limit,
    html_to_text,
    normalize_tags,
    normalize_text,
    normalize_whitespace,
    strip_quoted_reply,
)

pytestmark = pytest.mark.unit


def test_html_is_stripped_and_entities_unescaped() -> None:
    html = "<p>Hello&nbsp;<b>team</b> &amp; co</p><p>second</p><script>alert(1)</script>"
    assert normalize_text(html) == "Hello team & co\n\nsecond"


def test_html_blockquote_content_is_dropped_as_quoted_reply() -> None:
    html = "<div>My card was charged twice.</div><blockquote>On Monday you wrote: all fine</blockquote>"
    assert normalize_text(html) == "My card was charged twice."


def test_plain_text_with_angle_brackets_is_not_treated_as_html() -> None:
    assert html_to_text("a < b and c > d") == "a < b and c > d"


def test_nfkc_folds_fullwidth_and_ligatures_and_drops_zero_width() -> None:
    assert (
        normalize_whitespace("ｓｅｃｕｒｉｔｙ ﬁle\u200bname ４１１１") == "security filename 4111"
    )


def test_typographic_apostrophes_become_ascii() -> None:
    assert normalize_whitespace("I can’t log in") == "I can't log in"


def test_whitespace_runs_and_blank_lines_collapse() -> None:
    assert normalize_whitespace("  a \t  b \r\n\r\n\r\n\r\nc  ") == "a b\n\nc"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("New text\n> old line\n> older", "New text"),
        ("New text\n\nOn Mon, 3 Mar 2025 at 09:00, Support <s@x.io> wrote:\nold stuff", "New text"),
        ("New text\n\nOn Mon, 3 Mar 2025 at 09:00, Support\n<s@x.io> wrote:\nold", "New text"),
        ("New text\n-----Original Message-----\nFrom: someone\nold", "New text"),
        ("Neu\nAm 03.03.2025 um 09:00 schrieb Support <s@x.io>:\nalt", "Neu"),
    ],
)
def test_quoted_replies_are_removed(text: str, expected: str) -> None:
    assert strip_quoted_reply(text).strip() == expected


def test_a_message_that_is_only_a_quote_is_kept() -> None:
    assert strip_quoted_reply("> only quoted") == "> only quoted"


def test_text_without_quotes_is_untouched() -> None:
    text = "Our data was exposed, 2 > 1"
    assert strip_quoted_reply(text) == text


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("e-mail", "email"),
        ("Mail", "email"),
        ("EMAIL", "email"),
        ("livechat", "chat"),
        ("Live Chat", "chat"),
        ("messenger", "chat"),
        ("voice", "phone"),
        ("call", "phone"),
        ("portal", "web"),
        ("form", "web"),
        ("Web Form", "web"),
        ("webform", "web"),
        ("twitter", "social"),
        ("X", "social"),
        ("facebook", "social"),
        ("api", "api"),
    ],
)
def test_channel_synonyms(raw: str, canonical: str) -> None:
    assert CHANNELS.normalize(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("urgent", "urgent"),
        ("Critical", "urgent"),
        ("P1", "urgent"),
        ("high", "high"),
        ("p2", "high"),
        ("normal", "normal"),
        ("medium", "normal"),
        ("p3", "normal"),
        ("low", "low"),
        ("P4", "low"),
    ],
)
def test_priority_synonyms(raw: str, canonical: str) -> None:
    assert PRIORITIES.normalize(raw) == canonical


def test_unknown_channel_is_a_clear_error() -> None:
    with pytest.raises(UnknownVocabularyError) as caught:
        CHANNELS.normalize("pigeon")
    assert caught.value.field == "channel"
    assert "pigeon" in str(caught.value)
    assert "email" in str(caught.value)


def test_unknown_priority_is_a_clear_error() -> None:
    with pytest.raises(UnknownVocabularyError, match="priority: unknown value 'p9'"):
        PRIORITIES.normalize("p9")


def test_vocabulary_can_be_extended_by_configuration() -> None:
    extended = CHANNELS.extended({"carrier pigeon": "email"})
    assert extended.normalize("Carrier-Pigeon") == "email"
    with pytest.raises(ValueError, match="unknown"):
        CHANNELS.extended({"fax": "telefax"})


def test_size_limit_rejects_with_field_and_limit() -> None:
    enforce_size_limit("description", "x" * 10, 10)
    with pytest.raises(FieldTooLargeError) as caught:
        enforce_size_limit("description", "x" * 11, 10)
    assert caught.value.field == "description"
    assert caught.value.limit == 10
    assert caught.value.size == 11
    assert "over the limit of 10" in str(caught.value)


def test_tags_are_lowercased_trimmed_and_deduplicated() -> None:
    assert normalize_tags([" VIP ", "vip", "Billing", ""]) == ["vip", "billing"]
