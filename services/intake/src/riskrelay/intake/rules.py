"""The versioned rule pack: which words in a ticket point at which protocol indicator.

Rules are data, not code, so risk and support staff can read, review and extend them. The pack
is a list of YAML files applied in order: the shipped ``rules/default.yaml`` first, then any
operator extensions. Every file has a top-level ``version``; the pack's version joins them with
``+`` (``2025.11.2+acme-3``) and is stamped on every flagged ticket, so each decision can be
traced to the exact rules that made it.

A file may:

* add ``rules`` (an id that already exists is an error: disable the old one and add a new id,
  so the audit trail never has two meanings for one id);
* ``disable`` rule or boilerplate ids from earlier files (an unknown id is an error, which
  catches typos that would otherwise leave a rule silently active);
* add ``boilerplate`` patterns (text removed before matching: signatures, legal footers);
* override ``settings`` (severe-impact amount threshold, negation cues, evidence context).

Everything is validated and compiled once at load; a bad file raises :class:`RulePackError`
naming the file, the rule id and the reason. Matching then never compiles a regex again.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import ahocorasick
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from riskrelay.intake.errors import RulePackError
from riskrelay.shared.events import Indicator

# The regex parser is private (re._parser since 3.11; the public alias sre_parse is deprecated).
# It is only used to derive needles for a speed-up; a failure there disables the speed-up only.
sre_parser: Any = importlib.import_module("re._parser")
sre_constants: Any = importlib.import_module("re._constants")

# Indicators that intake computes from state (clusters, rates) or from the agent's flag; a text
# rule claiming them would be a configuration mistake.
COMPUTED_INDICATORS = frozenset(
    {Indicator.MULTIPLE_SIMILAR_REPORTS, Indicator.UNUSUAL_PATTERN, Indicator.AGENT_RISK_FLAG}
)
TEXT_INDICATORS = frozenset(Indicator) - COMPUTED_INDICATORS

_RULE_ID = r"^[a-z0-9][a-z0-9_.\-]{0,127}$"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleSpec(_Strict):
    """One detection rule as written in YAML."""

    id: str = Field(pattern=_RULE_ID, description="Stable id; appears in every detection.")
    indicator: Indicator = Field(description="Protocol indicator the rule detects.")
    description: str = Field(min_length=1, max_length=1_000, description="What it means.")
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence of a match, 0-1.")
    patterns: list[str] = Field(
        default_factory=list,
        description="Regular expressions (case-insensitive; use (?-i:...) for exact case). "
        "Any one matching (and not negated) fires the rule.",
    )
    min_amount: float | Literal["threshold"] | None = Field(
        default=None,
        description="Also require the largest money amount to be at least this much; "
        "`threshold` means the pack's severe_impact_amount_threshold.",
    )
    negatable: bool = Field(
        default=True, description="Whether a nearby negation ('not', 'no') suppresses a match."
    )

    @field_validator("indicator")
    @classmethod
    def _text_indicator(cls, value: Indicator) -> Indicator:
        if value in COMPUTED_INDICATORS:
            raise ValueError(f"indicator {value.value!r} is computed by intake, not by text rules")
        return value


class BoilerplateSpec(_Strict):
    """Text removed before rules run, so footers and signatures cannot trigger them."""

    id: str = Field(pattern=_RULE_ID)
    description: str = Field(default="", max_length=1_000)
    pattern: str = Field(description="Regex, case-insensitive, matched per line (multiline).")
    scope: Literal["line", "paragraph", "rest"] = Field(
        description="What to drop from the match on: the line, the paragraph, or all the rest."
    )


class SettingsSpec(_Strict):
    """Pack-wide settings; every field optional so an extension overrides only what it names."""

    severe_impact_amount_threshold: float | None = Field(default=None, ge=0)
    negation_cues: list[str] | None = None
    negation_exceptions: list[str] | None = None
    negation_window_words: int | None = Field(default=None, ge=0, le=20)
    evidence_context_chars: int | None = Field(default=None, ge=0, le=400)


class RulePackFile(_Strict):
    """One YAML file of the pack (the default or an operator extension)."""

    version: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._\-]+$")
    description: str = ""
    settings: SettingsSpec = SettingsSpec()
    disable: list[str] = Field(default_factory=list)
    boilerplate: list[BoilerplateSpec] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Compiled form
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    indicator: Indicator
    description: str
    confidence: float
    regex: re.Pattern[str] | None
    min_amount: float | None
    negatable: bool
    needles: frozenset[str] | None = None
    """Lower-case strings of which any match must contain one (``None``: no such set).

    Derived from the pattern at load time; checking ``needle in text.lower()`` is C-speed
    substring search, so rules whose words are absent cost almost nothing. A regex with
    IGNORECASE is ~10x slower per position than a substring scan.
    """

    def may_match(self, present_needles: frozenset[str] | set[str]) -> bool:
        """Given the pack's needles found in the text, whether this rule can match at all."""
        return self.needles is None or not self.needles.isdisjoint(present_needles)


