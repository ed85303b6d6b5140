"""Person names: the ones the event carries, and the ones the text itself marks as names.

No library finds names in support text without a language model, so there are two sources:

* **Known names** (:class:`KnownNames`): the customer's and agent's names from the upstream
  event. The full name and each first or last name of three or more letters (name particles
  such as "van" or "de" excepted) are found in any case, except names that are also common
  words ("Will", "Rose", "Price", "Banks", "Chase"), found only where written capitalized, so
  "the price will rise" keeps its words.
* **Cues**: labelled fields (``Name:``, ``From:``, ``Customer:``), introductions ("My name is
  ...", "Hi, I'm ..."), salutations ("Dear ...", "Hi Anna,"), titles ("Mr P. Okafor") and the
  line after a sign-off ("Kind regards", "Thanks,", "Cheers" ...). The words after a cue count
  as a name only when they look like one: capitalized, not a common sentence opener ("I", "The",
  "Thanks", "Support"), and, after a weak cue such as ``Customer:`` or a sign-off, ending the
  line, so a chat transcript's "Customer: I can't log in" keeps its words.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from riskrelay.intake.pii import Cue, Span, TextScan, starts_word, words

MIN_TOKEN_LENGTH = 3

_PARTICLES = words(
    """
    van von der den de da di du del della des la le al el bin ibn ben bint y dos das do zu
    ter ten st mac
    """
)
# Capitalized words that open sentences, greet or sign, but do not name a person.
_NOT_NAMES = words(
    """
    i i'm i'll i've i'd im the this that these those my mine we our us you your yours it
    it's its he she they them their there here please thanks thank thx hello hi hey hiya
    dear yes no not and but or so if when what why how where who whom which can could would
    will should shall may might must just also sorry support team teams all everyone
    everybody anyone folks guys sir madam madame sirs customer customers client clients
    agent agents service services sent regards best kind cheers many warm warmest sincerely
    yours ps p.s a an in on at for from to with as is are was were be been being since after
    before today yesterday tomorrow tonight morning afternoon evening monday tuesday
    wednesday thursday friday saturday sunday again still unfortunately hope hoping looking
    writing having trying getting contacting calling reaching following regarding re fwd fw
    order orders account accounts card cards payment payments ticket tickets error issue
    issues problem problems help urgent new old unknown none anonymous user users admin
    administrator management manager sales billing security privacy legal office department
    desk helpdesk guest member owner staff system bot assistant virtual operator automated
    auto noreply no-reply donotreply do-not-reply info contact enquiries inquiries mail
    email e-mail message note notes subject topic reply details customer's company ltd inc
    gmbh llc plc bank care centre center app website online mobile phone web chat live
    direct very really extremely quite absolutely totally completely currently unable
    disappointed frustrated upset angry worried concerned confused locked
    """
)
# Words after "my name is" that continue the sentence instead of naming someone.
_NOT_LOWERCASE_NAMES = _NOT_NAMES | words(
    """
    wrong incorrect correct right different changed missing listed spelled spelt shown
    displayed printed written misspelled correctly incorrectly still also now already on in
    at of by as is was are were has had have will would should can could cannot isn't wasn't
    doesn't don't didn't won't because since though although than then listed known used
    attached linked registered saved stored visible everywhere somewhere nowhere too very
    same
    """
)
_TITLES = words("mr mrs ms miss mx dr prof herr frau mme mlle mevr dhr")
# Names that are also common words: matched only where written with a capital.
_WORD_NAMES = words(
    """
    will mark bill grace hope joy faith rose may june april august summer autumn winter dawn
    amber ivy jay ray hunter baker cook price rich young wood woods hill hills lane street
    case field fields stone banks bank frank sterling brown white green black gray grey king
    long short little small hall park parks page love gold silver bishop carpenter cross
    dean duke earl fox glass hart heart holiday house hunt key knight lord major mason
    miller moon more noble north west east south penny pool porter power reed read rice
    rivers river rock rush sharp shepherd smith snow sparks spring star swift taylor temple
    turner wall walker ward waters webb wells wolf wright chase chance cash clay cliff dale
    drew ford gene glen guy jack jade jean jewel lily lee mae max miles nick pat pearl rob
    robin rusty sandy skip sunny sue ted terry violet wade warren wren art bob bud buck chip
    chuck iris lucky marsh melody norm patience pepper sage sky storm trinity august best
    bond booth bush butler carter chambers church coles collins cole craft day dick don doe
    early english fair farmer fisher fletcher gardner golden good goodman guard hale hardy
    hawk head hope horn howard jenkins joiner judge lamb land lawyer link lock mann march
    marshal mayor mills mint moss nash new page parsons pike pine platt poor post pound
    pride rain ranger rank rex rider root rose sale salt savage sellers sexton shaw ship
    short singer slater sole spark speed spencer stark steel stock strong stuart sweet
    tanner thorn toll trim tucker vale vance wagner wise woodman worth yard
    """
)

# A word of letters with inner apostrophes or hyphens ("O'Connor", "Jean-Luc"), or an initial.
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['-](?=[^\W\d_]))*\.?")
_HORIZONTAL_SPACE = re.compile(r"[ \t]+")
# What may follow a name that ends its field: end of line, a delimiter, a dash, the next label.
_NAME_END = re.compile(
    r"[ \t]*(?:$|\n|[,;<(\[|/!?]|\.(?:\s|$)|[ \t]+[-\u2013\u2014]|[ \t]+[\w-]+:)"
)

# The cue patterns run over the lower-cased text and carry no flags (see riskrelay.intake.pii).
# Cues that open a line, in one pattern so the text is scanned once: a field label, a greeting
# (possibly followed by an introduction, "Hi, I'm ..."), or a sign-off.
_LINE_CUE = re.compile(
    r"^[ \t]*(?:"
    r"(?P<label>(?:full|first|last|given|family|middle|sur|customer|contact|account|"
    r"account[ _-]?holder|card[ _-]?holder|your|display|user|client|patient|passenger|guest|"
    r"caller|sender|requester)?[ _-]?name|nom|pr[ée]nom|naam|vorname|nachname|from|customer|"
    r"sender|requester|requested[ _-]by|submitted[ _-]by|reported[ _-]by|contact|caller|"
    r"account[ _-]holder|card[ _-]?holder|patient|passenger|kunde|absender)[ \t]*:[ \t]*"
    r"|(?P<greeting>dear|hi|hello|hey|hiya|good[ \t]+(?:morning|afternoon|evening)|greetings|"
    r"hallo|liebe[rs]?|sehr[ \t]+geehrte[rs]?|bonjour|cher|ch[èe]re|beste|hoi|hola)"
    r"(?:[ \t]+(?:there|team|all|everyone|support))?[ \t]*[,!.]?[ \t]*"
    r"(?P<introduction>(?:i'm|i[ \t]+am|this[ \t]+is|it's|it[ \t]+is|here[ \t]+is)[ \t]+)?"
    r"|(?P<sign_off>(?:(?:best|kind|kindest|warm|warmest|many|with[ \t]+(?:kind[ \t]+)?|"
    r"all[ \t]+the)[ \t]+)?(?:regards|wishes|thanks|thank[ \t]+you|cheers|sincerely|yours"
    r"(?:[ \t]+(?:sincerely|faithfully|truly))?|best|rgds|br|thx|ta|mit[ \t]+freundlichen"
    r"[ \t]+gr(?:ü|ue)(?:ß|ss)en|(?:viele|beste|liebe|freundliche)[ \t]+gr(?:ü|ue)(?:ß|ss)e|"
    r"gr(?:ü|ue)(?:ß|ss)e|cordialement|bien[ \t]+(?:à|a)[ \t]+vous|salutations|met[ \t]+"
    r"vriendelijke[ \t]+groet(?:en)?|groeten|saludos|atentamente|cordiali[ \t]+saluti)"
    r"[ \t]*[,.!]*[ \t]*(?:\n[ \t]*){0,2}))",
    re.MULTILINE,
)
_NAME_LABELS = ("name", "nom", "naam")
_INTRODUCTION = re.compile(
    r"(?:my[ \t]+name[ \t]+is|my[ \t]+name's|i[ \t]+am[ \t]+called|i'm[ \t]+called|"
    r"mein[ \t]+name[ \t]+ist|ich[ \t]+hei(?:ß|ss)e|je[ \t]+m'appelle|mon[ \t]+nom[ \t]+est|"
    r"mijn[ \t]+naam[ \t]+is|me[ \t]+llamo|mi[ \t]+nombre[ \t]+es)[ \t]*:?[ \t]+"
)
INTRODUCTION_CUE = Cue(
    "introduction", ("name", "called", "heiß", "heiss", "appelle", "nom", "naam", "llamo")
)
CUES = (INTRODUCTION_CUE,)
# Titles are matched in the original text: "Miss" the title is capitalized, "miss" is a verb.
_TITLE = re.compile(r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herr|Frau|Mme|Mlle|Mevr|Dhr)\.?[ \t]+")


# ---------------------------------------------------------------------------------------------
# Known names
# ---------------------------------------------------------------------------------------------


def _clean(name: str) -> str:
    folded = unicodedata.normalize("NFKC", name).replace("\u2019", "'")
    return " ".join(folded.split())


def _letters(word: str) -> int:
    return len(word) - word.count("'") - word.count("-")


def _tokens(name: str) -> Iterator[str]:
    for word in name.split(" "):
        word = word.strip('.,;:()"')
        pieces = {word, *word.split("-")}
        if "'" in word:
            pieces.add(word.rsplit("'", 1)[1])
        for piece in pieces:
            if _letters(piece) >= MIN_TOKEN_LENGTH and piece not in _PARTICLES:
                yield piece


@dataclass(frozen=True, slots=True)
class KnownNames:
    """Person names an event carries (customer, agent), prepared for finding them in text.

    ``full_names`` and ``tokens`` (first and last names) are matched in any case,
    ``capitalized_tokens`` (names that are also common words) only where written with a
    capital. All are stored lower-cased, longest first.
    """

    full_names: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    capitalized_tokens: tuple[str, ...] = ()

    @classmethod
    def of(cls, *names: str | None) -> KnownNames:
        """The names to look for, from the event's raw name fields (``None`` where absent)."""
        present = tuple(name for name in names if name)
        return _known_names(present) if present else NO_NAMES

    def __bool__(self) -> bool:
        return bool(self.full_names or self.tokens or self.capitalized_tokens)


