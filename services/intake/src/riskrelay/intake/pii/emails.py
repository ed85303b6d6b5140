"""E-mail addresses written so that a machine would not read them: "jane dot doe at gmail dot
com", "jane[at]example[dot]com", "jane (at) example.com", "jane @ example . com".

The shape is local part, an *at* (``@`` with spaces, ``at`` in brackets, or the word ``at``),
a domain of labels joined by *dots* (``.``, ``dot`` or ``[dot]``) and a known top-level domain.
Prose has "at" everywhere ("I logged in at amazon.com"), so an address whose only disguise is
the word ``at`` next to ordinary dots counts only at a webmail provider ("jane.doe at
gmail.com"); with a spelled-out or bracketed dot, or a bracketed or spaced ``@``, any known
top-level domain does.
"""

from __future__ import annotations

import re

from riskrelay.intake.pii import Cue, Span, TextScan, starts_word, words

_AT = r"(?P<at>[ \t]*[\[({<][ \t]*at[ \t]*[\])}>][ \t]*|[ \t]+at[ \t]+|[ \t]*@[ \t]+)"
_DOT = r"(?:[ \t]*[\[({<][ \t]*(?:dot|\.)[ \t]*[\])}>][ \t]*|[ \t]+dot[ \t]+|[ \t]?\.[ \t]?)"
_TOP_LEVEL_DOMAINS = (
    r"com|net|org|edu|gov|io|co|uk|de|fr|nl|be|es|it|pt|ie|ch|at|se|no|dk|fi|pl|cz|eu|us|ca|"
    r"au|nz|in|jp|cn|br|mx|ru|info|biz|me|app|dev|ai|tv|online|email|mail"
)
_WEBMAIL = words(
    """
    gmail googlemail yahoo ymail hotmail outlook live msn icloud me mac aol gmx web proton
    protonmail pm t-online orange free wanadoo laposte btinternet sky virginmedia talktalk
    mail yandex zoho fastmail hey tutanota posteo freenet ziggo kpnmail hetnet comcast
    """
)
# Runs over the lower-cased text (see riskrelay.intake.pii). Most tickets hold no "dot", no
# bracketed "at", no spaced "@" and no "at <webmail>": the cue.
OBFUSCATED_EMAIL_CUE = Cue(
    "disguised e-mail",
    ("dot", "at]", "at)", "at}", "at>", "@ ", *(f" at {name}" for name in sorted(_WEBMAIL))),
)
CUES = (OBFUSCATED_EMAIL_CUE,)
_OBFUSCATED_EMAIL = re.compile(
    rf"[a-z0-9][\w%+-]*(?:{_DOT}[a-z0-9][\w%+-]*)*{_AT}"
    rf"(?P<domain>[a-z0-9][\w-]*(?:{_DOT}[a-z0-9][\w-]*)*{_DOT}(?:{_TOP_LEVEL_DOMAINS}))"
    r"(?![\w-])"
)
_SPELLED_DOT = re.compile(r"[\[({<]|\bdot\b")
_DOMAIN_LABEL_END = re.compile(r"[\s.\[\](){}<>]")


def obfuscated_email_spans(scan: TextScan) -> list[Span]:
    """Spans of e-mail addresses disguised with words, brackets or spaces."""
    lowered = scan.lowered
    if not scan.has(OBFUSCATED_EMAIL_CUE):
        return []
    spans: list[Span] = []
    for match in _OBFUSCATED_EMAIL.finditer(lowered):
        if not starts_word(lowered, match.start()) or lowered[
            match.start() - 1 : match.start()
        ] in (
            ".",
            "@",
            "-",
        ):
            continue
        disguised_at = match.group("at").strip() != "at"
        domain = match.group("domain")
        spelled_dot = _SPELLED_DOT.search(match.group()) is not None
        provider = _DOMAIN_LABEL_END.split(domain, maxsplit=1)[0]
        if disguised_at or spelled_dot or provider in _WEBMAIL:
            spans.append(match.span())
    return spans
