"""Postal addresses: streets with house numbers, postcodes, and what "I live at" introduces.

No well-kept library finds addresses in free text without a large model or a native
dependency (libpostal), so these are patterns, each anchored on something an address has and
prose rarely does:

* a street with its number: English "221B Baker Street" / "1600 Pennsylvania Ave", French
  "12 rue de la Paix", German and Dutch "Hauptstraße 5" / "Berliner Str. 12a" /
  "Keizersgracht 123", and "PO Box 123";
* a UK postcode ("NW1 6XE", with Royal Mail's letter rules) anywhere; a US state and ZIP code
  after a city ("Springfield, IL 62704");
* a cue: "I live at", "my address is", ``Address:`` (and their German, French and Dutch
  forms), then the address-looking words that follow.

From a street the address is extended over what follows it on the same or the next lines:
flat or suite, postcode, city ("London NW1 6XE", "10115 Berlin", "1015 CJ Amsterdam") and a
city or country ending the line. A bare five-digit number is never an address on its own: it
is far more often an order number. Every pattern but the cues is tried only at a digit run.
"""

from __future__ import annotations

import re

from riskrelay.intake.pii import Cue, Span, TextScan, ends_word, starts_word, words

_STREET_TYPES = (
    r"Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Place|Pl|Square|Sq|"
    r"Terrace|Way|Close|Crescent|Gardens|Grove|Hill|Parkway|Pkwy|Highway|Hwy|Row|Mews|Walk|"
    r"Circle|Cir|Trail|Alley|Green|Rise|Parade|Esplanade|Embankment|Wharf|Quay|Plaza"
)
_HOUSE_NUMBER = r"\d{1,5}[A-Za-z]?(?:[-/]\d{1,5}[A-Za-z]?)?"
_UNIT = r"(?:Flat|Apt|Apartment|Unit|Suite|Ste|Floor|Fl)\.?[ \t]*\w{1,5}"
_UK_POSTCODE = (
    r"(?:GIR ?0AA|[A-PR-UWYZ](?:\d[A-HJKPSTUW\d]?|[A-HK-Y]\d[ABEHMNPRV-Y\d]?) ?"
    r"\d[ABD-HJLNP-UW-Z]{2})"
)
_US_STATES = (
    r"AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|"
    r"NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR"
)
_CAPITALIZED = r"[A-ZÄÖÜÉÈÊÀÂÎÔÛÇ][\w'.-]*"
_US_CITY_STATE_ZIP = (
    rf"(?:[A-Z][a-z]+[ \t]+){{0,2}}[A-Z][a-z]+,?[ \t]+(?:{_US_STATES})[ \t]+\d{{5}}(?:-\d{{4}})?"
)

