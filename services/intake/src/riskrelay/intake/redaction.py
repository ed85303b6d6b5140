"""Personal-data redaction: raw identifiers never leave intake.

Each kind is found by a cheap candidate regex and then *validated* by a library that knows the
format where one exists, so placeholders replace real identifiers and not every long number:

======================  ==============================  =================================
kind                    candidate                       validated by
======================  ==============================  =================================
``[EMAIL]``             RFC 5322 dot-atom @ domain;     (the pattern is specific enough);
                        disguised "jane dot doe at ..." known top-level domain
``[SECRET]``            token formats; "password is",   ``detect-secrets`` plugins' regexes;
                        "PIN", "code", "OTP", "API key" the value must look like a secret
``[DOB]``               a date after "DOB", "date of    (the cue is the validation)
                        birth", "born on" ...
``[IBAN]``              2 letters, 2 digits, 11-30 more ``stdnum.iban`` (country format, mod 97)
``[CARD]``              13-19 digits in groups          ``stdnum.luhn``
``[IP]``                dotted quad / colon groups      ``ipaddress``
``[NATIONAL_ID]``       see below                       format rules, ``stdnum.de.idnr``
``[ADDRESS]``           street + number, postcode,      UK postcode letter rules, US state
                        "I live at ..."                 codes
``[PHONE]``             7+ digits with separators       ``phonenumbers`` (valid numbers)
``[NAME]``              the event's customer and agent  capitalization, not a sentence
                        names; "Name:", "From:", "My    opener, ends its field after a
                        name is", "Dear", sign-offs     weak cue
======================  ==============================  =================================

The finders for secrets, dates of birth, identity documents, disguised e-mail addresses,
postal addresses and names live in :mod:`riskrelay.intake.pii`, each module saying what it
recognises and why. Cue-marked kinds replace only the value: "my password is [SECRET]", "DOB
[DOB]", "passport number [NATIONAL_ID]", so the words the rules read stay.

National identifiers recognised (documented, deliberately few, since a bare 9-11 digit number
is far more often an order or invoice number than an identity number):

* US Social Security Number written ``ddd-dd-dddd`` (area not 000, 666 or 9xx; group and
  serial not zero). Undashed SSNs are not recognised.
* UK National Insurance number, ``AB 12 34 56 C`` with or without spaces, using HMRC's rules
  for the two prefix letters.
* German tax identification number (Steuer-IdNr), 11 digits, checked with ``stdnum.de.idnr``.
* Passport, driving-licence and identity-card numbers after their cue, and UK driving-licence
  numbers anywhere (:mod:`riskrelay.intake.pii.documents`).

The order of the passes matters: e-mail first (addresses contain digits and dots), then keys
and tokens in a known format (a token holds digit runs that later passes would half-eat) and
dates of birth (a birth date reads as a phone number to ``phonenumbers``), IBANs (their country
format and mod-97 check are stricter than any cue: "passport" before an IBAN does not make it a
passport number) and identity-document numbers after their cue (a licence number's digits can
pass Luhn), then card before IP, national id, address and phone, so a card number is never
half-eaten as a phone;
then the values after a password, PIN or code cue (an IBAN or phone number after "senha" stays
an IBAN or a phone number), and names last, once every address and e-mail holding one is gone. Placeholders contain no
digits, so later passes cannot match inside them. Each pass is gated by something cheap (an
``@``, a digit, a cue word in the lower-cased text), because most of a ticket has none of
them. Phone numbers are looked up with ``phonenumbers`` only inside digit-bearing candidate
spans, because running its matcher over a whole body costs about a millisecond; a ``+``
followed by 7-15 digits is redacted even when no numbering plan accepts it, because it is a
phone number to a human. A digit run glued by a hyphen to a longer identifier (the tail of
"D1234-56789-01234") is never a phone number.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.de import idnr as stdnum_de_idnr

from riskrelay.intake.pii import (
    CueIndex,
    Span,
    TextScan,
    addresses,
    documents,
    emails,
    names,
    secrets,
)
from riskrelay.intake.pii.names import NO_NAMES, KnownNames
from riskrelay.shared.events import PersonalDataKind

__all__ = [
    "DEFAULT_REDACTOR",
    "NO_NAMES",
    "PLACEHOLDERS",
    "PLACEHOLDER_TOKENS",
    "KnownNames",
    "RedactionResult",
    "Redactor",
    "redact",
]

PLACEHOLDERS: dict[PersonalDataKind, str] = {
    PersonalDataKind.EMAIL: "[EMAIL]",
    PersonalDataKind.PHONE: "[PHONE]",
    PersonalDataKind.CARD: "[CARD]",
    PersonalDataKind.IBAN: "[IBAN]",
    PersonalDataKind.IP_ADDRESS: "[IP]",
    PersonalDataKind.NATIONAL_ID: "[NATIONAL_ID]",
    PersonalDataKind.NAME: "[NAME]",
    PersonalDataKind.POSTAL_ADDRESS: "[ADDRESS]",
    PersonalDataKind.DATE_OF_BIRTH: "[DOB]",
    PersonalDataKind.SECRET: "[SECRET]",
}
PLACEHOLDER_TOKENS = frozenset(p.strip("[]").lower() for p in PLACEHOLDERS.values())


@dataclass(frozen=True, slots=True)
class RedactionResult:
    text: str
    kinds: frozenset[PersonalDataKind]


# --- e-mail ---------------------------------------------------------------------------------
_EMAIL = re.compile(
    r"[\w.!#$%&'*+/=?^`{|}~-]+@"
    r"(?:[\w](?:[\w-]{0,61}[\w])?\.)+[\w](?:[\w-]{0,61}[\w])?"
    r"|[\w.!#$%&'*+/=?^`{|}~-]+@\[[0-9A-Fa-f:.]+\]"
)

# --- IBAN -----------------------------------------------------------------------------------
_IBAN_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])"
)

# --- cards: runs of digit groups separated by one space or dash -----------------------------
# A leading "+" makes it an international phone number, not a card.
_DIGIT_GROUP_RUN = re.compile(r"(?<![\d+])\d+(?:[ -]\d+)*(?!\d)")
_GROUP = re.compile(r"\d+")

# --- IP addresses ---------------------------------------------------------------------------
_IPV6_CANDIDATE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,8}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?:%[\w.]+)?(?![\w:])"
)
_IPV4_CANDIDATE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")

# --- national ids ---------------------------------------------------------------------------
_US_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
_UK_NINO = re.compile(
    r"(?<![A-Za-z0-9])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])"
)
_DE_IDNR_CANDIDATE = re.compile(r"(?<![\d+])\d{2} ?\d{3} ?\d{3} ?\d{3}(?![\d])")

# --- phones ---------------------------------------------------------------------------------
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])\+?\(?\d[\d ()./\-]{5,28}\d(?!\d)")
_INTERNATIONAL_FALLBACK = re.compile(r"(?<![\w+])\+\d(?:[ ().\-]?\d){6,16}(?!\d)")


def _iban_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    for match in _IBAN_CANDIDATE.finditer(text):
        # The candidate may run on into following words or digits; IBAN lengths are fixed per
        # country, so try the longest prefix that validates.
        raw = match.group()
        ends = [i + 1 for i, ch in enumerate(raw) if ch != " "]
        for end in reversed(ends[14:34]):
            if stdnum_iban.is_valid(raw[:end]):
                spans.append((match.start(), match.start() + end))
                break
    return spans


def _card_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    for run in _DIGIT_GROUP_RUN.finditer(text):
        if len(run.group()) < 13:
            continue
        groups = [
            (g.start() + run.start(), g.end() + run.start()) for g in _GROUP.finditer(run.group())
        ]
        index = 0
        while index < len(groups):
            found = _longest_luhn_run(text, groups, index)
            if found is None:
                index += 1
                continue
            spans.append((groups[index][0], groups[found][1]))
            index = found + 1
    return spans


def _longest_luhn_run(text: str, groups: list[Span], start: int) -> int | None:
    """Index of the last group of the longest card number starting at group ``start``."""
    best: int | None = None
    digits = ""
    for end in range(start, len(groups)):
        digits += text[groups[end][0] : groups[end][1]]
        if len(digits) > 19:
            break
        if len(digits) >= 13 and luhn.is_valid(digits):
            best = end
    return best


def _ip_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    if ":" in text:
        for match in _IPV6_CANDIDATE.finditer(text):
            candidate = match.group()
            # "2001:db8::1: blocked" - the sentence's colon is not part of the address.
            for written in (candidate, candidate[:-1] if candidate.endswith(":") else None):
                if written and _is_ipv6(written):
                    spans.append((match.start(), match.start() + len(written)))
                    break
    if "." in text:
        for match in _IPV4_CANDIDATE.finditer(text):
            try:
                ipaddress.IPv4Address(match.group())
            except ValueError:
                continue
            spans.append(match.span())
    return spans


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _national_id_spans(text: str) -> list[Span]:
    spans = [m.span() for m in _US_SSN.finditer(text)]
    spans += [m.span() for m in _UK_NINO.finditer(text)]
    spans += [
        m.span() for m in _DE_IDNR_CANDIDATE.finditer(text) if stdnum_de_idnr.is_valid(m.group())
    ]
    return spans


class _Needs(enum.IntEnum):
    """The cheap look that decides whether a pass can find anything at all."""

    NOTHING = 0
    AT_SIGN = 1
    DIGIT = 2
    DIGIT_OR_COLON = 3


def _needs_met(needs: int, scan: TextScan) -> bool:
    if needs == _Needs.DIGIT:
        return scan.has_digits
    if needs == _Needs.AT_SIGN:
        return "@" in scan.text
    return scan.has_digits or ":" in scan.text


@dataclass(frozen=True, slots=True)
class _Pass:
    kind: PersonalDataKind
    find: Callable[[TextScan], list[Span]]
    needs: int  # a _Needs; a plain int keeps the per-pass check cheap


class Redactor:
    """Replaces personal data with typed placeholders. Build once; ``redact`` is thread-safe."""

    def __init__(self, phone_regions: Iterable[str] = ("US", "GB", "DE", "FR")) -> None:
        self.phone_regions = tuple(phone_regions)
        unknown = [r for r in self.phone_regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone regions {unknown}")
        self._cues = CueIndex(
            (*emails.CUES, *secrets.CUES, *documents.CUES, *addresses.CUES, *names.CUES)
        )
        kinds = PersonalDataKind
        self._passes: tuple[_Pass, ...] = (
            _Pass(kinds.EMAIL, lambda scan: _email_spans(scan.text), _Needs.AT_SIGN),
            _Pass(kinds.EMAIL, emails.obfuscated_email_spans, _Needs.NOTHING),
            _Pass(kinds.SECRET, secrets.token_spans, _Needs.NOTHING),
            _Pass(kinds.DATE_OF_BIRTH, documents.date_of_birth_spans, _Needs.DIGIT),
            _Pass(kinds.IBAN, lambda scan: _iban_spans(scan.text), _Needs.DIGIT),
            _Pass(kinds.NATIONAL_ID, documents.id_document_spans, _Needs.DIGIT),
            _Pass(kinds.CARD, lambda scan: _card_spans(scan.text), _Needs.DIGIT),
            _Pass(kinds.IP_ADDRESS, lambda scan: _ip_spans(scan.text), _Needs.DIGIT_OR_COLON),
            _Pass(kinds.NATIONAL_ID, lambda scan: _national_id_spans(scan.text), _Needs.DIGIT),
            _Pass(kinds.POSTAL_ADDRESS, addresses.address_spans, _Needs.NOTHING),
            _Pass(kinds.PHONE, lambda scan: self._phone_spans(scan.text), _Needs.DIGIT),
            _Pass(kinds.SECRET, secrets.cued_secret_spans, _Needs.NOTHING),
            _Pass(kinds.NAME, names.cued_name_spans, _Needs.NOTHING),
        )

    def redact(self, text: str, known_names: KnownNames = NO_NAMES) -> RedactionResult:
        """Redact ``text``; ``known_names`` are the person names the event carries."""
        found: set[PersonalDataKind] = set()
        scan = TextScan(text)
        scan.cues = self._cues.present(scan.lowered)
        for step in self._passes:
            if step.needs and not _needs_met(step.needs, scan):
                continue
            spans = step.find(scan)
            if step.kind is PersonalDataKind.NAME:
                if known_names:
                    spans += names.known_name_spans(scan, known_names)
                spans = _joined_across_spaces(scan.text, spans)
            if spans:
                scan = TextScan(_replace(scan.text, spans, PLACEHOLDERS[step.kind]), scan.cues)
                found.add(step.kind)
        return RedactionResult(scan.text, frozenset(found))

    def _phone_spans(self, text: str) -> list[Span]:
        spans: list[Span] = []
        for candidate in _PHONE_CANDIDATE.finditer(text):
            begin = candidate.start()
            if begin >= 2 and text[begin - 1] == "-" and text[begin - 2].isalnum():
                continue  # the tail of a longer identifier ("D1234-56789-01234")
            raw = candidate.group()
            if sum(ch.isdigit() for ch in raw) < 7:
                continue
            spans.extend(
                (candidate.start() + start, candidate.start() + end)
                for start, end in self._numbers_in(raw)
            )
        spans.extend(m.span() for m in _INTERNATIONAL_FALLBACK.finditer(text))
        return spans

    def _numbers_in(self, candidate: str) -> list[Span]:
        for region in self.phone_regions:
            found = [
                (match.start, match.end)
                for match in phonenumbers.PhoneNumberMatcher(candidate, region)
            ]
            if found:
                return found
        return []


def _email_spans(text: str) -> list[Span]:
    return [m.span() for m in _EMAIL.finditer(text)]


def _joined_across_spaces(text: str, spans: list[Span]) -> list[Span]:
    """First and last name found apart are one name: "[NAME]", not "[NAME] [NAME]"."""
    joined: list[Span] = []
    for start, end in sorted(spans):
        if (joined and (gap := text[joined[-1][1] : start]) and not gap.strip(" \t")) or (
            joined and start <= joined[-1][1]
        ):
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined


def _replace(text: str, spans: list[Span], placeholder: str) -> str:
    """Replace possibly overlapping spans, each merged run once."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces: list[str] = []
    cursor = 0
    for start, end in merged:
        pieces.append(text[cursor:start])
        pieces.append(placeholder)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


DEFAULT_REDACTOR = Redactor()


def redact(text: str, known_names: KnownNames = NO_NAMES) -> RedactionResult:
    """Redact with the default phone regions (US, GB, DE, FR)."""
    return DEFAULT_REDACTOR.redact(text, known_names)
