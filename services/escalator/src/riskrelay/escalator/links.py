"""One-click acknowledgement links: signed, bound to a step, a person and an expiry.

A link is an HS256 JWT signed with the identity keys every service already holds
(``AUTH__IDENTITY_KEYS_FILE``, the key named by ``signing_key_id``), under its own issuer and
audience, so a link is never accepted as a person's token nor a person's token as a link. Its
``jti`` is derived from the notice it was sent in, so a re-queued notice carries the same link;
the escalator records a ``jti`` when it is redeemed, which makes each link usable once.

This module is pure: times are passed in, nothing is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt

from riskrelay.shared.auth import IdentityKeysFile
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import ReviewDecision

LINK_ISSUER = "riskrelay-escalator"
LINK_AUDIENCE = "riskrelay-ack-link"
ALGORITHM = "HS256"

RefusalReason = Literal["expired", "reused", "tampered", "wrong_person", "unknown_step"]
LinkChannel = Literal["email", "teams", "slack"]


@dataclass(frozen=True)
class LinkClaims:
    """What a verified link says."""

    link_id: str
    escalation_id: str
    person: str
    """The e-mail of the person the link was sent to, lower-cased."""
    decision: ReviewDecision | None
    channel: LinkChannel
    expires_at: datetime


class LinkRefused(Exception):
    """A link that must not acknowledge anything; ``reason`` is what the page and the record
    say, ``claims`` what the link said when its signature held."""

    def __init__(
        self, reason: RefusalReason, detail: str, claims: LinkClaims | None = None
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.claims = claims


def same_person(link_person: str, email: str | None) -> bool:
    return email is not None and link_person == email.strip().lower()


class AckLinks:
    """Issues and verifies acknowledgement links with the identity keys."""

    def __init__(self, keys: Mapping[str, str], signing_key_id: str) -> None:
        if signing_key_id not in keys:
            raise ValueError(f"signing key {signing_key_id!r} is not one of the keys")
        self._keys = dict(keys)
        self._signing_key_id = signing_key_id

    @classmethod
    def from_keys_file(cls, path: Path) -> AckLinks | None:
        """None when the file names no signing key (such a service can verify, not sign)."""
        parsed = IdentityKeysFile.model_validate_json(path.read_text(encoding="utf-8"))
        if parsed.signing_key_id is None:
            return None
        return cls(
            {key_id: secret.get_secret_value() for key_id, secret in parsed.keys.items()},
            parsed.signing_key_id,
        )

    def issue(
        self,
        *,
        notice_id: str,
        escalation_id: str,
        person: str,
        decision: ReviewDecision | None,
        channel: LinkChannel,
        issued_at: datetime,
        valid_for: timedelta,
    ) -> str:
        """The link token for one person in one notice (``notice_id``: its event id)."""
        person = person.strip().lower()
        link_id = derive_event_id(
            f"riskrelay.ack-link:{notice_id}",
            f"{person}/{channel}/{decision.value if decision else 'ack'}",
        )
        claims: dict[str, Any] = {
            "iss": LINK_ISSUER,
            "aud": LINK_AUDIENCE,
            "jti": link_id,
            "sub": person,
            "esc": escalation_id,
            "ch": channel,
            "iat": int(issued_at.timestamp()),
            "exp": int((issued_at + valid_for).timestamp()),
        }
        if decision is not None:
            claims["dec"] = decision.value
        return jwt.encode(
            claims,
            self._keys[self._signing_key_id],
            algorithm=ALGORITHM,
            headers={"kid": self._signing_key_id},
        )

    def verify(self, token: str, now: datetime) -> LinkClaims:
        """The link's claims, or :class:`LinkRefused` (tampered or expired)."""
        try:
            key_id = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as error:
            raise LinkRefused("tampered", "the link is damaged: it is not a signed link") from error
        if not isinstance(key_id, str) or key_id not in self._keys:
            raise LinkRefused(
                "tampered", "the link was signed with a key this server does not know"
            )
        try:
            raw = jwt.decode(
                token,
                self._keys[key_id],
                algorithms=[ALGORITHM],
                audience=LINK_AUDIENCE,
                issuer=LINK_ISSUER,
                # Expiry is checked below against the service's clock, not PyJWT's own.
                options={
                    "require": ["iss", "aud", "jti", "sub", "esc", "ch", "iat", "exp"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError as error:
            raise LinkRefused(
                "tampered", "the link's signature does not match its contents"
            ) from error
        claims = _claims(raw)
        if now >= claims.expires_at:
            raise LinkRefused(
                "expired",
                f"the link expired at {claims.expires_at:%Y-%m-%d %H:%M} UTC",
                claims,
            )
        return claims


def _claims(raw: dict[str, Any]) -> LinkClaims:
    try:
        decision = ReviewDecision(raw["dec"]) if "dec" in raw else None
        channel = raw["ch"]
        if channel not in ("email", "teams", "slack"):
            raise ValueError(channel)
        return LinkClaims(
            link_id=str(raw["jti"]),
            escalation_id=str(raw["esc"]),
            person=str(raw["sub"]),
            decision=decision,
            channel=channel,
            expires_at=datetime.fromtimestamp(float(raw["exp"]), UTC),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise LinkRefused("tampered", "the link's contents are not a link's") from error