# Streets that start with their number (English, French), matched at a digit run.
_NUMBERED_STREET = re.compile(
    rf"{_HOUSE_NUMBER}(?:[ \t]?(?:bis|ter))?,?[ \t]+(?:"
    rf"(?:(?:[NSEW]|North|South|East|West|Upper|Lower|Old|New)\.?[ \t]+)?"
    rf"(?:[A-Z][\w'-]*[ \t]+){{1,4}}(?i:{_STREET_TYPES})\b\.?"
    r"(?:[ \t]+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
    r"|(?i:rue|avenue|av\.|boulevard|bd|place|chemin|all[ée]e|impasse|quai|route|cours|passage|"
    r"square|voie|esplanade|rond-point)[ \t]+"
    r"(?:(?i:de[ \t]+la|de[ \t]+l'|des|du|de|d'|l'|la|le|les|aux|au)[ \t]*)?"
    rf"{_CAPITALIZED}(?:[ \t]+(?:(?i:de|du|des|la|le|d')[ \t]*)?{_CAPITALIZED}){{0,3}})"
)
_UNIT_BEFORE = re.compile(rf"{_UNIT},?[ \t]+$")
# German and Dutch streets end with their number: "Hauptstraße 5", "Berliner Str. 12a".
_STREET_BEFORE_NUMBER = re.compile(
    r"(?:[A-ZÄÖÜ][\wäöüß'-]+(?:straße|strasse|str\.|gasse|allee|platz|weg|damm|ufer|chaussee|"
    r"straat|laan|gracht|plein|kade|singel|dijk|steeg)|[A-ZÄÖÜ][\wäöüß.'-]*[ \t]+(?:Straße|"
    r"Strasse|Str\.|Weg|Platz|Allee|Gasse|Ring|Damm|Ufer|Straat|Laan|Plein|Kade))[ \t]*$"
)
_HOUSE_NUMBER_AT = re.compile(rf"{_HOUSE_NUMBER}(?![\w])")
_UK_POSTCODE_AT = re.compile(rf"{_UK_POSTCODE}(?![A-Za-z0-9])")
_UK_INWARD = re.compile(r"\d[ABD-HJLNP-UW-Z]{2}(?![A-Za-z0-9])")
_US_CITY_STATE_BEFORE = re.compile(
    rf"(?:[A-Z][a-z]+[ \t]+){{0,2}}[A-Z][a-z]+,?[ \t]+(?:{_US_STATES})[ \t]+$"
)
_ZIP_EXTENSION = re.compile(r"-\d{4}(?!\d)")
_CITY = rf"{_CAPITALIZED}(?:[ \t-]{_CAPITALIZED}){{0,2}}"
# What may follow a street (or an earlier part of its address) and still belong to it.
_CONTINUATION = re.compile(
    rf"(?P<separator>[ \t]*,[ \t]*|[ \t]*\n[ \t]*|[ \t]+)"
    rf"(?:(?P<coded>{_UNIT}|{_UK_POSTCODE}(?![A-Za-z0-9])|{_US_CITY_STATE_ZIP}(?!\d)"
    rf"|\d{{4,5}}(?:[ \t]?[A-Z]{{2}})?[ \t]+{_CITY}|{_CITY}[ \t]+{_UK_POSTCODE}(?![A-Za-z0-9])"
    rf"|(?:{_US_STATES})[ \t]+\d{{5}}(?:-\d{{4}})?(?!\d))"
    rf"|(?P<place>{_CITY})(?=[ \t]*(?:$|\n|[,;)]|\.(?:\s|$))))"
)
# These two run over the lower-cased text (see riskrelay.intake.pii).
_PO_BOX = re.compile(r"(?:p\.?[ \t]?o\.?[ \t]*box|postfach|boîte[ \t]+postale)[ \t]+\d{1,6}")
_CUE = re.compile(
    r"(?:i[ \t]+(?:live|reside|am[ \t]+living)[ \t]+(?:at|on)|i'm[ \t]+living[ \t]+"
    r"(?:at|on)|my[ \t]+(?:(?:home|postal|delivery|billing|shipping|mailing|street|new|old|"
    r"current|registered|correct)[ \t]+)?address[ \t]+(?:is|was|has[ \t]+changed[ \t]+to|"
    r"changed[ \t]+to)|address[ \t]*:|ich[ \t]+wohne[ \t]+(?:in[ \t]+der|an[ \t]+"
    r"der|am)|meine[ \t]+(?:adresse|anschrift)[ \t]+(?:ist|lautet)|anschrift[ \t]*:|"
    r"adresse[ \t]*:|j'habite[ \t]+(?:au|à|a)|mon[ \t]+adresse[ \t]+est|ik[ \t]+woon[ \t]+"
    r"(?:op|aan)|mijn[ \t]+adres[ \t]+is|adres[ \t]*:)[ \t]*:?[ \t]*"
)

ADDRESS_CUE = Cue(
    "address",
    (
        "i live",
        "i reside",
        "living at",
        "living on",
        "address",
        "adress",
        "anschrift",
        "wohne",
        "habite",
        "woon",
    ),
)
PO_BOX_CUE = Cue("po box", ("box", "postfach", "boîte"))
STREET_NAME_CUE = Cue(
    "street name before its number",
    tuple(
        sorted(
            words(
                "straße strasse str. gasse allee platz weg damm ufer chaussee "
                "straat laan gracht plein kade singel dijk steeg ring"
            )
        )
    ),
)
CUES = (ADDRESS_CUE, PO_BOX_CUE, STREET_NAME_CUE)

# Words an address written after a cue may hold besides numbers and capitalized words.
_ADDRESS_WORDS = words(
    """
    street st road rd avenue ave lane ln drive dr boulevard blvd court ct place pl square sq
    terrace way close crescent gardens grove hill parkway highway row mews walk flat apt
    apartment unit suite floor po box rue chemin impasse quai allée allee straße strasse str
    weg gasse platz straat laan gracht plein kade
    """
)
_STOPS = words(
    """
    and but so since because which where who when while is was for with to my i if or then
    that this it please
    """
)
_CUE_TOKEN = re.compile(
    rf"(?P<postcode>{_UK_POSTCODE})(?![A-Za-z0-9])|(?P<number>#?\d[\w/-]*)|"
    r"(?P<word>[^\W\d_][\w'.-]*)|(?P<comma>,)"
)
_SPACE = re.compile(r"[ \t]+")
_LOOK_BEHIND = 60
_MAX_CUE_TOKENS = 16
_MAX_LOWERCASE_RUN = 3
_ZIP_LENGTH = 5


