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

MAX_SENTENCES = 200
MAX_SENTENCE_CHARS = 600
_MIN_WORDS = 6

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
            # "there has been no unauthorised access", "there were no suspicious logins"
            r"\bthere\s+(?:has|have|had)?\s*(?:been|was|were|is|are)\s+no\s+(?:\w+\s+){0,2}"
            r"(?:access|activity|charges?|transactions?|log-?ins?|sign-?ins?|breach|leak|fraud)\b",
        )
    ),
    re.IGNORECASE,
)


# Transcript turns of the company's side (agents, bots, the chat system) are not the customer's
# report; speaker labels and form fields that only hold a redacted value carry no meaning.
_OTHER_SIDE = re.compile(
    r"^\s*(?:agent|bot|system|assistant|operator|advisor|adviser|support|rep|staff)\b[^:\n]{0,30}:"
    r".*$",
    re.IGNORECASE | re.MULTILINE,
)
_SPEAKER = re.compile(
    r"^\s*(?:customer|caller|client|user|member|patient|guest|me)\b[^:\n]{0,20}:\s*",
    re.IGNORECASE | re.MULTILINE,
)
_FIELD_ONLY = re.compile(r"^\s*[\w .'/-]{1,40}:\s*(?:\[[A-Z_]+\][\s,;]*)+$", re.MULTILINE)


def customer_text(text: str) -> str:
    """``text`` without the company's transcript turns, speaker labels and placeholder-only
    form fields."""
    return _SPEAKER.sub("", _FIELD_ONLY.sub("", _OTHER_SIDE.sub("", text)))


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` worth scoring: at least six words (a shorter sentence joins the
    next one, so "My old bank had it." is read with its context, never alone), at most
    :data:`MAX_SENTENCES` of them (the cascade's first stage reads them all and sends only the
    likeliest few to the full encoder), each cut to :data:`MAX_SENTENCE_CHARS`.

    Very short fragments ("Hi,", "Thanks!") are merged into the next sentence rather than
    dropped, so "Help!! My card was stolen" keeps its context.
    """
    sentences: list[str] = []
    pending = ""
    for piece in _BREAK.split(customer_text(text)):
        piece = " ".join(piece.split())
        if not piece:
            continue
        # A subject is often the description's first words: read them once.
        repeated = pending and piece.casefold().startswith(pending.rstrip(".!?…").casefold())
        candidate = piece if repeated or not pending else f"{pending} {piece}"
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
    """Sentences of ``text`` that do not deny a risk, in order, each once (quoted threads and
    templates repeat sentences; scoring one copy is enough)."""
    seen: set[str] = set()
    for sentence in split_sentences(text):
        if sentence not in seen and not denies_risk(sentence):
            seen.add(sentence)
            yield sentence