NO_NAMES = KnownNames()


@functools.lru_cache(maxsize=4096)
def _known_names(names: tuple[str, ...]) -> KnownNames:
    """Cached: an agent's name comes with every ticket they hold."""
    full_names: set[str] = set()
    tokens: set[str] = set()
    for name in names:
        cleaned = _clean(name).lower()
        if _letters(cleaned.replace(" ", "")) < 2 or all(
            word in _NOT_NAMES for word in cleaned.split(" ")
        ):
            continue
        full_names.add(cleaned)
        tokens.update(_tokens(cleaned))
    tokens -= full_names
    word_names = {token for token in tokens if token in _WORD_NAMES or token in _NOT_NAMES}
    return KnownNames(
        _longest_first(full_names), _longest_first(tokens - word_names), _longest_first(word_names)
    )


def _longest_first(values: set[str]) -> tuple[str, ...]:
    return tuple(sorted(values, key=lambda value: (-len(value), value)))


def _is_cased(ch: str) -> bool:
    return ch.lower() != ch.upper()


def _at_word_edges(text: str, start: int, end: int) -> bool:
    """``text[start:end]`` is not part of a longer word (edges of uncased scripts are free)."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    left_free = not (before.isalnum() or before == "_") or not _is_cased(text[start])
    right_free = not (after.isalnum() or after == "_") or not _is_cased(text[end - 1])
    return left_free and right_free


def _occurrences(lowered: str, needle: str) -> Iterator[int]:
    start = lowered.find(needle)
    while start != -1:
        yield start
        start = lowered.find(needle, start + 1)


def known_name_spans(scan: TextScan, names: KnownNames) -> list[Span]:
    """Spans of the event's names in the text."""
    text, lowered = scan.text, scan.lowered
    spans: list[Span] = []
    for needle in (*names.full_names, *names.tokens):
        for start in _occurrences(lowered, needle):
            end = start + len(needle)
            if _at_word_edges(text, start, end):
                spans.append((start, end))
    for needle in names.capitalized_tokens:
        for start in _occurrences(lowered, needle):
            end = start + len(needle)
            first = text[start]
            capitalized = first.isupper() or not _is_cased(first)
            if capitalized and _at_word_edges(text, start, end):
                spans.append((start, end))
    return spans


