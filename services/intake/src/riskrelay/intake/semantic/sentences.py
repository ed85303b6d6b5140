"""Sentences of a ticket, and the ones that deny a risk rather than report it.

The indicator models score each sentence on its own, so a risk buried in the middle of a long
e-mail is not averaged away by the pleasantries around it, and a sentence that *denies* a risk
("this is not a security issue", "no data was exposed") is left out before scoring: sentence
encoders place "X happened" and "X did not happen" close together, so negation is handled
here, per sentence, with a few explicit patterns. Negated *reports* stay in ("a charge I did
not make", "someone I don't know used my card"): only denials of the risk itself are removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MAX_SENTENCES = 24
MAX_SENTENCE_CHARS = 600
_MIN_WORDS = 2

_BREAK = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n+|\s+[-–—]\s+(?=[A-Z])")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")

_RISK_NOUNS = (
    r"(?:security|privacy|data|fraud|legal|compliance|safety|gdpr|hipaa|pci|regulatory)?\s*"
    r"(?:issue|problem|concern|breach|incident|leak|matter|complaint|emergency|risk|question)"
)
_DENIALS = re.compile(
    "|".join(
        (
            # "this is not a security issue", "it's not a data breach", "not a legal question"
            rf"\b(?:is|was|it'?s|this'?s|that'?s|not|isn'?t|wasn'?t)\s+(?:not\s+)?(?:really\s+)?"
            rf"(?:a|an|any)\s+{_RISK_NOUNS}\b",
            rf"\b(?:no|not\s+an?|not\s+any)\s+{_RISK_NOUNS}\b",
            # "no data was exposed", "nothing was stolen", "none of my details were leaked"
            r"\b(?:no|none\s+of\s+(?:my|our|the))\s+(?:\w+\s+){0,2}(?:was|were|has\s+been|"
            r"have\s+been|got|is|are)\s+(?:\w+\s+)?(?:exposed|leaked|stolen|accessed|"
            r"compromised|affected|shared|lost|breached|hacked)\b",
            r"\bnothing\s+(?:was|has\s+been|got|is)\s+(?:\w+\s+)?(?:stolen|taken|leaked|exposed|"
            r"compromised|accessed|lost|hacked|charged)\b",
            # "I'm not going to post about it", "we won't be suing anyone"
            r"\b(?:not|never|won'?t|wouldn'?t)\s+(?:going\s+to\s+|planning\s+to\s+|be\s+)?"
            r"(?:post|posting|sue|suing|complain|complaining|report|reporting|tweet|review)\b"
            r".{0,40}\b(?:anywhere|anyone|publicly|online|about\s+(?:it|this))\b",
            # "I was not hacked", "my account wasn't compromised"
            r"\b(?:was|were|has|have|is|are)(?:\s+not|n'?t)\s+(?:been\s+)?(?:hacked|compromised|"
            r"breached|leaked|exposed|stolen)\b",
            r"\b(?:just|only|simply)\s+(?:a\s+)?(?:general|quick|simple)\s+question\b",
        )
    ),
    re.IGNORECASE,
)


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` worth scoring: at least two words, at most
    :data:`MAX_SENTENCES` of them, each cut to :data:`MAX_SENTENCE_CHARS`.

    Very short fragments ("Hi,", "Thanks!") are merged into the next sentence rather than
    dropped, so "Help!! My card was stolen" keeps its context.
    """
    sentences: list[str] = []
    pending = ""
    for piece in _BREAK.split(text):
        piece = " ".join(piece.split())
        if not piece:
            continue
        candidate = f"{pending} {piece}".strip() if pending else piece
        if len(_WORD.findall(_PLACEHOLDER.sub(" ", candidate))) < _MIN_WORDS:
            pending = candidate
            continue
        pending = ""
        sentences.append(candidate[:MAX_SENTENCE_CHARS])
    if pending and sentences:
        sentences[-1] = f"{sentences[-1]} {pending}"[:MAX_SENTENCE_CHARS]
    elif pending and _WORD.search(pending):
        sentences.append(pending[:MAX_SENTENCE_CHARS])
    return sentences[:MAX_SENTENCES]


def denies_risk(sentence: str) -> bool:
    """Whether ``sentence`` denies a risk ("this is not a security issue") instead of
    reporting one; such sentences are not scored."""
    return _DENIALS.search(sentence) is not None


def scorable_sentences(text: str) -> Iterator[str]:
    """Sentences of ``text`` that do not deny a risk, in order."""
    for sentence in split_sentences(text):
        if not denies_risk(sentence):
            yield sentence
