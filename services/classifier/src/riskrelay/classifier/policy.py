"""The risk policy: versioned configuration that turns a risk's facts into a level and a category.

The protocol's table (Critical = data breach or outage, High = significant impact on multiple
customers, ...) is policy, not code: Risk Management changes it by shipping a new policy file
with a new ``version``, and every ``RiskClassified`` names the version that decided it.

Precedence, stated once so reviewers and policy authors can rely on it:

1. **Level rules** (``effect: sets_level``): the *base level* is the highest ``level`` among the
   matching level rules. If none matches, the base is the agent's Risk Flag level when there is
   one (the only assessment available), else the policy's ``default_level``.
2. **Modifiers** (``effect: raises_level``): impact signals (vulnerable customer, financial
   amount, key segment, many customers, urgent priority) raise the base. A modifier applies only
   when the base is at least its ``min_base_level``; together they raise by at most
   ``modifier_limits.max_total_raise`` levels and never above ``modifier_limits.ceiling`` (by
   default a modifier can make a risk High, but only a breach or an outage makes it Critical).
   Modifiers never lower anything.
3. **Agent floor**: the final level is at least the agent's Risk Flag level: a floor, never a
   ceiling (a flag of 2 on a data breach leaves it Critical).
4. **Category**: from the matching rule (level or ``sets_category`` rule) with the highest
   ``priority``. The agent's category competes at ``agent_category_priority`` when the policy
   sets it, otherwise it is used only when no rule proposes a category; ``default_category``
   is the last resort. Priorities are unique, so there are never ties.

Rules match on the whole risk (every ticket seen so far), not only on the newest ticket, so
"a surge that involves data exposure" works whichever ticket brought which fact. Detections
match by indicator name and/or intake rule-id glob, so a policy keeps working when intake's
rule pack adds rule ids it does not know.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from riskrelay.shared.events import (
    Indicator,
    PersonalDataKind,
    RiskCategory,
    RiskLevel,
    RuleContribution,
)

AGENT_FLAG_RULE_ID = "agent_risk_flag"
DEFAULT_LEVEL_RULE_ID = "policy.default_level"
DEFAULT_CATEGORY_RULE_ID = "policy.default_category"

RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"

Pattern = Annotated[str, Field(min_length=1, max_length=128)]
RuleEffect = Literal["sets_level", "sets_category", "raises_level"]
# (tier, priority): tier 1 = a rule (or the agent at its configured priority), tier 0 = fallbacks.
CategoryRank = tuple[int, int]
DEFAULT_CATEGORY_RANK: CategoryRank = (0, 0)
AGENT_FALLBACK_CATEGORY_RANK: CategoryRank = (0, 1)


class _PolicyModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _lowered(patterns: Sequence[str]) -> tuple[str, ...]:
    # Matching is case-insensitive everywhere: upstream tags and segments come in any case.
    return tuple(pattern.lower() for pattern in patterns)


def _any_glob(patterns: Sequence[str], values: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for value in values for pattern in patterns)


# ---------------------------------------------------------------------------------------------
# Facts the rules look at
# ---------------------------------------------------------------------------------------------


class DetectionFact(_PolicyModel):
    """One (indicator, intake rule id) pair seen on the risk, with its best confidence."""

    indicator: Indicator
    rule_id: str = Field(max_length=128)
    confidence: float = Field(ge=0.0, le=1.0)


@dataclass(frozen=True, slots=True)
class RiskFacts:
    """Everything the policy may look at, aggregated over all tickets of one risk.

    String sets are lower-cased so rules match case-insensitively.
    """

    detections: tuple[DetectionFact, ...]
    tags: frozenset[str] = frozenset()
    customer_segments: frozenset[str] = frozenset()
    priorities: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    products: frozenset[str] = frozenset()
    vulnerable_customer: bool = False
    max_financial_amount: float | None = None
    data_classification: frozenset[PersonalDataKind] = frozenset()
    distinct_customers: int = 1
    ticket_count: int = 1
    clustered: bool = False
    surging: bool = False
    agent_level: RiskLevel | None = None
    agent_category: RiskCategory | None = None


# ---------------------------------------------------------------------------------------------
# Policy file models
# ---------------------------------------------------------------------------------------------


class DetectionMatch(_PolicyModel):
    """Matches one detection: every given criterion must hold for the same detection."""

    indicators: tuple[Indicator, ...] = Field(
        default=(), description="Any of these indicators (empty: any indicator)."
    )
    rule_ids: tuple[Pattern, ...] = Field(
        default=(), description="Intake rule-id globs, any of (empty: any rule id)."
    )
    exclude_rule_ids: tuple[Pattern, ...] = Field(
        default=(), description="Rule-id globs that never match, e.g. a privacy *question*."
    )
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)

    _normalize = field_validator("rule_ids", "exclude_rule_ids")(_lowered)

    @model_validator(mode="after")
    def _names_something(self) -> Self:
        if not self.indicators and not self.rule_ids:
            raise ValueError("a detection match needs `indicators` or `rule_ids`")
        return self

    def matches(self, detection: DetectionFact) -> bool:
        rule_id = detection.rule_id.lower()
        return (
            (not self.indicators or detection.indicator in self.indicators)
            and (not self.rule_ids or _any_glob(self.rule_ids, (rule_id,)))
            and not _any_glob(self.exclude_rule_ids, (rule_id,))
            and detection.confidence >= self.min_confidence
        )


class Condition(_PolicyModel):
    """When a rule fires. Every field given must hold (AND); a list means any of its entries."""

    detections: tuple[DetectionMatch, ...] = Field(
        default=(), description="Any of these detection matches (each matched per detection)."
    )
    tags: tuple[Pattern, ...] = Field(default=(), description="Ticket tag globs, any of.")
    customer_segments: tuple[Pattern, ...] = Field(default=(), description="Segment globs.")
    priorities: tuple[Pattern, ...] = Field(default=(), description="Normalized priorities.")
    channels: tuple[Pattern, ...] = Field(default=(), description="Normalized channels.")
    products: tuple[Pattern, ...] = Field(default=(), description="Product globs.")
    vulnerable_customer: bool | None = Field(default=None, description="A vulnerable customer.")
    data_classification: tuple[PersonalDataKind, ...] = Field(
        default=(), description="Any of these personal-data kinds was seen (and redacted)."
    )
    min_financial_amount: float | None = Field(default=None, ge=0)
    min_distinct_customers: int | None = Field(default=None, ge=1)
    min_ticket_count: int | None = Field(default=None, ge=1)
    clustered: bool | None = Field(
        default=None, description="The risk is a similar-report cluster."
    )
    surging: bool | None = Field(
        default=None, description="Its cluster reached the surge threshold."
    )

    _normalize = field_validator("tags", "customer_segments", "priorities", "channels", "products")(
        _lowered
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("`when` needs at least one condition (use default_level instead)")
        return self

    def holds(self, facts: RiskFacts) -> bool:
        if self.detections and not any(
            match.matches(detection) for match in self.detections for detection in facts.detections
        ):
            return False
        for patterns, values in (
            (self.tags, facts.tags),
            (self.customer_segments, facts.customer_segments),
            (self.priorities, facts.priorities),
            (self.channels, facts.channels),
            (self.products, facts.products),
        ):
            if patterns and not _any_glob(patterns, values):
                return False
        if (
            self.vulnerable_customer is not None
            and facts.vulnerable_customer != self.vulnerable_customer
        ):
            return False
        if self.data_classification and not facts.data_classification.intersection(
            self.data_classification
        ):
            return False
        if self.min_financial_amount is not None and (
            facts.max_financial_amount is None
            or facts.max_financial_amount < self.min_financial_amount
        ):
            return False
        if (
            self.min_distinct_customers is not None
            and facts.distinct_customers < self.min_distinct_customers
        ):
            return False
        if self.min_ticket_count is not None and facts.ticket_count < self.min_ticket_count:
            return False
        if self.clustered is not None and facts.clustered != self.clustered:
            return False
        return self.surging is None or facts.surging == self.surging


class PolicyRule(_PolicyModel):
    """One policy rule; what it may carry depends on its ``effect``."""

    id: str = Field(min_length=1, max_length=128, pattern=RULE_ID_PATTERN)
    description: str = Field(min_length=1, max_length=1_000, description="Meaning, for reviewers.")
    priority: int = Field(description="Precedence; unique in the policy, higher wins a category.")
    effect: RuleEffect
    when: Condition
    level: RiskLevel | None = Field(default=None, description="sets_level: the level.")
    category: RiskCategory | None = Field(
        default=None, description="sets_level (optional) or sets_category (required)."
    )
    raise_by: int | None = Field(default=None, ge=1, le=4, description="raises_level: levels.")
    min_base_level: RiskLevel | None = Field(
        default=None, description="raises_level: applies only from this base level up."
    )

    @model_validator(mode="after")
    def _fields_fit_effect(self) -> Self:
        allowed: dict[RuleEffect, set[str]] = {
            "sets_level": {"level", "category"},
            "sets_category": {"category"},
            "raises_level": {"raise_by", "min_base_level"},
        }
        misplaced = sorted(
            name
            for name in ("level", "category", "raise_by", "min_base_level")
            if getattr(self, name) is not None and name not in allowed[self.effect]
        )
        if misplaced:
            raise ValueError(f"`{self.effect}` rules cannot set {', '.join(misplaced)}")
        if self.effect == "sets_level" and self.level is None:
            raise ValueError("`sets_level` rules need a `level` (1-5)")
        if self.effect == "sets_category" and self.category is None:
            raise ValueError("`sets_category` rules need a `category`")
        return self

    @property
    def raise_levels(self) -> int:
        return self.raise_by or 1

    @property
    def applies_from(self) -> RiskLevel:
        return self.min_base_level or RiskLevel.MINIMAL


class ModifierLimits(_PolicyModel):
    max_total_raise: int = Field(default=1, ge=0, le=4, description="Levels all modifiers add.")
    ceiling: RiskLevel = Field(default=RiskLevel.HIGH, description="Modifiers stop here.")


class RiskPolicy(_PolicyModel):
    """A whole policy file. Build it with :func:`load_policy` / :func:`parse_policy`."""

    version: str = Field(min_length=1, max_length=64, description="Stamped on every decision.")
    description: str = Field(default="", max_length=4_000)
    default_level: RiskLevel = Field(
        default=RiskLevel.LOW, description="Level when no level rule matches and no agent flag."
    )
    default_category: RiskCategory = Field(default=RiskCategory.OPERATIONAL)
    agent_category_priority: int | None = Field(
        default=None,
        description="Priority at which the agent's category competes; unset: only as fallback.",
    )
    modifier_limits: ModifierLimits = Field(default_factory=ModifierLimits)
    reclassify_at_ticket_counts: tuple[int, ...] = Field(
        default=(),
        description=(
            "Deprecated, ignored: every ticket that joins a risk is published. Accepted so that "
            "policy files copied from earlier versions still load."
        ),
    )
    evidence_limit: int = Field(default=50, ge=1, le=1_000, description="Detections kept.")
    evidence_per_rule: int = Field(default=3, ge=1, le=100, description="Examples per rule id.")
    rules: tuple[PolicyRule, ...] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_text(cls, value: Any) -> Any:
        # YAML reads `version: 1.10` as the float 1.1; demanding a string avoids that surprise.
        if not isinstance(value, str):
            raise ValueError("must be a string (quote it in YAML, e.g. version: '2025.1')")
        return value

    @field_validator("reclassify_at_ticket_counts")
    @classmethod
    def _ascending(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(count < 2 for count in value) or list(value) != sorted(set(value)):
            raise ValueError("must be strictly ascending counts of at least 2")
        return value

    _rules_by_precedence: tuple[PolicyRule, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _consistent_rule_set(self) -> Self:
        problems = rule_set_problems(self.rules, self.agent_category_priority)
        if problems:
            raise ValueError(
                "; ".join(f"rule {rule_id!r}: {reason}" for rule_id, reason in problems)
            )
        # Sorted once here rather than on every evaluation.
        self._rules_by_precedence = tuple(
            sorted(self.rules, key=lambda rule: rule.priority, reverse=True)
        )
        return self

    @property
    def rules_by_precedence(self) -> tuple[PolicyRule, ...]:
        """Rules from the highest priority down."""
        return self._rules_by_precedence


def rule_set_problems(
    rules: Sequence[PolicyRule], agent_category_priority: int | None
) -> list[tuple[str, str]]:
    """Cross-rule checks: ids and priorities are unique, so precedence is never ambiguous."""
    problems: list[tuple[str, str]] = []
    seen_ids: set[str] = set()
    owner_of_priority: dict[int, str] = {}
    for rule in rules:
        if rule.id in seen_ids:
            problems.append((rule.id, "duplicate rule id"))
        seen_ids.add(rule.id)
        if rule.priority in owner_of_priority:
            problems.append(
                (
                    rule.id,
                    f"priority {rule.priority} is already used by rule "
                    f"{owner_of_priority[rule.priority]!r}; priorities must be unique",
                )
            )
        else:
            owner_of_priority[rule.priority] = rule.id
        if agent_category_priority is not None and rule.priority == agent_category_priority:
            problems.append(
                (rule.id, f"priority {rule.priority} equals agent_category_priority; must differ")
            )
    return problems


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    rule_id: str | None
    reason: str

    def __str__(self) -> str:
        return f"rule {self.rule_id!r}: {self.reason}" if self.rule_id else self.reason


class PolicyError(ValueError):
    """A policy file is invalid. Names the file and, for each problem, the rule id and reason."""

    def __init__(self, source: str, problems: Sequence[PolicyProblem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"invalid risk policy {source}: " + "; ".join(map(str, self.problems)))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which plain YAML silently resolves to the last."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in keys:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        keys.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _describe(error: ValidationError) -> str:
    parts = []
    for detail in error.errors():
        location = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def policy_from_mapping(data: object, source: str = "<mapping>") -> RiskPolicy:
    """Validate parsed policy data, reporting every problem with the rule id it concerns."""
    if not isinstance(data, Mapping):
        raise PolicyError(source, [PolicyProblem(None, "the top level must be a mapping")])
    if "version" not in data:
        raise PolicyError(source, [PolicyProblem(None, "`version` is required")])
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise PolicyError(source, [PolicyProblem(None, "`rules` must be a non-empty list")])

    problems: list[PolicyProblem] = []
    rules: list[PolicyRule] = []
    for position, raw_rule in enumerate(raw_rules, start=1):
        rule_id = raw_rule.get("id") if isinstance(raw_rule, Mapping) else None
        label = str(rule_id) if rule_id else f"#{position} (no id)"
        try:
            rules.append(PolicyRule.model_validate(raw_rule))
        except ValidationError as error:
            problems.append(PolicyProblem(label, _describe(error)))
    agent_priority = data.get("agent_category_priority")
    problems.extend(
        PolicyProblem(rule_id, reason)
        for rule_id, reason in rule_set_problems(
            rules, agent_priority if isinstance(agent_priority, int) else None
        )
    )
    if problems:
        raise PolicyError(source, problems)
    try:
        return RiskPolicy.model_validate({**data, "rules": rules})
    except ValidationError as error:
        raise PolicyError(source, [PolicyProblem(None, _describe(error))]) from error


def parse_policy(text: str, source: str = "<string>") -> RiskPolicy:
    """Parse and validate policy YAML."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        raise PolicyError(source, [PolicyProblem(None, f"not valid YAML: {error}")]) from error
    return policy_from_mapping(data, source)