# ---------------------------------------------------------------------------------------------
# Names marked by the text
# ---------------------------------------------------------------------------------------------


def _is_capitalized(word: str) -> bool:
    return word[0].isupper() or not _is_cased(word[0])


def name_after(
    text: str,
    position: int,
    *,
    lowercase: bool = False,
    must_end_field: bool = True,
    max_words: int = 4,
) -> Span | None:
    """The name that starts at ``position`` (after a cue), or ``None`` if none does.

    ``lowercase`` accepts names written in lower case (after "My name is" or ``Name:``);
    ``must_end_field`` requires the name to end its line or field, as after a sign-off.
    """
    index = position
    start: int | None = None
    end: int | None = None
    words = 0
    pending_particle = False
    while words < max_words:
        match = _WORD.match(text, index)
        if match is None:
            break
        word = match.group()
        word_end = match.end()
        if word.endswith(".") and len(word) > 3:
            word, word_end = word[:-1], word_end - 1  # a sentence's full stop, not an initial
        if text.startswith(":", word_end):
            break  # the next field's label
        key = word.lower()
        if start is None and key.rstrip(".") in _TITLES and _is_capitalized(word):
            index = _skip_space(text, word_end)
            if index == word_end:
                break
            continue
        if key in _PARTICLES and start is not None:
            pending_particle = True
        elif (_is_capitalized(word) and key not in _NOT_NAMES) or (
            lowercase and _looks_like_lowercase_name(key) and words < 2
        ):
            pending_particle = False
        else:
            break
        if start is None:
            start = match.start()
        if not pending_particle:
            end = word_end
        words += 1
        index = _skip_space(text, word_end)
        if index == word_end:
            break
    if start is None or end is None:
        return None
    if must_end_field and _NAME_END.match(text, end) is None:
        return None
    return start, end


