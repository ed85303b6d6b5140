"""Multiple similar reports: near-duplicate clusters of tickets and their surges.

Fingerprint
    Redacted subject and description are lower-cased, support vocabulary is folded onto a few
    *concepts* (``log in``/``sign-in``/``can't access my account`` -> ``login``;
    ``down``/``outage``/``unavailable`` -> ``outage``; ``charged``/``billed`` -> ``billing``;
    ``can't``/``fails``/``error`` -> ``fail`` ...), stop words, time expressions, numbers and
    redaction placeholders are dropped and the rest is lightly stemmed. A MinHash (datasketch)
    over the remaining word set, with concept words counted three times, catches rewordings that
    share most words; the concept set itself catches paraphrases that share almost none:
    "can't log in to the app since this morning" and "sign-in fails with error 500 since 9am"
    both reduce to ``{fail, login}``. Two tickets are similar when either the MinHash estimate of
    their Jaccard similarity or the Jaccard similarity of their concept sets reaches the
    threshold (0.5 by default); the concept path needs a concept more specific than the generic
    ``fail``, so "X fails" never matches "Y fails" on that word alone. Only tickets of the same
    product are ever compared, so the same words about two products stay apart.

Index
    :class:`ClusterIndex` is the whole state, explicit and JSON-serializable (signatures are
    lists of ints, times are ISO strings), so the service can keep it in PostgreSQL and any
    replica or replay reaches the same answer. Candidates are found through LSH banding of the
    signatures (42 bands of 3 rows) and through concept keys; the bucket maps are derived data,
    rebuilt from the clusters when a stored index is loaded. :func:`assign_to_cluster` mutates
    the index it is given and reports which clusters changed, so a store can upsert just those.

Clusters
    A cluster id is derived from its product and first ticket id (UUIDv5), so it is the same on
    every replay. A cluster accepts new members while its latest ticket is within the join window
    (24 hours of event time by default); after that the same problem starts a new cluster.

Surge
    A cluster surges when at least ``surge_customers`` distinct customers (default 5) reported
    into it within any ``surge_window`` of event time (default 60 minutes); one customer writing
    five times is one customer. The surge is latched: when it starts, every earlier member must
    now be flagged with MULTIPLE_SIMILAR_REPORTS (``tickets_to_flag``), and later members are
    flagged as they arrive.
"""

from __future__ import annotations

import base64
import bisect
import operator
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated

import numpy as np
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    model_validator,
)

from riskrelay.intake.redaction import PLACEHOLDER_TOKENS
from riskrelay.shared.events import ClusterInfo, Detection, Indicator

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