def load_policy(path: Path) -> RiskPolicy:
    """Read and validate a policy file; the only I/O in this module besides the default."""
    return parse_policy(path.read_text(encoding="utf-8"), source=str(path))


@cache
def default_policy() -> RiskPolicy:
    """The policy shipped with the classifier (``config/policy.yaml``): the protocol's defaults."""
    resource = resources.files("riskrelay.classifier").joinpath("config/policy.yaml")
    return parse_policy(
        resource.read_text(encoding="utf-8"), source="riskrelay.classifier:config/policy.yaml"
    )


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """What the policy says about a risk's facts right now, with every rule that fired."""

    level: RiskLevel
    category: RiskCategory
    category_rank: CategoryRank
    base_level: RiskLevel
    contributions: tuple[RuleContribution, ...]
    policy_version: str

    @property
    def fired_rule_ids(self) -> tuple[str, ...]:
        return tuple(contribution.rule_id for contribution in self.contributions)


def evaluate(facts: RiskFacts, policy: RiskPolicy) -> PolicyDecision:
    """Apply ``policy`` to ``facts`` following the precedence in the module docstring."""
    matched = [rule for rule in policy.rules_by_precedence if rule.when.holds(facts)]
    level_rules = [rule for rule in matched if rule.effect == "sets_level"]
    agent_level = facts.agent_level

    # 1. Base level.
    top_level_rule: PolicyRule | None = None
    if level_rules:
        # Highest level wins; among equal levels the higher priority is named decisive.
        top_level_rule = max(level_rules, key=lambda rule: (rule.level or 0, rule.priority))
        base = RiskLevel(top_level_rule.level or policy.default_level)
        base_source = top_level_rule.id
    elif agent_level is not None:
        base, base_source = agent_level, AGENT_FLAG_RULE_ID
    else:
        base, base_source = policy.default_level, DEFAULT_LEVEL_RULE_ID

    # 2. Modifiers, in precedence order, bounded by the total and the ceiling.
    applicable = [
        rule for rule in matched if rule.effect == "raises_level" and base >= rule.applies_from
    ]
    room = max(0, policy.modifier_limits.ceiling - base)
    total_raise = min(
        sum(rule.raise_levels for rule in applicable), policy.modifier_limits.max_total_raise, room
    )
    raising_ids: set[str] = set()
    accumulated = 0
    for rule in applicable:
        if accumulated >= total_raise:
            break
        raising_ids.add(rule.id)
        accumulated += rule.raise_levels
    modified = RiskLevel(base + total_raise)

    # 3. The agent's floor.
    floor_decides = agent_level is not None and agent_level > modified
    level = RiskLevel(max(modified, agent_level or RiskLevel.MINIMAL))

    # 4. Category.
    candidates: list[tuple[CategoryRank, RiskCategory, str]] = [
        ((1, rule.priority), rule.category, rule.id)
        for rule in matched
        if rule.category is not None and rule.effect != "raises_level"
    ]
    if facts.agent_category is not None:
        agent_rank = (
            (1, policy.agent_category_priority)
            if policy.agent_category_priority is not None
            else AGENT_FALLBACK_CATEGORY_RANK
        )
        candidates.append((agent_rank, facts.agent_category, AGENT_FLAG_RULE_ID))
    candidates.append((DEFAULT_CATEGORY_RANK, policy.default_category, DEFAULT_CATEGORY_RULE_ID))
    category_rank, category, category_source = max(candidates, key=lambda item: item[0])

    contributions: list[RuleContribution] = []
    for rule in matched:
        if rule.effect == "sets_level":
            contributions.append(
                RuleContribution(
                    rule_id=rule.id,
                    description=rule.description,
                    level=rule.level,
                    category=rule.category,
                    effect="sets_level",
                    decisive=rule is top_level_rule and not floor_decides,
                )
            )
        elif rule.effect == "sets_category":
            contributions.append(
                RuleContribution(
                    rule_id=rule.id,
                    description=rule.description,
                    category=rule.category,
                    effect="sets_category",
                    decisive=False,
                )
            )
        else:
            raised = rule.id in raising_ids
            contributions.append(
                RuleContribution(
                    rule_id=rule.id,
                    description=rule.description
                    if raised
                    else f"{rule.description} (no effect: modifier limit or ceiling reached,"
                    " or base level below the modifier's minimum)"[:1_000],
                    effect="raises_level" if raised else "modifier",
                    decisive=raised and not floor_decides,
                )
            )
    if agent_level is not None:
        contributions.append(
            RuleContribution(
                rule_id=AGENT_FLAG_RULE_ID,
                description=(
                    f"The agent's Risk Flag says {agent_level.label} (level {int(agent_level)}); "
                    "it is a floor, never a ceiling."
                ),
                level=agent_level,
                category=facts.agent_category,
                effect="floor",
                decisive=floor_decides or base_source == AGENT_FLAG_RULE_ID,
            )
        )
    if base_source == DEFAULT_LEVEL_RULE_ID:
        contributions.append(
            RuleContribution(
                rule_id=DEFAULT_LEVEL_RULE_ID,
                description="No level rule matched: the policy's default level applies.",
                level=policy.default_level,
                category=policy.default_category
                if category_source == DEFAULT_CATEGORY_RULE_ID
                else None,
                effect="sets_level",
                decisive=True,
            )
        )
    elif category_source == DEFAULT_CATEGORY_RULE_ID:
        contributions.append(
            RuleContribution(
                rule_id=DEFAULT_CATEGORY_RULE_ID,
                description="No rule proposed a category: the policy's default category applies.",
                category=policy.default_category,
                effect="sets_category",
                decisive=False,
            )
        )
    return PolicyDecision(
        level=level,
        category=category,
        category_rank=category_rank,
        base_level=base,
        contributions=tuple(contributions),
        policy_version=policy.version,
    )