def _skip_space(text: str, index: int) -> int:
    match = _HORIZONTAL_SPACE.match(text, index)
    return match.end() if match else index


def _looks_like_lowercase_name(word: str) -> bool:
    return (
        len(word) >= 2
        and word not in _NOT_LOWERCASE_NAMES
        and not word.endswith(("ed", "ing", "ly"))
        and word.isalpha()
    )


def cued_name_spans(scan: TextScan) -> list[Span]:
    """Spans of names that a label, an introduction, a salutation, a title or a sign-off marks."""
    text, lowered = scan.text, scan.lowered
    spans: list[Span] = []
    for match in _LINE_CUE.finditer(lowered):
        label = match.group("label")
        if label is not None:
            is_name_field = any(name_label in label for name_label in _NAME_LABELS)
            found = name_after(
                text, match.end(), lowercase=is_name_field, max_words=5 if is_name_field else 4
            )
        elif match.group("introduction") is not None:
            found = name_after(text, match.end(), must_end_field=False)
        else:  # a greeting addressing someone ("Dear Anna,") or a sign-off
            found = name_after(text, match.end())
        if found:
            spans.append(found)
    if scan.has(INTRODUCTION_CUE):
        for match in _INTRODUCTION.finditer(lowered):
            if starts_word(lowered, match.start()):
                found = name_after(text, match.end(), lowercase=True, must_end_field=False)
                if found:
                    spans.append(found)
    for match in _TITLE.finditer(text):
        if starts_word(text, match.start()) and text[match.end() : match.end() + 1].isalpha():
            found = name_after(text, match.end(), must_end_field=False, max_words=3)
            if found:
                spans.append(found)
    return spans