class ClusterConfig(BaseModel):
    """Tuning of similar-report clustering; all durations are event time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_perm: int = Field(default=126, ge=16, le=512, description="MinHash permutations.")
    lsh_bands: int = Field(default=42, ge=1, description="LSH bands (bands x rows <= num_perm).")
    lsh_rows: int = Field(default=3, ge=1, description="Rows (signature values) per band.")
    seed: int = Field(default=1, description="MinHash seed; changing it invalidates stored state.")
    similarity_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    join_window: timedelta = Field(
        default=timedelta(hours=24),
        description="How long after its latest ticket a cluster accepts more.",
    )
    surge_customers: int = Field(default=5, ge=2, description="Distinct customers for a surge.")
    surge_window: timedelta = Field(default=timedelta(minutes=60))
    max_members: int = Field(default=1_000, ge=1, description="Member tickets kept per cluster.")
    max_exemplars: int = Field(default=8, ge=1, description="Fingerprints kept per cluster.")

    @model_validator(mode="after")
    def _bands_fit(self) -> ClusterConfig:
        if self.lsh_bands * self.lsh_rows > self.num_perm:
            raise ValueError("lsh_bands * lsh_rows must not exceed num_perm")
        return self


DEFAULT_CLUSTER_CONFIG = ClusterConfig()

# ---------------------------------------------------------------------------------------------
# Text -> tokens
# ---------------------------------------------------------------------------------------------

# Concept vocabulary of support tickets. Phrases are matched on lower-cased text before
# tokenizing, longest first, so "not working" becomes one concept instead of "not" + "work".
_CONCEPT_PHRASES: dict[str, tuple[str, ...]] = {
    "login": (
        "log in",
        "log-in",
        "login",
        "logins",
        "logging in",
        "logged in",
        "log on",
        "logon",
        "sign in",
        "sign-in",
        "signin",
        "signing in",
        "signed in",
        "sign on",
        "sso",
        "authenticate",
        "authentication",
        "access my account",
        "get into my account",
        "locked out",
    ),
    "password": (
        "password",
        "passwords",
        "passcode",
        "credentials",
        "reset link",
        "2fa",
        "mfa",
        "otp",
        "verification code",
        "two-factor",
        "one-time code",
    ),
    "outage": (
        "down",
        "outage",
        "outages",
        "unavailable",
        "not available",
        "offline",
        "unreachable",
        "not loading",
        "won't load",
        "doesn't load",
        "does not load",
        "not responding",
        "unresponsive",
        "timed out",
        "timing out",
        "timeout",
        "service interruption",
        "no signal",
        "no service",
        "sos only",
        "zero bars",
        "no bars",
        "no network",
        "no reception",
        "no connection",
        "blank page",
        "502",
        "503",
        "504",
    ),
    "fail": (
        "can't",
        "cannot",
        "can not",
        "unable",
        "fail",
        "fails",
        "failed",
        "failing",
        "failure",
        "error",
        "errors",
        "broken",
        "not working",
        "doesn't work",
        "does not work",
        "won't work",
        "isn't working",
        "stopped working",
        "no longer works",
        "keeps failing",
        "500",
    ),
    "crash": (
        "crash",
        "crashes",
        "crashed",
        "crashing",
        "freezes",
        "frozen",
        "freezing",
        "hangs",
        "closes unexpectedly",
        "force close",
    ),
    "slow": ("slow", "slowly", "lag", "lagging", "laggy", "latency", "sluggish", "takes forever"),
    "billing": (
        "charged",
        "charge",
        "charges",
        "charging",
        "billed",
        "bill",
        "billing",
        "invoice",
        "invoices",
        "invoiced",
        "debited",
        "overcharged",
        "double charged",
        "payment taken",
        "subscription fee",
        "direct debit",
    ),
    "refund": (
        "refund",
        "refunds",
        "refunded",
        "money back",
        "reimburse",
        "reimbursement",
        "chargeback",
    ),
    "payment": (
        "payment",
        "payments",
        "pay",
        "paying",
        "checkout",
        "check out",
        "card declined",
        "declined",
        "transaction",
        "transactions",
    ),
    "delivery": (
        "delivery",
        "deliveries",
        "delivered",
        "shipment",
        "shipping",
        "shipped",
        "parcel",
        "package",
        "courier",
        "tracking number",
        "not arrived",
        "never arrived",
    ),
    "notification": (
        "notification",
        "notifications",
        "push notification",
        "alerts",
        "no email",
        "emails not arriving",
        "not receiving emails",
    ),
    "sync": ("sync", "syncing", "synchronization", "synchronisation", "not syncing"),
    "upload": ("upload", "uploads", "uploading", "attach", "attachment"),
    "download": ("download", "downloads", "downloading", "export"),
    "data_loss": (
        "data loss",
        "lost data",
        "lost my data",
        "disappeared",
        "missing data",
        "deleted my",
        "data is gone",
        "vanished",
    ),
    "hacked": (
        "hacked",
        "compromised",
        "unauthorized",
        "unauthorised",
        "stolen",
        "breach",
        "fraud",
        "fraudulent",
        "phishing",
        "scam text",
        "scam texts",
        "scam sms",
        "fake text",
        "fake texts",
        "fake sms",
    ),
    "checkin": ("check-in", "check in", "checkin", "checking in", "boarding pass"),
    "video": (
        "video call",
        "video visit",
        "video consultation",
        "video appointment",
        "telehealth",
        "video",
    ),
}
GENERIC_CONCEPTS = frozenset({"fail"})
INCIDENT_CONCEPTS = frozenset({"outage", "crash", "hacked", "data_loss"})
CONCEPTS = frozenset(_CONCEPT_PHRASES)
_CONCEPT_BY_PHRASE = {
    phrase: concept for concept, phrases in _CONCEPT_PHRASES.items() for phrase in phrases
}
_CONCEPT_PATTERN = re.compile(
    r"(?<![\w'])(?:"
    + "|".join(re.escape(p) for p in sorted(_CONCEPT_BY_PHRASE, key=len, reverse=True))
    + r")(?![\w'])"
)

_STOP_WORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both by could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours yourself yourselves also again anyone anything
    still even get got getting keep keeps kept trying tried try tries seems seem since ago now
    already yet another every always never really please pls thanks thank thx hi hello hey dear
    team support help helpdesk asap urgent urgently issue issues problem problems question
    questions regarding re fwd fw ticket hope well best regards kind cheers sir madam
    app apps application applications website websites site web platform service services portal
    system systems product products tool software page it's i'm i've we've can't don't
    today yesterday tomorrow morning afternoon evening night tonight hour hours minute minutes
    day days week weeks month months year years monday tuesday wednesday thursday friday
    saturday sunday am pm time times
"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_TOKEN = re.compile(r"[a-z][a-z0-9_']*[a-z0-9]|[a-z]")
_TIME_LIKE = re.compile(r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm|h|uhr)\b|\b\d{1,2}:\d{2}(?::\d{2})?\b")
_PLACEHOLDER = re.compile(r"\[(?:" + "|".join(sorted(PLACEHOLDER_TOKENS)).upper() + r")\]")


@lru_cache(maxsize=65_536)
def _stem(word: str) -> str:
    """A light suffix stripper: enough to fold plurals and -ing/-ed forms of support words."""
    if len(word) <= 4:
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ingly", "ing", "edly", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            if len(stem) >= 4 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                stem = stem[:-1]
            return stem
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if word.endswith("s") and word[-2] not in "su":
        return word[:-1]
    return word


@dataclass(frozen=True, slots=True)
class TextFeatures:
    concepts: frozenset[str]
    words: frozenset[str]


def text_features(text: str) -> TextFeatures:
    """Concepts and content words of a (redacted) ticket text."""
    lowered = _PLACEHOLDER.sub(" ", text).casefold().replace("’", "'")
    lowered = _TIME_LIKE.sub(" ", lowered)
    concepts: set[str] = set()

    def fold(match: re.Match[str]) -> str:
        concepts.add(_CONCEPT_BY_PHRASE[match.group()])
        return " "

    remainder = _CONCEPT_PATTERN.sub(fold, lowered)
    words = {
        _stem(token)
        for token in _TOKEN.findall(remainder)
        if token not in _STOP_WORDS and len(token) > 1
    }
    return TextFeatures(frozenset(concepts), frozenset(words - _STOP_WORDS))


def product_key(product: str) -> str:
    return " ".join(product.casefold().split())


# ---------------------------------------------------------------------------------------------
# Fingerprint
# ---------------------------------------------------------------------------------------------


def _signature_from_json(value: object) -> object:
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value, validate=True), dtype="<u4").tolist()
    return value  # a list of ints, as stored before the compact form


def _signature_to_json(signature: list[int]) -> str:
    return base64.b64encode(np.asarray(signature, dtype="<u4").tobytes()).decode("ascii")


Signature = Annotated[
    list[int],
    BeforeValidator(_signature_from_json),
    PlainSerializer(_signature_to_json, return_type=str, when_used="json"),
]
"""MinHash values (32-bit, ``affine32``). In JSON: base64 of little-endian uint32s, half the
decimal list's size, which keeps a stored ticket or cluster under PostgreSQL's TOAST
threshold (compressing a 2 KB ``jsonb`` value cost more than the rest of the row's write);
decimal lists written earlier still load."""


class Fingerprint(BaseModel):
    """Near-duplicate fingerprint of one ticket; serializable to compact JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product: str = Field(description="Normalized product key; only equal products are compared.")
    signature: Signature = Field(description="MinHash signature of the weighted word set.")
    concepts: list[str] = Field(description="Support concepts found, sorted.")
    word_count: int = Field(ge=0, description="Distinct content words (0: no MinHash path).")


_CONCEPT_WEIGHT = 3
_MIN_SHARED_CONCEPTS = 2


@lru_cache(maxsize=262_144)
def _shingle_hash(shingle: bytes) -> int:
    # Ticket words come from a small vocabulary, so most shingles were hashed before.
    return int(sha1_hash32(shingle))


@lru_cache(maxsize=8)
def _minhash_worker(num_perm: int, seed: int) -> MinHash:
    # Generating and checking permutations costs more than hashing a ticket: one MinHash per
    # configuration is cleared and reused (fingerprints are computed one at a time).
    template = MinHash(num_perm=num_perm, seed=seed)
    return MinHash(
        num_perm=num_perm,
        seed=seed,
        permutations=template.permutations,
        scheme="affine32",
        hashfunc=_shingle_hash,
    )


def fingerprint(
    text: str, product: str, config: ClusterConfig = DEFAULT_CLUSTER_CONFIG
) -> Fingerprint:
    """Fingerprint redacted ``text`` (subject and description) of a ticket about ``product``."""
    features = text_features(text)
    shingles = [word.encode() for word in features.words]
    shingles += [
        f"#{concept}#{copy}".encode()
        for concept in features.concepts
        for copy in range(_CONCEPT_WEIGHT)
    ]
    minhash = _minhash_worker(config.num_perm, config.seed)
    minhash.clear()
    if shingles:
        minhash.update_batch(shingles)
    return Fingerprint(
        product=product_key(product),
        signature=minhash.hashvalues.tolist(),
        concepts=sorted(features.concepts),
        word_count=len(features.words) + len(features.concepts),
    )


def signature_similarity(left: list[int], right: list[int]) -> float:
    """MinHash estimate of the Jaccard similarity of the two underlying sets."""
    if len(left) != len(right) or not left:
        raise ValueError("signatures of different sizes cannot be compared")
    matches: int = sum(map(operator.eq, left, right))
    return matches / len(left)


def concept_similarity(left: Iterable[str], right: Iterable[str]) -> float:
    """Jaccard similarity of two concept sets; 0 unless they share something specific: an
    incident concept (outage, crash, hacked, data loss) or at least two concepts, so that one
    everyday topic in common ("payment") never makes two tickets one incident."""
    a, b = set(left), set(right)
    shared = a & b
    if not (shared - GENERIC_CONCEPTS):
        return 0.0
    if len(shared) < _MIN_SHARED_CONCEPTS and not (shared & INCIDENT_CONCEPTS):
        return 0.0
    return len(shared) / len(a | b)


def similarity(left: Fingerprint, right: Fingerprint) -> float:
    if left.product != right.product:
        return 0.0
    by_words = (
        signature_similarity(left.signature, right.signature)
        if left.word_count and right.word_count
        else 0.0
    )
    return max(by_words, concept_similarity(left.concepts, right.concepts))


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------

BucketKey = tuple[str | int, ...]
"""(product, band, signature values...) or (product, -1, concept)."""

CLUSTER_ID_NAMESPACE = uuid.UUID("0b7f3c1e-5f0e-4a53-9a43-3c1d2e8b6f21")


def cluster_id_for(product: str, first_ticket_id: str) -> str:
    """Deterministic cluster id: the same first ticket always names the same cluster."""
    return "cl-" + str(uuid.uuid5(CLUSTER_ID_NAMESPACE, f"{product}\x1f{first_ticket_id}"))


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClusterMember(_State):
    ticket_id: str
    customer_id: str
    occurred_at: AwareDatetime


class Cluster(_State):
    cluster_id: str
    product: str
    first_ticket_id: str
    first_seen_at: AwareDatetime
    last_seen_at: AwareDatetime
    size: int = 0
    customer_ids: list[str] = Field(default_factory=list, description="Distinct, sorted.")
    members: list[ClusterMember] = Field(default_factory=list, description="By event time.")
    exemplars: list[Fingerprint] = Field(
        default_factory=list, description="First fingerprint plus the most recent ones."
    )
    surging: bool = False
    surging_since: AwareDatetime | None = None

    def info(self) -> ClusterInfo:
        return ClusterInfo(
            cluster_id=self.cluster_id,
            size=max(self.size, 1),
            distinct_customers=max(len(self.customer_ids), 1),
            surging=self.surging,
            first_seen_at=self.first_seen_at,
        )


class ClusterIndex(_State):
    """All clustering state. Serialize with ``model_dump(mode="json")``, load with ``model_validate``.

    It may also be kept per product (clusters never span products) to keep rows small.
    """

    clusters: dict[str, Cluster] = Field(default_factory=dict)
    ticket_clusters: dict[str, str] = Field(default_factory=dict, description="ticket -> cluster")
    _buckets: dict[BucketKey, dict[str, int]] | None = PrivateAttr(default=None)

    def buckets(self, config: ClusterConfig) -> dict[BucketKey, dict[str, int]]:
        """LSH and concept buckets: key -> {cluster id: how many of its exemplars are filed}."""
        buckets = self._buckets
        if buckets is None:
            buckets = self._buckets = {}
            for cluster in self.clusters.values():
                for exemplar in cluster.exemplars:
                    _file(buckets, cluster.cluster_id, exemplar, config)
        return buckets

    def _unindex(self, cluster: Cluster, config: ClusterConfig) -> None:
        buckets = self._buckets
        if buckets is None:
            return
        for exemplar in cluster.exemplars:
            _unfile(buckets, cluster.cluster_id, exemplar, config)


def _file(
    buckets: dict[BucketKey, dict[str, int]],
    cluster_id: str,
    exemplar: Fingerprint,
    config: ClusterConfig,
) -> None:
    for key in bucket_keys(exemplar, config):
        holders = buckets.setdefault(key, {})
        holders[cluster_id] = holders.get(cluster_id, 0) + 1


def _unfile(
    buckets: dict[BucketKey, dict[str, int]],
    cluster_id: str,
    exemplar: Fingerprint,
    config: ClusterConfig,
) -> None:
    for key in bucket_keys(exemplar, config):
        holders = buckets.get(key)
        if holders is None or cluster_id not in holders:
            continue
        holders[cluster_id] -= 1
        if holders[cluster_id] <= 0:
            del holders[cluster_id]
            if not holders:
                del buckets[key]


def bucket_keys(fp: Fingerprint, config: ClusterConfig) -> list[BucketKey]:
    """LSH band keys and concept keys under which a fingerprint is filed (derived, never
    stored: tuples hash much faster than joined strings)."""
    keys: list[BucketKey] = []
    product = fp.product
    if fp.word_count:
        rows = config.lsh_rows
        signature = fp.signature
        keys.extend(
            (product, band, *signature[band * rows : (band + 1) * rows])
            for band in range(config.lsh_bands)
        )
    specific = set(fp.concepts) - GENERIC_CONCEPTS
    keys.extend((product, -1, concept) for concept in sorted(specific))
    return keys


# ---------------------------------------------------------------------------------------------
# Assignment
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterAssignment:
    """What :func:`assign_to_cluster` decided, and what the handler must now do."""

    cluster_id: str
    info: ClusterInfo
    similarity: float
    is_new_cluster: bool
    already_member: bool
    surge_started: bool
    tickets_to_flag: tuple[str, ...]
    changed_cluster_ids: tuple[str, ...]
    added_member: ClusterMember | None = None
    """The member this ticket added (``None`` when already a member or the cluster is full)."""

    @property
    def surging(self) -> bool:
        return self.info.surging


def assign_to_cluster(
    index: ClusterIndex,
    *,
    ticket_id: str,
    customer_id: str,
    occurred_at: datetime,
    fp: Fingerprint,
    config: ClusterConfig = DEFAULT_CLUSTER_CONFIG,
) -> ClusterAssignment:
    """Put a ticket into its cluster (existing or new), mutating ``index``; detect surges.

    A ticket that is already a member (a follow-up event) stays where it is and changes nothing.
    """
    known = index.ticket_clusters.get(ticket_id)
    if known is not None and known in index.clusters:
        cluster = index.clusters[known]
        return ClusterAssignment(
            cluster_id=known,
            info=cluster.info(),
            similarity=1.0,
            is_new_cluster=False,
            already_member=True,
            surge_started=False,
            tickets_to_flag=(),
            changed_cluster_ids=(),
        )

    best, best_similarity = _best_cluster(index, fp, occurred_at, config)
    buckets = index.buckets(config)
    is_new = best is None
    if best is None:
        best = Cluster(
            cluster_id=cluster_id_for(fp.product, ticket_id),
            product=fp.product,
            first_ticket_id=ticket_id,
            first_seen_at=occurred_at,
            last_seen_at=occurred_at,
        )
        if best.cluster_id in index.clusters:  # a pruned-and-reused id: start it afresh
            index._unindex(index.clusters[best.cluster_id], config)
        index.clusters[best.cluster_id] = best
        best_similarity = 1.0
    cluster = best

    cluster.size += 1
    cluster.first_seen_at = min(cluster.first_seen_at, occurred_at)
    cluster.last_seen_at = max(cluster.last_seen_at, occurred_at)
    if customer_id not in cluster.customer_ids:
        cluster.customer_ids = sorted([*cluster.customer_ids, customer_id])
    added_member: ClusterMember | None = None
    if len(cluster.members) < config.max_members:
        added_member = ClusterMember(
            ticket_id=ticket_id, customer_id=customer_id, occurred_at=occurred_at
        )
        bisect.insort(cluster.members, added_member, key=_member_order)
    index.ticket_clusters[ticket_id] = cluster.cluster_id
    _add_exemplar(index, cluster, fp, config, buckets)

    surge_started = False
    tickets_to_flag: tuple[str, ...] = ()
    if not cluster.surging and _reaches_surge(cluster.members, config):
        cluster.surging = True
        cluster.surging_since = occurred_at
        surge_started = True
        tickets_to_flag = tuple(
            dict.fromkeys(m.ticket_id for m in cluster.members if m.ticket_id != ticket_id)
        )
    return ClusterAssignment(
        cluster_id=cluster.cluster_id,
        info=cluster.info(),
        similarity=best_similarity,
        is_new_cluster=is_new,
        already_member=False,
        surge_started=surge_started,
        tickets_to_flag=tickets_to_flag,
        changed_cluster_ids=(cluster.cluster_id,),
        added_member=added_member,
    )


def _member_order(member: ClusterMember) -> tuple[datetime, str]:
    return (member.occurred_at, member.ticket_id)


def _best_cluster(
    index: ClusterIndex, fp: Fingerprint, occurred_at: datetime, config: ClusterConfig
) -> tuple[Cluster | None, float]:
    buckets = index.buckets(config)
    candidate_ids: set[str] = set()
    for key in bucket_keys(fp, config):
        holders = buckets.get(key)
        if holders:
            candidate_ids.update(holders)
    best: Cluster | None = None
    best_similarity = 0.0
    # Sorted, so ties go to the oldest cluster the same way on every replica and replay.
    for cluster_id in sorted(candidate_ids):
        cluster = index.clusters.get(cluster_id)
        if cluster is None or cluster.product != fp.product:
            continue
        if not _within_join_window(cluster, occurred_at, config):
            continue
        score = max(similarity(fp, exemplar) for exemplar in cluster.exemplars)
        if score < config.similarity_threshold:
            continue
        if (
            best is None
            or score > best_similarity
            or (score == best_similarity and cluster.first_seen_at < best.first_seen_at)
        ):
            best, best_similarity = cluster, score
    return best, best_similarity


def _within_join_window(cluster: Cluster, occurred_at: datetime, config: ClusterConfig) -> bool:
    return (
        cluster.first_seen_at - config.join_window
        <= occurred_at
        <= cluster.last_seen_at + config.join_window
    )


def _add_exemplar(
    index: ClusterIndex,
    cluster: Cluster,
    fp: Fingerprint,
    config: ClusterConfig,
    buckets: dict[BucketKey, dict[str, int]],
) -> None:
    """Keep the first fingerprint (the cluster's anchor) and the most recent others."""
    if fp in cluster.exemplars:
        return
    if len(cluster.exemplars) >= config.max_exemplars:
        _unfile(buckets, cluster.cluster_id, cluster.exemplars[1], config)
        cluster.exemplars = [cluster.exemplars[0], *cluster.exemplars[2:], fp]
    else:
        cluster.exemplars.append(fp)
    _file(buckets, cluster.cluster_id, fp, config)


def _reaches_surge(members: list[ClusterMember], config: ClusterConfig) -> bool:
    """Whether some ``surge_window`` of event time holds ``surge_customers`` distinct customers."""
    if len({m.customer_id for m in members}) < config.surge_customers:
        return False
    in_window: Counter[str] = Counter()
    start = 0
    for member in members:  # sorted by event time
        in_window[member.customer_id] += 1
        while member.occurred_at - members[start].occurred_at > config.surge_window:
            leaving = members[start].customer_id
            in_window[leaving] -= 1
            if not in_window[leaving]:
                del in_window[leaving]
            start += 1
        if len(in_window) >= config.surge_customers:
            return True
    return False


def surge_detection(
    info: ClusterInfo, config: ClusterConfig = DEFAULT_CLUSTER_CONFIG
) -> Detection | None:
    """The MULTIPLE_SIMILAR_REPORTS detection for a member of a surging cluster."""
    if not info.surging:
        return None
    minutes = int(config.surge_window.total_seconds() // 60)
    return Detection(
        indicator=Indicator.MULTIPLE_SIMILAR_REPORTS,
        rule_id="cluster.surge",
        evidence=(
            f"cluster {info.cluster_id}: {info.distinct_customers} distinct customers, "
            f"{info.size} tickets; at least {config.surge_customers} customers within "
            f"{minutes} minutes"
        ),
        confidence=0.9,
    )


def prune(
    index: ClusterIndex, *, older_than: datetime, config: ClusterConfig = DEFAULT_CLUSTER_CONFIG
) -> list[str]:
    """Drop clusters whose latest ticket is before ``older_than``; returns their ids.

    The caller chooses the horizon (e.g. the latest event time minus a week); pruning is what
    keeps the persisted state bounded.
    """
    removed = [cid for cid, c in index.clusters.items() if c.last_seen_at < older_than]
    for cluster_id in removed:
        cluster = index.clusters.pop(cluster_id)
        index._unindex(cluster, config)
    if removed:
        gone = set(removed)
        index.ticket_clusters = {t: c for t, c in index.ticket_clusters.items() if c not in gone}
    return removed
