"""Text and vocabulary normalization: the first step of intake, before redaction and detection.

Why each step exists:

* HTML is stripped with ``nh3`` (the Rust ``ammonia`` sanitizer) rather than a regex, because
  helpdesk bodies are real-world HTML with comments, entities and broken markup. Script, style
  and blockquote *content* is dropped: blockquotes are how mail clients quote earlier replies.
* NFKC folds look-alike characters (full-width digits, ligatures, non-breaking spaces) so the
  redaction and rule regexes see one spelling of ``４１１１`` or ``ｓｅｃｕｒｉｔｙ``.
* Quoted replies are removed so a follow-up is judged on what it adds, not on the whole thread
  it quotes (which intake has already seen).
* Channel and priority arrive in every helpdesk's own words; an unknown value is rejected with
  the list of accepted ones, never guessed.
* Size limits reject a body outright, naming the field and the limit: silently truncating could
  cut off exactly the sentence that carries the risk.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

import nh3

from riskrelay.intake.errors import FieldTooLargeError, UnknownVocabularyError

# ---------------------------------------------------------------------------------------------
# Size limits
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SizeLimits:
    """Largest raw (pre-normalization) text intake accepts, per field, in characters.

    The defaults equal the upstream contract's own limits; operators may lower them.
    """

    subject: int = 2_000
    description: int = 200_000
    comment: int = 200_000
    risk_flag_description: int = 4_000


DEFAULT_SIZE_LIMITS = SizeLimits()


def enforce_size_limit(field_name: str, text: str, limit: int) -> None:
    """Raise :class:`FieldTooLargeError` when ``text`` is longer than ``limit`` characters."""
    if len(text) > limit:
        raise FieldTooLargeError(field_name, len(text), limit)


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------

_HTML_HINT = re.compile(r"<[a-zA-Z!/][^>]*>|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]{2,8});")
# Block-level boundaries become line breaks before tags are stripped; otherwise "<p>a</p><p>b</p>"
# would read "ab" and quoted-reply and footer detection (which work on lines) would miss them.
_HTML_BLOCK_BOUNDARY = re.compile(
    r"<br\s*/?>|</?(?:p|div|li|ul|ol|tr|table|h[1-6]|pre|hr)\b[^>]*>", re.IGNORECASE
)
_DROPPED_CONTENT_TAGS = {"script", "style", "blockquote", "head", "title"}

# Zero-width characters are dropped (they can hide a word from a regex) and typographic quotes
# become ASCII so one apostrophe spelling of "can't" reaches the rules.
_CHARACTER_FOLDS: dict[int, str | None] = {
    **dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None),
    **dict.fromkeys(map(ord, "\u2018\u2019\u201b\u2032"), "'"),
    **dict.fromkeys(map(ord, "\u201c\u201d\u201f\u2033"), '"'),
}
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")


def looks_like_html(text: str) -> bool:
    return _HTML_HINT.search(text) is not None


def html_to_text(text: str) -> str:
    """Strip markup, keep the text; plain text passes through unchanged (and cheaply)."""
    if not looks_like_html(text):
        return text
    with_breaks = _HTML_BLOCK_BOUNDARY.sub("\n", text)
    cleaned = nh3.clean(
        with_breaks, tags=set(), attributes={}, clean_content_tags=_DROPPED_CONTENT_TAGS
    )
    return html.unescape(cleaned)


def normalize_whitespace(text: str) -> str:
    """NFKC-fold, drop zero-width characters, collapse runs of spaces and blank lines."""
    # ASCII is already NFKC and holds none of the folded characters.
    folded = (
        text if text.isascii() else unicodedata.normalize("NFKC", text).translate(_CHARACTER_FOLDS)
    )
    folded = folded.replace("\r\n", "\n").replace("\r", "\n")
    folded = _SPACE_AROUND_NEWLINE.sub("\n", _HORIZONTAL_SPACE.sub(" ", folded))
    return _MANY_BLANK_LINES.sub("\n\n", folded).strip()


# A quote header ends the new part of a message: everything from it on is the quoted thread.
# "On <date>, <name> wrote:" may wrap onto a second line in Gmail, hence the optional line.
_QUOTE_HEADER = re.compile(
    r"^(?:"
    r"-{2,}\s*(?:original message|forwarded message)\s*-{2,}"
    r"|_{10,}\s*$\n^from:"
    r"|on\b[^\n]{0,300}(?:\n[^\n]{0,300})?\bwrote:\s*$"
    r"|am\b[^\n]{0,300}(?:\n[^\n]{0,300})?\bschrieb[^\n]{0,100}:\s*$"
    r"|le\b[^\n]{0,300}(?:\n[^\n]{0,300})?\ba écrit\s*:\s*$"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTED_LINE = re.compile(r"^[ \t]*>.*(?:\n|$)", re.MULTILINE)


def strip_quoted_reply(text: str) -> str:
    """Remove ``>``-quoted lines and everything after a reply/forward header.

    If nothing would be left (a message that is only a quote) the text is kept as it is: it is
    all the evidence there is.
    """
    if ">" not in text and not _QUOTE_HEADER.search(text):
        return text
    header = _QUOTE_HEADER.search(text)
    kept = text[: header.start()] if header else text
    kept = _QUOTED_LINE.sub("", kept).strip()
    return kept or text


def normalize_text(text: str) -> str:
    """Everything a free-text field goes through before redaction: HTML, Unicode, quotes."""
    cleaned = normalize_whitespace(html_to_text(text))
    unquoted = strip_quoted_reply(cleaned)
    # Whitespace normalization is idempotent: only text the quote stripping changed needs it again.
    return cleaned if unquoted is cleaned else normalize_whitespace(unquoted)


# ---------------------------------------------------------------------------------------------
# Vocabularies
# ---------------------------------------------------------------------------------------------

_VOCABULARY_KEY_NOISE = re.compile(r"[\s_\-./]+")


def vocabulary_key(value: str) -> str:
    """Case- and separator-insensitive key, so "E-Mail", "e_mail" and "email" compare equal."""
    return _VOCABULARY_KEY_NOISE.sub("", unicodedata.normalize("NFKC", value).casefold())


@dataclass(frozen=True)
class Vocabulary:
    """A closed set of canonical values plus synonyms that map onto them."""

    field_name: str
    canonical: frozenset[str]
    synonyms: Mapping[str, str] = field(default_factory=dict)
    _lookup: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lookup = {vocabulary_key(value): value for value in self.canonical}
        for synonym, target in self.synonyms.items():
            if target not in self.canonical:
                raise ValueError(f"synonym {synonym!r} maps to unknown {target!r}")
            lookup[vocabulary_key(synonym)] = target
        object.__setattr__(self, "_lookup", lookup)

    def normalize(self, value: str) -> str:
        """The canonical value for ``value``; :class:`UnknownVocabularyError` if there is none."""
        canonical = self._lookup.get(vocabulary_key(value))
        if canonical is None:
            raise UnknownVocabularyError(self.field_name, value, self.canonical)
        return canonical

    def extended(self, extra_synonyms: Mapping[str, str]) -> Vocabulary:
        """A copy with more synonyms (for operator configuration)."""
        return Vocabulary(self.field_name, self.canonical, {**self.synonyms, **extra_synonyms})


CHANNELS = Vocabulary(
    "channel",
    frozenset({"email", "chat", "phone", "web", "social", "api"}),
    {
        "mail": "email",
        "e-mail": "email",
        "livechat": "chat",
        "messenger": "chat",
        "messaging": "chat",
        "whatsapp": "chat",
        "sms": "chat",
        "voice": "phone",
        "call": "phone",
        "telephone": "phone",
        "portal": "web",
        "form": "web",
        "webform": "web",
        "web widget": "web",
        "help center": "web",
        "twitter": "social",
        "x": "social",
        "facebook": "social",
        "instagram": "social",
    },
)

PRIORITIES = Vocabulary(
    "priority",
    frozenset({"low", "normal", "high", "urgent"}),
    {
        "critical": "urgent",
        "p1": "urgent",
        "p2": "high",
        "medium": "normal",
        "p3": "normal",
        "p4": "low",
    },
)


def normalize_tags(tags: list[str]) -> list[str]:
    """Lower-case, trimmed, de-duplicated tags in their original order."""
    seen: dict[str, None] = {}
    for tag in tags:
        cleaned = normalize_whitespace(tag).casefold()
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)