def address_spans(scan: TextScan) -> list[Span]:
    """Spans of postal addresses in the text."""
    text = scan.text
    spans: list[Span] = []
    if scan.has_digits:
        for start, end in (
            *_numbered_streets(text),
            *_streets_before_numbers(scan),
            *_us_zip_codes(scan),
            *_uk_postcodes(text),
        ):
            spans.append((start, _extend(text, end)))
        if scan.has(PO_BOX_CUE):
            for match in _PO_BOX.finditer(scan.lowered):
                if starts_word(text, match.start()):
                    spans.append((match.start(), _extend(text, match.end())))
    if scan.has(ADDRESS_CUE):
        for match in _CUE.finditer(scan.lowered):
            if starts_word(text, match.start()):
                after_cue = _address_after_cue(text, match.end())
                if after_cue is not None:
                    spans.append((after_cue[0], _extend(text, after_cue[1])))
    return spans


def _after_a_number_boundary(text: str, start: int) -> bool:
    """A house number or ZIP code is not the tail of a longer token ("A-12", "+44 12")."""
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] in "-_+")


def _numbered_streets(text: str) -> list[Span]:
    found: list[Span] = []
    for street in _NUMBERED_STREET.finditer(text):
        start = street.start()
        if _after_a_number_boundary(text, start):
            unit = _UNIT_BEFORE.search(text, max(0, start - _LOOK_BEHIND), start)
            found.append(((unit.start() if unit else start), street.end()))
    return found


def _streets_before_numbers(scan: TextScan) -> list[Span]:
    """German and Dutch streets: the name, then the number ("Hauptstraße 5")."""
    if not scan.has(STREET_NAME_CUE):
        return []
    text = scan.text
    found: list[Span] = []
    for start, _ in scan.digit_runs:
        if start < 2 or text[start - 1] not in " \t" or not _after_a_number_boundary(text, start):
            continue
        before = _STREET_BEFORE_NUMBER.search(text, max(0, start - _LOOK_BEHIND), start)
        number = _HOUSE_NUMBER_AT.match(text, start)
        if before is not None and number is not None and starts_word(text, before.start()):
            found.append((before.start(), number.end()))
    return found


def _us_zip_codes(scan: TextScan) -> list[Span]:
    """A five-digit ZIP code counts only after a city and a state ("Springfield, IL")."""
    text = scan.text
    found: list[Span] = []
    for start, end in scan.digit_runs:
        if end - start != _ZIP_LENGTH or not (ends_word(text, end) or text.startswith("-", end)):
            continue
        if start < 3 or not text[start - 3 : start - 1].isupper():
            continue  # not "<state> <zip>"
        state = _US_CITY_STATE_BEFORE.search(text, max(0, start - _LOOK_BEHIND), start)
        if state is not None and starts_word(text, state.start()):
            extension = _ZIP_EXTENSION.match(text, end)
            found.append((state.start(), extension.end() if extension else end))
    return found


def _uk_postcodes(text: str) -> list[Span]:
    """From each inward part (a digit and two letters, "6XE") back to its outward part."""
    found: list[Span] = []
    for inward in _UK_INWARD.finditer(text):
        for begin in range(max(0, inward.start() - 5), inward.start()):
            postcode = _UK_POSTCODE_AT.match(text, begin)
            if postcode is not None and postcode.end() == inward.end() and starts_word(text, begin):
                found.append((begin, postcode.end()))
                break
    return found


def _extend(text: str, end: int) -> int:
    """Extend an address that ends at ``end`` over its unit, postcode, city and country."""
    lines_crossed = 0
    while True:
        match = _CONTINUATION.match(text, end)
        if match is None:
            return end
        crosses_line = "\n" in match.group("separator")
        # A line below an address belongs to it only when it carries a code (postcode, unit).
        if crosses_line and (match.group("coded") is None or lines_crossed >= 2):
            return end
        lines_crossed += crosses_line
        end = match.end()


def _address_after_cue(text: str, position: int) -> Span | None:
    """The address-looking words after a cue, on its line: numbers, postcodes, capitalized and
    street words; lower-case words only between those ("12 baker street"). It ends before the
    first word that continues the sentence ("... and my parcel never came")."""
    index = position
    start: int | None = None
    end: int | None = None
    tentative = 0
    for _ in range(_MAX_CUE_TOKENS):
        match = _CUE_TOKEN.match(text, index)
        if match is None:
            break
        token = match.group()
        key = token.lower().rstrip(".")
        if match.group("word") is not None and key in _STOPS:
            break
        committed = (
            match.group("postcode") is not None
            or match.group("number") is not None
            or (match.group("word") is not None and (token[0].isupper() or key in _ADDRESS_WORDS))
        )
        if committed:
            start = match.start() if start is None else start
            end = match.end()
            if token.endswith(".") and key not in _ADDRESS_WORDS:
                end -= 1  # a sentence's full stop
            tentative = 0
        else:
            tentative += 1
            if tentative > _MAX_LOWERCASE_RUN:
                break
        index = match.end()
        spaces = _SPACE.match(text, index)
        if spaces:
            index = spaces.end()
    if start is None or end is None:
        return None
    return start, end
