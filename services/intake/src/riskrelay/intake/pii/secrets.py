"""Secrets: passwords, PINs, one-time codes, API keys and tokens, private keys.

Two sources:

* **Formats** that ``detect-secrets`` (Yelp's scanner) knows: AWS, GitHub, GitLab, Slack,
  Stripe, OpenAI, Twilio, SendGrid, JWTs, basic-auth URLs and the rest of its regex plugins,
  plus PEM private-key blocks. Its regexes are read from its plugins and run over the text only
  when a word is long and not purely letters (every one of these formats is), because running
  all of them costs about 200 µs per ticket. Its IP-address plugin is left out (intake redacts
  IPs itself) and so are its entropy and keyword plugins, which are built for source code.
* **Cues** in prose: "my password is ...", ``Password:``, "PIN 4821", "verification code
  482913", "OTP", "CVV 123", "API key: ...", "token = ...". Only the value is replaced, so
  "my password is [SECRET]" still reads as a password problem. A value after "password is"
  that continues the sentence ("my password is not working", "is incorrect", "is being
  rejected") is not a secret; after a bare cue ("password Hunter2") the value must look like
  one (a digit, a symbol or mixed case). A bare "code" followed by four or more digits is a
  one-time code unless a qualifier says otherwise ("error code 1001", "postcode", "promo
  code").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector
from detect_secrets.plugins.ip_public import IPPublicDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector

from riskrelay.intake.pii import Cue, Span, TextScan, starts_word, words


def _format_patterns() -> tuple[re.Pattern[str], ...]:
    """The compiled regexes of every ``detect-secrets`` regex plugin (the documented way to
    write one is a ``RegexBasedDetector`` with a ``denylist`` of compiled patterns)."""
    patterns: list[re.Pattern[str]] = []
    plugins: list[type[BasePlugin]] = list(get_mapping_from_secret_type_to_class().values())
    for plugin in plugins:
        if not issubclass(plugin, RegexBasedDetector) or plugin in (
            IPPublicDetector,
            PrivateKeyDetector,
        ):
            continue
        detector = plugin()
        patterns.extend(detector.denylist)
    return tuple(patterns)


_FORMATS = _format_patterns()
_TOKEN_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/=.~"
)
_WORD_PUNCTUATION = ".,;:!?()[]{}<>\"'"
_MIN_TOKEN_WORD = 11
_MIN_UNDERSCORED_TOKEN = 20
_MIN_GROUP_SECRET = 8
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*\Z)"
    r"|PuTTY-User-Key-File-\d:.*?(?:Private-MAC: *\w+|\Z)",
    re.DOTALL,
)

_CONNECTOR = (
    r"(?P<connector>[ \t]*(?::|=|->|=>)[ \t]*|[ \t]+(?:is|was|is[ \t]+now|was[ \t]+set[ \t]+to|"
    r"set[ \t]+to|changed[ \t]+to|reset[ \t]+to|ist|lautet|est|is[ \t]+still)[ \t]*:?[ \t]*"
    r"|[ \t]+)"
)
# The cue patterns run over the lower-cased text (see riskrelay.intake.pii); the value is then
# read from the original text at the same indices.
_PASSWORD = re.compile(
    r"(?:pass(?:word|wd|phrase)|pwd|pw|passwort|kennwort|mot[ \t]+de[ \t]+passe|mdp|"
    r"wachtwoord|contrase(?:ñ|n)a|senha)"
    rf"{_CONNECTOR}"
    r"(?:(?P<quote>[\"'`«“])(?P<quoted>[^\"'`»”\n]{1,128})[\"'`»”]|(?P<value>[^\s\"'`]{3,128}))",
)
_PIN = re.compile(
    r"pin(?:[ \t-]*(?:code|number|nummer|no\.?|nr\.?|#))?"
    r"(?:[ \t]*(?::|=)[ \t]*|[ \t]+(?:is|was|ist|est|of)[ \t]*:?[ \t]*|[ \t]+)"
    r"(?P<value>\d{4,8})(?![\w])"
)
_CODE = re.compile(
    r"(?P<cue>(?:verification|security|one[- ]?time|otp|2fa|two[- ]factor|mfa|"
    r"auth(?:entication|orisation|orization)?|log[- ]?in|sign[- ]?in|sms|text|access|reset|"
    r"recovery|backup|activation|bestätigungs|sicherheits)[ \t-]*code|passcode|otp|cvv2?|cvc2?|"
    r"csc|tan|one[- ]time[ \t]+(?:password|pin)|code)"
    r"(?:[ \t]*(?::|=)[ \t]*|[ \t]+(?:is|was|ist|est)[ \t]*:?[ \t]*|[ \t]+)"
    r"(?P<value>[a-z0-9]{3,12}(?:[ -]\d{3,6})?)(?![\w])"
)
_KEY = re.compile(
    r"(?:api[ _-]?(?:key|token|secret)|access[ _-]?(?:key(?:[ _-]?id)?|token)|"
    r"secret(?:[ _-]?(?:key|access[ _-]?key))?|client[ _-]?secret|auth(?:orization)?[ _-]?"
    r"(?:token|key|header)|bearer(?:[ \t]+token)?|token|private[ _-]?key|session[ _-]?(?:id|"
    r"token|key|cookie)|refresh[ _-]?token|webhook[ _-]?secret|signing[ _-]?(?:key|secret)|"
    r"licen[cs]e[ _-]?key|product[ _-]?key|recovery[ _-]?key)"
    rf"{_CONNECTOR}"
    r"[\"'`]?(?P<value>[a-z0-9_\-+/=.~:]{8,512})"
)

# Words that continue a sentence after "password is" instead of being the password.
_PROSE = words(
    """
    not wrong incorrect invalid correct right expired required needed too very still now no
    the a an my your our his her their being getting also always never same different
    changed reset blocked locked compromised leaked weak strong short long longer case
    accepted rejected working broken fine ok okay there here in on at for from to with and
    or but of that this what which because since stored saved visible shown displayed sent
    emailed e-mailed texted written printed exposed known public old new gone lost forgotten
    unknown unchanged mandatory optional fixed temporary generated random just only already
    suddenly apparently probably definitely simply hard easy impossible empty blank missing
    asking saying showing set is was are were has had have will would should can could does
    did do i me we you he she it they them someone somebody anyone everyone something
    nothing anything everything please again yet when if so then as like such mine yours
    ours theirs his hers nicht falsch pas faux
    """
)
_PROSE_ENDINGS = ("ed", "ing", "ly", "able", "ible", "ful", "less")
# Words before "code" that make it anything but a secret.
_NOT_SECRET_CODES = words(
    """
    error status exit promo promotional discount coupon voucher gift zip postal post area
    country dialing dialling product item tracking reference ref order tax sort swift bic
    bank http response return fault reason event region qr bar source iso hs sku booking
    fare class colour color dress program programme airport flight seat
    """
)
PASSWORD_CUE = Cue("password", ("pass", "pw", "wort", "mdp", "wachtwoord", "contrase", "senha"))
PIN_CUE = Cue("pin", ("pin",))
CODE_CUE = Cue("code", ("code", "otp", "cvv", "cvc", "csc", "one-time", "one time"))
KEY_CUE = Cue("key", ("key", "token", "secret", "bearer", "session", "auth"))
PRIVATE_KEY_CUE = Cue("private key", ("private key", "putty-user-key"))
CUES = (PASSWORD_CUE, PIN_CUE, CODE_CUE, KEY_CUE, PRIVATE_KEY_CUE)
_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"\d")
_PREVIOUS_WORD = re.compile(r"([\w-]+)[ \t]*$")
_TRAILING_PUNCTUATION = ".,;:)]}"


def _may_hold_token(text: str) -> bool:
    """A long word of letters and digits (or a long one with an underscore), or a URL with
    credentials: every format needs one."""
    words = text.split()
    if max(map(len, words), default=0) < _MIN_TOKEN_WORD:
        return False
    for word in words:
        if len(word) < _MIN_TOKEN_WORD:
            continue
        core = word.strip(_WORD_PUNCTUATION)
        if len(core) < _MIN_TOKEN_WORD:
            continue
        if (
            ("://" in core and "@" in core)
            or (len(core) >= _MIN_UNDERSCORED_TOKEN and "_" in core)
            or (
                "'" not in core
                and _LETTER.search(core) is not None
                and _DIGIT.search(core) is not None
            )
        ):
            return True
    return False


def _extend_over_token(text: str, start: int, end: int) -> Span:
    """A format regex may stop inside its token (a JWT's signature): take the whole token."""
    while start > 0 and text[start - 1] in _TOKEN_CHARACTERS:
        start -= 1
    while end < len(text) and text[end] in _TOKEN_CHARACTERS:
        end += 1
    while end > start and text[end - 1] in "./:=":
        end -= 1
    return start, end


def _format_spans(scan: TextScan) -> Iterator[Span]:
    text = scan.text
    if scan.has(PRIVATE_KEY_CUE):
        yield from (match.span() for match in _PRIVATE_KEY.finditer(text))
    if not (scan.has_digits or "_" in text or "://" in text) or not _may_hold_token(text):
        return
    for pattern in _FORMATS:
        for match in pattern.finditer(text):
            start, end = match.span()
            # The first group is the secret itself when it is long enough to be one (the
            # assignment patterns); otherwise it is a prefix ("ghp") and the match counts.
            group = match.span(1) if pattern.groups else (-1, -1)
            if group[0] >= 0 and group[1] - group[0] >= _MIN_GROUP_SECRET:
                start, end = group
            while start < end and text[start] in " \t\n\"'=:/@":
                start += 1
            while end > start and text[end - 1] in " \t\n\"'=:/@":
                end -= 1
            if start < end:
                yield _extend_over_token(text, start, end)


def _looks_like_secret(value: str) -> bool:
    has_digit = any(ch.isdigit() for ch in value)
    has_symbol = any(not ch.isalnum() for ch in value)
    mixed_case = any(ch.isupper() for ch in value[1:]) and any(ch.islower() for ch in value)
    return has_digit or has_symbol or mixed_case


def _is_prose(value: str) -> bool:
    word = value.lower()
    if "-" in word and word.replace("-", "").isalpha():
        return True  # "case-sensitive", "one-time"
    return word.isalpha() and (word in _PROSE or word.endswith(_PROSE_ENDINGS))


def _password_spans(text: str, lowered: str) -> Iterator[Span]:
    for match in _PASSWORD.finditer(lowered):
        if not starts_word(lowered, match.start()):
            continue
        if match.group("quoted") is not None:
            yield match.span("quoted")
            continue
        start = match.start("value")
        value = text[start : match.end("value")].rstrip(_TRAILING_PUNCTUATION)
        if len(value) < 3 or value.startswith("[") or _is_prose(value):
            continue
        connector = match.group("connector").strip()
        if not connector and not _looks_like_secret(value):
            continue  # "password manager", "password reset"
        yield start, start + len(value)


def _pin_spans(lowered: str) -> Iterator[Span]:
    for match in _PIN.finditer(lowered):
        if starts_word(lowered, match.start()):
            yield match.span("value")


def _code_spans(text: str, lowered: str) -> Iterator[Span]:
    for match in _CODE.finditer(lowered):
        if not starts_word(lowered, match.start()):
            continue
        cue = match.group("cue")
        value = match.group("value")
        digits = sum(ch.isdigit() for ch in value)
        if cue == "tan" and text[match.start("cue") : match.end("cue")] != "TAN":
            continue  # the colour, not the transaction number
        if cue.startswith(("cvv", "cvc", "csc")):
            if not (value.isdigit() and 3 <= len(value) <= 4):
                continue
        elif cue == "code":
            previous = _PREVIOUS_WORD.search(lowered, 0, match.start())
            qualifier = previous.group(1) if previous else ""
            if digits < 4 or not value.replace(" ", "").replace("-", "").isdigit():
                continue
            if qualifier in _NOT_SECRET_CODES or qualifier.endswith(("post", "zip", "bar")):
                continue
        elif digits < 3:
            continue
        yield match.span("value")


def _key_spans(text: str, lowered: str) -> Iterator[Span]:
    for match in _KEY.finditer(lowered):
        if not starts_word(lowered, match.start()):
            continue
        start = match.start("value")
        value = text[start : match.end("value")].rstrip(_TRAILING_PUNCTUATION)
        connector = match.group("connector").strip()
        has_digit = any(ch.isdigit() for ch in value)
        if connector:
            if len(value) < 8 or _is_prose(value) or not (has_digit or len(value) >= 16):
                continue
        elif len(value) < 12 or not has_digit or not any(ch.isalpha() for ch in value):
            continue
        yield start, start + len(value)


def token_spans(scan: TextScan) -> list[Span]:
    """Spans of keys and tokens in a known format (``detect-secrets``) and private-key blocks."""
    return list(_format_spans(scan))


def cued_secret_spans(scan: TextScan) -> list[Span]:
    """Spans of the values after a password, PIN, code or key cue."""
    text, lowered = scan.text, scan.lowered
    spans: list[Span] = []
    if scan.has(PASSWORD_CUE):
        spans.extend(_password_spans(text, lowered))
    if scan.has(PIN_CUE):
        spans.extend(_pin_spans(lowered))
    if scan.has(CODE_CUE) or "TAN" in text:
        spans.extend(_code_spans(text, lowered))
    if scan.has(KEY_CUE):
        spans.extend(_key_spans(text, lowered))
    return spans