@dataclass(frozen=True, slots=True)
class CompiledBoilerplate:
    id: str
    regex: re.Pattern[str]
    scope: Literal["line", "paragraph", "rest"]


@dataclass(frozen=True, slots=True)
class RulePack:
    """A validated, compiled rule pack. Build with :func:`load_rule_pack` or :func:`build_rule_pack`."""

    version: str
    rules: tuple[CompiledRule, ...]
    boilerplate: tuple[CompiledBoilerplate, ...]
    severe_impact_amount_threshold: float
    negation_cues: frozenset[str]
    negation_exceptions: re.Pattern[str] | None
    negation_window_words: int
    evidence_context_chars: int
    needles: tuple[str, ...] = ()
    _needle_automaton: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One Aho-Corasick pass finds every needle (overlaps included) instead of one substring
        # search per needle: the same set, in a fraction of the time.
        if self.needles:
            automaton = ahocorasick.Automaton()
            for needle in self.needles:
                automaton.add_word(needle, needle)
            automaton.make_automaton()
            object.__setattr__(self, "_needle_automaton", automaton)

    def present_needles(self, lowered_text: str) -> set[str]:
        """The rule needles that occur in ``lowered_text``."""
        if self._needle_automaton is None:
            return set()
        return {needle for _, needle in self._needle_automaton.iter(lowered_text)}

    def rule(self, rule_id: str) -> CompiledRule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


_BASE_SETTINGS: dict[str, Any] = {
    "severe_impact_amount_threshold": 10_000.0,
    "negation_cues": ["not", "no", "never", "without", "none", "nor", "neither", "nothing"],
    "negation_exceptions": [],
    "negation_window_words": 3,
    "evidence_context_chars": 60,
}


_GAP_MACRO = re.compile(r"<gap:(\d{1,2})>")


def _expand_gaps(pattern: str, negation_cues: frozenset[str]) -> str:
    """Replace ``<gap:N>`` with "up to N words, none of them a negation".

    This keeps a negation *inside* a match from passing ("data was not exposed"), which the
    look-behind negation window cannot see.
    """
    cues = "|".join(sorted((re.escape(cue) for cue in negation_cues), key=len, reverse=True))
    word = rf"(?!(?:{cues}|\w+n't)\b)[\w'\-]+[\s,]+"
    return _GAP_MACRO.sub(lambda m: f"(?:{word}){{0,{m.group(1)}}}?", pattern)


def _compile(source: str, pattern: str, rule_id: str, flags: int) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern, flags)
    except re.error as error:
        raise RulePackError(source, f"invalid pattern {pattern!r}: {error}", rule_id) from error
    if compiled.search("") is not None:
        raise RulePackError(source, f"pattern {pattern!r} matches empty text", rule_id)
    return compiled


def build_rule_pack(documents: Sequence[tuple[str, Mapping[str, Any]]]) -> RulePack:
    """Validate and compile parsed YAML documents, given as ``(source name, content)`` pairs.

    Pure: no file access, so tests and tools can build packs from dictionaries.
    """
    if not documents:
        raise RulePackError("<rule pack>", "at least one rule pack file is required")
    versions: list[str] = []
    rules: dict[str, tuple[str, RuleSpec]] = {}
    boilerplate: dict[str, tuple[str, BoilerplateSpec]] = {}
    settings: dict[str, Any] = dict(_BASE_SETTINGS)
    for source, content in documents:
        parsed = _validate_file(source, content)
        versions.append(parsed.version)
        for disabled in parsed.disable:
            if rules.pop(disabled, None) is None and boilerplate.pop(disabled, None) is None:
                raise RulePackError(source, "cannot disable: no such rule or boilerplate", disabled)
        for spec in parsed.rules:
            if spec.id in rules:
                raise RulePackError(
                    source, f"duplicate id (defined in {rules[spec.id][0]})", spec.id
                )
            if not spec.patterns and spec.min_amount is None:
                raise RulePackError(source, "a rule needs patterns, min_amount or both", spec.id)
            rules[spec.id] = (source, spec)
        for block in parsed.boilerplate:
            if block.id in boilerplate:
                raise RulePackError(source, "duplicate boilerplate id", block.id)
            boilerplate[block.id] = (source, block)
        settings.update(parsed.settings.model_dump(exclude_none=True))

    version = "+".join(versions)
    if len(version) > 64:
        raise RulePackError(documents[-1][0], f"combined version {version!r} exceeds 64 characters")
    threshold = float(settings["severe_impact_amount_threshold"])
    cues = frozenset(cue.casefold() for cue in settings["negation_cues"])
    exceptions = [e for e in settings["negation_exceptions"] if e]
    compiled_rules = tuple(
        _compile_rule(src, spec, threshold, cues) for src, spec in rules.values()
    )
    return RulePack(
        version=version,
        rules=compiled_rules,
        needles=tuple(sorted({n for rule in compiled_rules for n in rule.needles or ()})),
        boilerplate=tuple(
            CompiledBoilerplate(
                b.id, _compile(src, b.pattern, b.id, re.IGNORECASE | re.MULTILINE), b.scope
            )
            for src, b in boilerplate.values()
        ),
        severe_impact_amount_threshold=threshold,
        negation_cues=cues,
        negation_exceptions=(
            re.compile("|".join(rf"\b{re.escape(e)}\b" for e in exceptions), re.IGNORECASE)
            if exceptions
            else None
        ),
        negation_window_words=int(settings["negation_window_words"]),
        evidence_context_chars=int(settings["evidence_context_chars"]),
    )


