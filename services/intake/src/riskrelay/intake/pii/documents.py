"""Dates of birth and identity-document numbers, both recognised only where the text says so.

A date is a date of birth only after a cue ("DOB", "date of birth", "born on", "Geburtsdatum",
"né le" ...): an ordinary date ("charged on 04/07/2026") is what the rules and the money
parser read, so it stays. Only the date is replaced; the cue stays, so "DOB [DOB]" still
tells a reader (and the rules) that a birth date was given.

Passport, driving-licence and identity-card numbers have no shared format (a UK licence is
16 characters, a US one anything from a letter and four digits to 13 characters), so they too
are found after their cue ("passport number", "driving licence", "Führerschein", "permis de
conduire", "ID card no."): one to five groups of letters and digits, each holding a digit, at
least three digits in all. The UK driving licence's own format (five letters, six digits,
two letters, a digit, two letters) is recognised anywhere.
"""

from __future__ import annotations

import re

from riskrelay.intake.pii import Cue, Span, TextScan, starts_word

# Both cue patterns run over the lower-cased text (see riskrelay.intake.pii).
_MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|januar|februar|m(?:ä|ae)rz|"
    r"mai|juni|juli|oktober|dezember|janvier|f[ée]vrier|mars|avril|juin|juillet|ao[uû]t|"
    r"septembre|octobre|novembre|d[ée]cembre|januari|februari|maart|mei|augustus"
)
_ORDINAL = r"(?:st|nd|rd|th|\.|er)?"
_DATE = (
    r"(?:\d{4}-\d{1,2}-\d{1,2}"
    r"|\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})"
    rf"|\d{{1,2}}{_ORDINAL}(?:[ \t]+of)?[ \t]+(?:{_MONTHS})\.?,?(?:[ \t]+\d{{4}})?"
    rf"|(?:{_MONTHS})\.?[ \t]+\d{{1,2}}{_ORDINAL},?(?:[ \t]+\d{{4}})?"
    rf"|(?:{_MONTHS})\.?[ \t]+\d{{4}})"
)
_DATE_OF_BIRTH = re.compile(
    r"(?:d\.?o\.?b\.?|date[ \t]+of[ \t]+birth|birth[ \t]?date|birthday|born(?:[ \t]+on)?|"
    r"geburtsdatum|geburtstag|geboren(?:[ \t]+am)?|geb\.|date[ \t]+de[ \t]+naissance|"
    r"n[ée]e?[ \t]+le|geboortedatum|geboren[ \t]+op)"
    r"(?:[ \t]*(?:is|was|:|-|=)[ \t]*|[ \t]+)(?:(?:is|was|on|the|le|am|op)[ \t]+)?"
    rf"(?P<date>{_DATE})(?![\w])"
    r"|(?:born[ \t]+in|year[ \t]+of[ \t]+birth|birth[ \t]+year|geburtsjahr|geboren[ \t]+in|"
    r"n[ée]e?[ \t]+en)[ \t]*:?[ \t]*(?P<year>(?:19|20)\d{2})(?![\w])"
)
_ID_DOCUMENT = re.compile(
    r"(?:passport|reisepass|passeport|paspoort|pasaporte|passaporto|"
    r"driv(?:er'?s?|ing)[ \t]+licen[cs]e|licen[cs]e[ \t]+(?:number|no\.?|nr\.?|#)|"
    r"dl[ \t]*(?:number|no\.?|#)|f(?:ü|ue)hrerschein|permis[ \t]+de[ \t]+conduire|rijbewijs|"
    r"(?:national[ \t]+)?id(?:entity)?[ \t]+card|personalausweis|ausweis|carte[ \t]+"
    r"d'identit[ée]|identiteitskaart|(?:national[ \t]+)?id[ \t]+(?:number|no\.?|#))"
    r"(?:[ \t]*(?:number|no\.?|nr\.?|#|num(?:ber|[ée]ro)?|nummer|n°))?"
    r"(?:[ \t]*(?:is|was|:|=|-|reads)[ \t]*|[ \t]+)(?:(?:is|was)[ \t]+)?"
    r"(?P<value>(?P<letters>[a-z]{1,3}[ -])?[a-z0-9<]*\d[a-z0-9<]*"
    r"(?:[ -][a-z0-9<]*\d[a-z0-9<]*){0,4})(?![\w])"
)
DATE_OF_BIRTH_CUE = Cue(
    "date of birth", ("dob", "d.o.b", "birth", "born", "geb", "naissance", "né", "ne le", "nee")
)
ID_DOCUMENT_CUE = Cue(
    "identity document",
    (
        "passport",
        "reisepass",
        "passeport",
        "paspoort",
        "pasaporte",
        "passaporto",
        "licence",
        "license",
        "dl number",
        "dl no",
        "dl #",
        "dl:",
        "hrerschein",
        "permis de conduire",
        "rijbewijs",
        "ausweis",
        "identity card",
        "id card",
        "id number",
        "id no",
        "id #",
        "carte d'identit",
        "identiteitskaart",
    ),
)
CUES = (DATE_OF_BIRTH_CUE, ID_DOCUMENT_CUE)
_UK_DRIVING_LICENCE = re.compile(r"[A-Z9]{5}\d{6}[A-Z9]{2}\d[A-Z]{2}(?![A-Za-z0-9])")
_MIN_ID_DIGITS = 3
_MIN_ID_LENGTH = 6
_UK_LICENCE_DIGIT_RUN = 6
_UK_LICENCE_PREFIX = 5


def date_of_birth_spans(scan: TextScan) -> list[Span]:
    """Spans of dates that the text marks as dates of birth (the date only, not the cue)."""
    spans: list[Span] = []
    if not scan.has(DATE_OF_BIRTH_CUE):
        return spans
    for match in _DATE_OF_BIRTH.finditer(scan.lowered):
        if starts_word(scan.lowered, match.start()):
            spans.append(match.span("date" if match.group("date") is not None else "year"))
    return spans


def id_document_spans(scan: TextScan) -> list[Span]:
    """Spans of passport, driving-licence and identity-card numbers."""
    text = scan.text
    spans: list[Span] = []
    for start, end in scan.digit_runs:
        begin = start - _UK_LICENCE_PREFIX
        if end - start == _UK_LICENCE_DIGIT_RUN and begin >= 0 and starts_word(text, begin):
            licence = _UK_DRIVING_LICENCE.match(text, begin)
            if licence is not None:
                spans.append(licence.span())
    if not scan.has(ID_DOCUMENT_CUE):
        return spans
    for match in _ID_DOCUMENT.finditer(scan.lowered):
        if not starts_word(scan.lowered, match.start()):
            continue
        start, end = match.span("value")
        if match.group("letters") and not text[start : match.end("letters")].isupper():
            start = match.end("letters")  # "passport is x1234567": "is" was a word, not a prefix
        value = text[start:end]
        alphanumerics = sum(ch.isalnum() for ch in value)
        if sum(ch.isdigit() for ch in value) >= _MIN_ID_DIGITS and alphanumerics >= _MIN_ID_LENGTH:
            spans.append((start, end))
    return spans
