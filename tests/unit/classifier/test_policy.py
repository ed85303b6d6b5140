"""The policy file: loading, validation errors that name the rule, and the precedence rules."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from riskrelay.classifier.policy import (
    AGENT_FLAG_RULE_ID,
    DEFAULT_CATEGORY_RULE_ID,
    DEFAULT_LEVEL_RULE_ID,
    DetectionFact,
    PolicyError,
    RiskFacts,
    RiskPolicy,
    evaluate,
    load_policy,
    parse_policy,
)
from riskrelay.shared.events import Indicator, RiskCategory, RiskLevel

pytestmark = pytest.mark.unit

MINIMAL_VALID = """
version: "t1"
rules:
  - id: exposure
    description: data exposure
    priority: 10
    effect: sets_level
    level: 5
    when:
      detections:
        - rule_ids: ["data_concern.exposure"]
"""


def policy_yaml(rules: str, header: str = 'version: "t1"\n') -> str:
    return header + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")


def fact(rule_id: str, confidence: float = 0.9) -> DetectionFact:
    return DetectionFact(
        indicator=Indicator(rule_id.split(".", 1)[0]), rule_id=rule_id, confidence=confidence
    )


def facts(*rule_ids: str, **kwargs: object) -> RiskFacts:
    return RiskFacts(detections=tuple(fact(rule_id) for rule_id in rule_ids), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The shipped default
# ---------------------------------------------------------------------------------------------


def test_default_policy_is_versioned_and_covers_every_level_and_category(
    policy: RiskPolicy,
) -> None:
    assert policy.version == "2025.1"
    levels = {rule.level for rule in policy.rules if rule.level is not None}
    categories = {rule.category for rule in policy.rules if rule.category is not None}
    assert levels == set(RiskLevel)
    assert categories == set(RiskCategory)


def test_default_policy_file_loads_from_its_path(policy: RiskPolicy) -> None:
    import riskrelay.classifier as package

    path = Path(package.__file__).parent / "config" / "policy.yaml"
    assert load_policy(path) == policy


def test_minimal_policy_gets_documented_defaults() -> None:
    policy = parse_policy(MINIMAL_VALID)
    assert policy.default_level == RiskLevel.LOW
    assert policy.default_category == RiskCategory.OPERATIONAL
    assert policy.modifier_limits.max_total_raise == 1
    assert policy.modifier_limits.ceiling == RiskLevel.HIGH


# ---------------------------------------------------------------------------------------------
# Validation errors name the rule and the reason
# ---------------------------------------------------------------------------------------------

INVALID_POLICIES = {
    "missing version": (
        MINIMAL_VALID.replace('version: "t1"', ""),
        [None],
        ["`version` is required"],
    ),
    "unquoted numeric version": (
        MINIMAL_VALID.replace('version: "t1"', "version: 1.10"),
        [None],
        ["version: must be a string"],
    ),
    "no rules": ('version: "t1"\nrules: []\n', [None], ["`rules` must be a non-empty list"]),
    "sets_level without level": (
        policy_yaml("""
            - id: no-level
              description: d
              priority: 1
              effect: sets_level
              when: {tags: [x]}
            """),
        ["no-level"],
        ["need a `level`"],
    ),
    "level out of range": (
        policy_yaml("""
            - id: too-high
              description: d
              priority: 1
              effect: sets_level
              level: 6
              when: {tags: [x]}
            """),
        ["too-high"],
        ["level: Input should be 1, 2, 3, 4 or 5"],
    ),
    "unknown category": (
        policy_yaml("""
            - id: odd-category
              description: d
              priority: 1
              effect: sets_category
              category: weather
              when: {tags: [x]}
            """),
        ["odd-category"],
        ["category: Input should be"],
    ),
    "unknown key in a rule": (
        policy_yaml("""
            - id: typo
              description: d
              priority: 1
              effect: sets_level
              level: 3
              levle: 4
              when: {tags: [x]}
            """),
        ["typo"],
        ["levle: Extra inputs are not permitted"],
    ),
    "unknown key in a condition": (
        policy_yaml("""
            - id: bad-when
              description: d
              priority: 1
              effect: sets_level
              level: 3
              when: {tagz: [x]}
            """),
        ["bad-when"],
        ["when.tagz: Extra inputs are not permitted"],
    ),
    "unknown indicator": (
        policy_yaml("""
            - id: bad-indicator
              description: d
              priority: 1
              effect: sets_level
              level: 3
              when:
                detections: [{indicators: [gossip]}]
            """),
        ["bad-indicator"],
        ["when.detections.0.indicators.0"],
    ),
    "modifier that sets a category": (
        policy_yaml("""
            - id: bad-modifier
              description: d
              priority: 1
              effect: raises_level
              category: compliance
              when: {vulnerable_customer: true}
            """),
        ["bad-modifier"],
        ["`raises_level` rules cannot set category"],
    ),
    "empty condition": (
        policy_yaml("""
            - id: always
              description: d
              priority: 1
              effect: sets_level
              level: 3
              when: {}
            """),
        ["always"],
        ["at least one condition"],
    ),
    "detection match naming nothing": (
        policy_yaml("""
            - id: vague
              description: d
              priority: 1
              effect: sets_level
              level: 3
              when:
                detections: [{min_confidence: 0.5}]
            """),
        ["vague"],
        ["needs `indicators` or `rule_ids`"],
    ),
    "rule without id": (
        policy_yaml("""
            - description: d
              priority: 1
              effect: sets_level
              level: 3
              when: {tags: [x]}
            """),
        ["#1 (no id)"],
        ["id: Field required"],
    ),
    "rule id with spaces": (
        policy_yaml("""
            - id: Data Breach
              description: d
              priority: 1
              effect: sets_level
              level: 3
              when: {tags: [x]}
            """),
        ["Data Breach"],
        ["id: String should match pattern"],
    ),
    "duplicate rule id": (
        policy_yaml("""
            - {id: twice, description: d, priority: 1, effect: sets_level, level: 3, when: {tags: [x]}}
            - {id: twice, description: d, priority: 2, effect: sets_level, level: 4, when: {tags: [y]}}
            """),
        ["twice"],
        ["duplicate rule id"],
    ),
    "duplicate priority": (
        policy_yaml("""
            - {id: first, description: d, priority: 7, effect: sets_level, level: 3, when: {tags: [x]}}
            - {id: second, description: d, priority: 7, effect: sets_level, level: 4, when: {tags: [y]}}
            """),
        ["second"],
        ["priority 7 is already used by rule 'first'"],
    ),
    "agent priority colliding with a rule": (
        policy_yaml(
            """
            - {id: clash, description: d, priority: 300, effect: sets_level, level: 3, when: {tags: [x]}}
            """,
            header='version: "t1"\nagent_category_priority: 300\n',
        ),
        ["clash"],
        ["equals agent_category_priority"],
    ),
    "thresholds not ascending": (
        MINIMAL_VALID + "reclassify_at_ticket_counts: [10, 5]\n",
        [None],
        ["reclassify_at_ticket_counts: must be strictly ascending"],
    ),
    "duplicate YAML key": (
        policy_yaml("""
            - id: dup-key
              description: d
              priority: 1
              priority: 2
              effect: sets_level
              level: 3
              when: {tags: [x]}
            """),
        [None],
        ["duplicate key 'priority'"],
    ),
    "not YAML": ("version: [unclosed\n", [None], ["not valid YAML"]),
    "not a mapping": ("- just\n- a list\n", [None], ["top level must be a mapping"]),
}


@pytest.mark.parametrize(
    ("text", "rule_ids", "reasons"),
    list(INVALID_POLICIES.values()),
    ids=list(INVALID_POLICIES),
)
def test_invalid_policy_is_rejected_naming_rule_and_reason(
    text: str, rule_ids: list[str | None], reasons: list[str]
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="test.yaml")
    error = caught.value
    assert [problem.rule_id for problem in error.problems] == rule_ids
    message = str(error)
    assert message.startswith("invalid risk policy test.yaml: ")
    for reason in reasons:
        assert reason in message
    for rule_id in rule_ids:
        if rule_id is not None:
            assert f"rule {rule_id!r}" in message


def test_all_broken_rules_are_reported_at_once() -> None:
    text = policy_yaml("""
        - {id: a, description: d, priority: 1, effect: sets_level, when: {tags: [x]}}
        - {id: b, description: d, priority: 2, effect: sets_level, level: 9, when: {tags: [x]}}
        - {id: c, description: d, priority: 3, effect: sets_level, level: 3, when: {tags: [x]}}
        """)
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert [problem.rule_id for problem in caught.value.problems] == ["a", "b"]


def test_load_policy_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(MINIMAL_VALID.replace("level: 5", "level: 0"))
    with pytest.raises(PolicyError, match=r"policy\.yaml: rule 'exposure': level"):
        load_policy(path)


def test_policy_built_in_code_is_validated_too() -> None:
    base = parse_policy(MINIMAL_VALID)
    rule = base.rules[0]
    with pytest.raises(ValueError, match="priority 10 is already used"):
        RiskPolicy(version="t2", rules=(rule, rule.model_copy(update={"id": "other"})))


# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------


def test_rule_id_globs_distinguish_breach_from_privacy_question(policy: RiskPolicy) -> None:
    breach = evaluate(facts("data_concern.exposure"), policy)
    question = evaluate(facts("data_concern.privacy_question"), policy)
    assert (breach.level, breach.category) == (
        RiskLevel.CRITICAL,
        RiskCategory.DATA_SECURITY_PRIVACY,
    )
    assert (question.level, question.category) == (
        RiskLevel.LOW,
        RiskCategory.DATA_SECURITY_PRIVACY,
    )
    assert "data-concern" not in question.fired_rule_ids  # excluded by its exclude_rule_ids glob


def test_unknown_rule_ids_fall_back_to_indicator_names(policy: RiskPolicy) -> None:
    decision = evaluate(facts("data_concern.customer_saw_foreign_invoice"), policy)
    assert decision.level == RiskLevel.HIGH
    assert decision.fired_rule_ids == ("data-concern",)


def test_min_confidence_keeps_weak_exposure_below_critical(policy: RiskPolicy) -> None:
    weak = RiskFacts(detections=(fact("data_concern.exposure", confidence=0.3),))
    decision = evaluate(weak, policy)
    assert decision.level == RiskLevel.HIGH
    assert "data-exposure" not in decision.fired_rule_ids


def test_string_conditions_match_case_insensitively() -> None:
    policy = parse_policy(
        policy_yaml("""
            - {id: ent, description: d, priority: 1, effect: sets_level, level: 4,
               when: {customer_segments: ["Enterprise*"], tags: [VIP]}}
            """)
    )
    matched = facts(customer_segments=frozenset({"enterprise-eu"}), tags=frozenset({"vip"}))
    assert evaluate(matched, policy).level == RiskLevel.HIGH
    unmatched = facts(customer_segments=frozenset({"enterprise-eu"}), tags=frozenset({"other"}))
    assert evaluate(unmatched, policy).level == RiskLevel.LOW  # AND: both must hold


# ---------------------------------------------------------------------------------------------
# Precedence
# ---------------------------------------------------------------------------------------------

PRECEDENCE = policy_yaml(
    """
    - {id: low-but-important, description: d, priority: 90, effect: sets_level, level: 2,
       category: compliance, when: {tags: [legal]}}
    - {id: high-level, description: d, priority: 50, effect: sets_level, level: 4,
       category: operational, when: {tags: [big]}}
    - {id: also-high, description: d, priority: 40, effect: sets_level, level: 4,
       category: reputation, when: {tags: [big]}}
    - {id: category-only, description: d, priority: 70, effect: sets_category,
       category: product_safety, when: {tags: [safety]}}
    - {id: vulnerable, description: d, priority: 5, effect: raises_level, min_base_level: 2,
       when: {vulnerable_customer: true}}
    - {id: urgent, description: d, priority: 4, effect: raises_level, min_base_level: 2,
       when: {priorities: [urgent]}}
    """,
    header='version: "p1"\nagent_category_priority: 60\n',
)


@pytest.fixture(scope="module")
def precedence_policy() -> RiskPolicy:
    return parse_policy(PRECEDENCE)


def test_level_is_the_maximum_and_category_the_highest_priority(
    precedence_policy: RiskPolicy,
) -> None:
    decision = evaluate(facts(tags=frozenset({"legal", "big"})), precedence_policy)
    assert decision.level == RiskLevel.HIGH
    assert decision.category == RiskCategory.COMPLIANCE  # priority 90 beats the level-4 rules
    decisive = [c.rule_id for c in decision.contributions if c.decisive]
    assert decisive == ["high-level"]  # of two level-4 rules, the higher priority is named


def test_category_rule_beats_lower_priority_level_rules(precedence_policy: RiskPolicy) -> None:
    decision = evaluate(facts(tags=frozenset({"big", "safety"})), precedence_policy)
    assert (decision.level, decision.category) == (RiskLevel.HIGH, RiskCategory.PRODUCT_SAFETY)
    effects = {c.rule_id: c.effect for c in decision.contributions}
    assert effects["category-only"] == "sets_category"


def test_agent_category_competes_at_its_configured_priority(precedence_policy: RiskPolicy) -> None:
    beats_priority_50 = facts(
        tags=frozenset({"big"}),
        agent_level=RiskLevel.LOW,
        agent_category=RiskCategory.REPUTATION,
    )
    assert evaluate(beats_priority_50, precedence_policy).category == RiskCategory.REPUTATION
    loses_to_priority_90 = facts(
        tags=frozenset({"legal"}),
        agent_level=RiskLevel.LOW,
        agent_category=RiskCategory.REPUTATION,
    )
    assert evaluate(loses_to_priority_90, precedence_policy).category == RiskCategory.COMPLIANCE


def test_agent_category_without_priority_is_only_a_fallback() -> None:
    policy = parse_policy(MINIMAL_VALID.replace("    when:", "    category: compliance\n    when:"))
    with_rule = facts(
        "data_concern.exposure", agent_level=RiskLevel.LOW, agent_category=RiskCategory.REPUTATION
    )
    assert evaluate(with_rule, policy).category == RiskCategory.COMPLIANCE
    without_rule = facts(
        "severe_impact.financial", agent_level=RiskLevel.LOW, agent_category=RiskCategory.REPUTATION
    )
    assert evaluate(without_rule, policy).category == RiskCategory.REPUTATION


def test_defaults_apply_when_nothing_matches() -> None:
    policy = parse_policy(MINIMAL_VALID)
    decision = evaluate(facts("severe_impact.financial"), policy)
    assert (decision.level, decision.category) == (RiskLevel.LOW, RiskCategory.OPERATIONAL)
    [contribution] = decision.contributions
    assert contribution.rule_id == DEFAULT_LEVEL_RULE_ID
    assert contribution.decisive


def test_default_category_is_explained_when_only_the_level_came_from_a_rule() -> None:
    decision = evaluate(facts("data_concern.exposure"), parse_policy(MINIMAL_VALID))
    assert decision.category == RiskCategory.OPERATIONAL
    assert DEFAULT_CATEGORY_RULE_ID in decision.fired_rule_ids


# ---------------------------------------------------------------------------------------------
# Modifiers and the agent floor
# ---------------------------------------------------------------------------------------------


def test_modifiers_raise_by_at_most_the_total_limit(precedence_policy: RiskPolicy) -> None:
    both = facts(
        tags=frozenset({"legal"}), vulnerable_customer=True, priorities=frozenset({"urgent"})
    )
    decision = evaluate(both, precedence_policy)
    assert decision.base_level == RiskLevel.LOW
    assert decision.level == RiskLevel.MEDIUM  # +1, not +2
    effects = {c.rule_id: (c.effect, c.decisive) for c in decision.contributions}
    assert effects["vulnerable"] == ("raises_level", True)  # higher priority modifier used
    assert effects["urgent"] == ("modifier", False)  # fired but absorbed by the limit


def test_modifiers_stop_at_the_ceiling(precedence_policy: RiskPolicy) -> None:
    decision = evaluate(facts(tags=frozenset({"big"}), vulnerable_customer=True), precedence_policy)
    assert decision.level == RiskLevel.HIGH  # ceiling 4: a modifier cannot make it Critical


def test_modifiers_respect_their_minimum_base_level(policy: RiskPolicy) -> None:
    minimal = facts(tags=frozenset({"feature_request"}), vulnerable_customer=True)
    assert evaluate(minimal, policy).level == RiskLevel.MINIMAL


def test_higher_total_raise_is_configurable() -> None:
    policy = parse_policy(
        PRECEDENCE.replace(
            'version: "p1"\n', 'version: "p1"\nmodifier_limits: {max_total_raise: 2, ceiling: 5}\n'
        )
    )
    both = facts(
        tags=frozenset({"big"}), vulnerable_customer=True, priorities=frozenset({"urgent"})
    )
    assert evaluate(both, policy).level == RiskLevel.CRITICAL


def test_agent_flag_is_a_floor_that_raises(policy: RiskPolicy) -> None:
    decision = evaluate(facts("data_concern.privacy_question", agent_level=RiskLevel.HIGH), policy)
    assert decision.level == RiskLevel.HIGH
    decisive = [(c.rule_id, c.effect) for c in decision.contributions if c.decisive]
    assert decisive == [(AGENT_FLAG_RULE_ID, "floor")]


def test_agent_flag_never_lowers(policy: RiskPolicy) -> None:
    decision = evaluate(facts("data_concern.exposure", agent_level=RiskLevel.LOW), policy)
    assert decision.level == RiskLevel.CRITICAL
    agent = next(c for c in decision.contributions if c.rule_id == AGENT_FLAG_RULE_ID)
    assert not agent.decisive


def test_agent_level_is_the_base_when_no_level_rule_matches(policy: RiskPolicy) -> None:
    decision = evaluate(facts("agent_risk_flag.manual", agent_level=RiskLevel.MINIMAL), policy)
    assert decision.level == RiskLevel.MINIMAL  # not raised to the default level
    assert DEFAULT_LEVEL_RULE_ID not in decision.fired_rule_ids


# The naming in the classifier's brief and the naming of intake's shipped rule pack: the default
# policy matches meaning under the right indicator, so both classify alike.
EQUIVALENT_RULE_IDS = [
    ("data_concern.exposure", "data.exposure", RiskLevel.CRITICAL),
    ("data_concern.exposure", "data.breach", RiskLevel.CRITICAL),
    ("data_concern.exposure", "data.other-customers-data", RiskLevel.CRITICAL),
    ("data_concern.unauthorized_access", "data.unauthorized-access", RiskLevel.CRITICAL),
    ("security_issue.account_takeover", "security.account-compromise", RiskLevel.CRITICAL),
    ("security_issue.account_takeover", "security.unauthorized-access", RiskLevel.CRITICAL),
    ("security_issue.account_takeover", "security.credential-exposure", RiskLevel.CRITICAL),
    ("security_issue.vulnerability", "security.vulnerability", RiskLevel.HIGH),
    ("security_issue.vulnerability", "security.phishing-malware", RiskLevel.HIGH),
    ("compliance_question.regulator", "compliance.regulator", RiskLevel.HIGH),
    ("compliance_question.lawsuit", "compliance.legal-action", RiskLevel.HIGH),
    ("compliance_question.gdpr_request", "compliance.data-subject-request", RiskLevel.MEDIUM),
    ("compliance_question.other", "compliance.regulation", RiskLevel.LOW),
    ("compliance_question.other", "compliance.legal-requirement", RiskLevel.LOW),
    ("severe_impact.financial", "impact.financial-loss", RiskLevel.MEDIUM),
    ("severe_impact.financial", "impact.financial-loss-amount", RiskLevel.MEDIUM),
    ("severe_impact.operational", "impact.operational", RiskLevel.MEDIUM),
    ("reputation_threat.press", "reputation.press", RiskLevel.HIGH),
    ("reputation_threat.social_media", "reputation.social-media", RiskLevel.MEDIUM),
    ("reputation_threat.executive", "reputation.executive", RiskLevel.MEDIUM),
    ("data_concern.privacy_question", "data.privacy-concern", RiskLevel.LOW),
    ("multiple_similar_reports.surge", "cluster.surge", RiskLevel.HIGH),
    ("unusual_pattern.rate", "rate.poisson-ewma", RiskLevel.MEDIUM),
]


@pytest.mark.parametrize(
    ("brief_id", "pack_id", "level"),
    EQUIVALENT_RULE_IDS,
    ids=[pack_id for _, pack_id, _ in EQUIVALENT_RULE_IDS],
)
def test_both_rule_id_namings_classify_alike(
    policy: RiskPolicy, brief_id: str, pack_id: str, level: RiskLevel
) -> None:
    indicator = Indicator(brief_id.split(".", 1)[0])
    brief = evaluate(facts(brief_id), policy)
    pack = evaluate(
        RiskFacts(
            detections=(DetectionFact(indicator=indicator, rule_id=pack_id, confidence=0.8),)
        ),
        policy,
    )
    assert (brief.level, brief.category) == (pack.level, pack.category)
    assert pack.level == level


def test_impact_product_safety_detection_is_product_safety(policy: RiskPolicy) -> None:
    safety = RiskFacts(
        detections=(
            DetectionFact(
                indicator=Indicator.SEVERE_IMPACT, rule_id="impact.product-safety", confidence=0.85
            ),
        )
    )
    decision = evaluate(safety, policy)
    assert (decision.level, decision.category) == (RiskLevel.HIGH, RiskCategory.PRODUCT_SAFETY)