def _validate_file(source: str, content: Mapping[str, Any]) -> RulePackFile:
    if not isinstance(content, Mapping):
        raise RulePackError(source, "the file must hold a mapping with `version` and `rules`")
    try:
        return RulePackFile.model_validate(content)
    except ValidationError as error:
        first = error.errors()[0]
        location = first["loc"]
        rule_id: str | None = None
        if len(location) >= 2 and location[0] in ("rules", "boilerplate"):
            items = content.get(str(location[0])) or []
            index = location[1]
            if isinstance(index, int) and index < len(items) and isinstance(items[index], Mapping):
                rule_id = str(items[index].get("id", f"#{index}"))
        field = ".".join(str(part) for part in location)
        raise RulePackError(source, f"{field}: {first['msg']}", rule_id) from error


_MIN_NEEDLE = 3
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT)


def _better(
    current: frozenset[str] | None, candidate: frozenset[str] | None
) -> frozenset[str] | None:
    """Prefer the requirement whose shortest string is longest (most selective)."""
    if not candidate:
        return current
    if current is None:
        return candidate
    key = (min(map(len, candidate)), -len(candidate))
    return candidate if key > (min(map(len, current)), -len(current)) else current


def _required_substrings(items: Iterable[tuple[Any, Any]]) -> frozenset[str] | None:
    """A set of strings one of which every match of this parsed sequence must contain."""
    best: frozenset[str] | None = None
    run: list[str] = []
    for op, value in items:
        if op is sre_constants.LITERAL:
            run.append(chr(value).lower())
            continue
        if run:
            best = _better(best, frozenset({"".join(run)}))
            run = []
        if op is sre_constants.SUBPATTERN:
            best = _better(best, _required_substrings(value[3]))
        elif op is sre_constants.ATOMIC_GROUP:
            best = _better(best, _required_substrings(value))
        elif op is sre_constants.BRANCH:
            alternatives = [_required_substrings(branch) for branch in value[1]]
            if all(alternatives):
                best = _better(best, frozenset().union(*alternatives))  # type: ignore[arg-type]
        elif op in _REPEATS and value[0] >= 1:
            best = _better(best, _required_substrings(value[2]))
    if run:
        best = _better(best, frozenset({"".join(run)}))
    return best


def required_needles(pattern: str) -> frozenset[str] | None:
    """Needles for :attr:`CompiledRule.needles`, or ``None`` when none are selective enough."""
    try:
        needles = _required_substrings(sre_parser.parse(pattern, re.IGNORECASE))
    except Exception:  # an analysis failure must only cost speed, never correctness
        return None
    if not needles or min(map(len, needles)) < _MIN_NEEDLE:
        return None
    return needles


def _compile_rule(
    source: str, spec: RuleSpec, threshold: float, negation_cues: frozenset[str]
) -> CompiledRule:
    regex: re.Pattern[str] | None = None
    if spec.patterns:
        expanded = [_expand_gaps(pattern, negation_cues) for pattern in spec.patterns]
        for original, pattern in zip(spec.patterns, expanded, strict=True):
            try:
                _compile(source, pattern, spec.id, re.IGNORECASE)
            except RulePackError as error:
                reason = error.reason.replace(repr(pattern), repr(original))
                raise RulePackError(source, reason, spec.id) from error
        combined = "|".join(f"(?:{p})" for p in expanded)
        regex = _compile(source, combined, spec.id, re.IGNORECASE)
    min_amount = threshold if spec.min_amount == "threshold" else spec.min_amount
    return CompiledRule(
        id=spec.id,
        indicator=spec.indicator,
        description=spec.description,
        confidence=spec.confidence,
        regex=regex,
        min_amount=None if min_amount is None else float(min_amount),
        negatable=spec.negatable,
        needles=required_needles(regex.pattern) if regex is not None else None,
    )


# ---------------------------------------------------------------------------------------------
# Loading (the only I/O in this module)
# ---------------------------------------------------------------------------------------------


def default_rule_pack_path() -> Path:
    return Path(str(resources.files("riskrelay.intake").joinpath("rules", "default.yaml")))


def load_rule_pack(
    extensions: Sequence[str | Path] = (), *, include_default: bool = True
) -> RulePack:
    """Read the default pack plus operator extension files, in order, and compile them."""
    paths = [default_rule_pack_path()] if include_default else []
    paths += [Path(p) for p in extensions]
    documents: list[tuple[str, Mapping[str, Any]]] = []
    for path in paths:
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise RulePackError(str(path), f"cannot read: {error}") from error
        except yaml.YAMLError as error:
            raise RulePackError(str(path), f"not valid YAML: {error}") from error
        documents.append((str(path), content))
    return build_rule_pack(documents)
