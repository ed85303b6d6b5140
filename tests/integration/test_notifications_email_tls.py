"""E-mail over TLS, on real aiosmtpd servers, the real broker and PostgreSQL: STARTTLS and
implicit TLS with certificates issued here by a test CA that the channel trusts through its
``ca_file`` deliver; a certificate from another CA, one for another host name, or a server that
offers no STARTTLS is recorded as a failed attempt and nothing reaches the server in clear."""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from riskrelay.devstack import free_port
from riskrelay.escalator.app import create_app
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce, running
from tests.integration.test_escalator_service import classified, record_of, topic

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Authority:
    """A certificate authority made for one test: its key and self-signed certificate."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str, now: datetime) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        return path

    def server_context(
        self, folder: Path, name: str, sans: list[x509.GeneralName]
    ) -> ssl.SSLContext:
        """A server's TLS context with a certificate this authority issues for ``sans``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = self.certificate.not_valid_before_utc + timedelta(minutes=5)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        chain = folder / f"{name}.pem"
        chain.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            + certificate.public_bytes(serialization.Encoding.PEM)
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain)
        return context


LOCALHOST: list[x509.GeneralName] = [
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.DNSName("localhost"),
]


@dataclass
class Mailbox:
    """aiosmtpd handler: who started a mail transaction, and over TLS or not."""

    transactions: list[tuple[str, bool]] = field(default_factory=list)
    """(MAIL FROM, whether the connection was encrypted) of every transaction begun."""
    delivered: list[tuple[str, bool]] = field(default_factory=list)
    """(recipient, whether the connection was encrypted) of every accepted message."""

    @staticmethod
    def _encrypted(server: SMTP) -> bool:
        return server.transport is not None and (
            server.transport.get_extra_info("ssl_object") is not None
        )

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.transactions.append((address, self._encrypted(server)))
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.delivered += [(rcpt, self._encrypted(server)) for rcpt in envelope.rcpt_tos]
        return "250 Message accepted"


@contextlib.contextmanager
def smtp_servers(folder: Path, authority: Authority) -> Iterator[dict[str, tuple[int, Mailbox]]]:
    """STARTTLS (required before MAIL), implicit TLS, implicit TLS with a certificate for
    another name, and a server with no TLS at all."""
    localhost = authority.server_context(folder, "localhost", LOCALHOST)
    elsewhere = authority.server_context(
        folder, "mail.example.org", [x509.DNSName("mail.example.org")]
    )
    settings = {
        "starttls": {"tls_context": localhost, "require_starttls": True},
        "implicit": {"ssl_context": localhost},
        "wrong-name": {"ssl_context": elsewhere},
        "plain": {},
    }
    servers: dict[str, tuple[int, Mailbox]] = {}
    with contextlib.ExitStack() as stack:
        for name, options in settings.items():
            mailbox = Mailbox()
            controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **options)
            controller.start()
            stack.callback(controller.stop)
            servers[name] = (controller.port, mailbox)
        yield servers


PEOPLE = {
    # person: (channel, the server it reaches)
    "ana": ("starttls", "starttls"),
    "ben": ("implicit", "implicit"),
    "cy": ("other-ca", "starttls"),
    "dee": ("wrong-name", "wrong-name"),
    "eve": ("no-starttls", "plain"),
}


def write_roster(
    folder: Path, servers: dict[str, tuple[int, Mailbox]], trusted: Path, untrusted: Path
) -> Path:
    channels = {
        "starttls": ("starttls", servers["starttls"][0], trusted),
        "implicit": ("tls", servers["implicit"][0], trusted),
        "other-ca": ("starttls", servers["starttls"][0], untrusted),
        "wrong-name": ("tls", servers["wrong-name"][0], trusted),
        "no-starttls": ("starttls", servers["plain"][0], trusted),
    }
    lines = ["channels:"]
    for name, (security, port, ca_file) in channels.items():
        lines.append(
            f"  {name}: {{type: email, host: 127.0.0.1, port: {port}, security: {security},"
            f' ca_file: "{ca_file}", from_address: riskrelay@example.org, timeout_s: 5}}'
        )
    lines.append("people:")
    for person, (channel, _) in PEOPLE.items():
        lines.append(
            f"  {person}: {{name: {person}, email: {person}@example.org, channels: [{channel}]}}"
        )
    lines += [
        "roles:",
        f"  team_lead: {{people: [{', '.join(PEOPLE)}]}}",
        'delivery: {initial_delay: "PT0.2S", max_delay: 1s, max_attempts: 2}',
    ]
    roster = folder / "roster.yaml"
    roster.write_text("\n".join(lines) + "\n")
    return roster


async def test_email_over_starttls_and_tls_is_delivered_and_an_unverified_server_gets_nothing(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    authority = Authority.create("riskrelay test CA", now)
    trusted = authority.write(tmp_path / "ca.pem")
    untrusted = Authority.create("another CA", now).write(tmp_path / "other-ca.pem")
    with smtp_servers(tmp_path, authority) as servers:
        roster = write_roster(tmp_path, servers, trusted, untrusted)
        app = create_app(
            EscalatorSettings(kafka=kafka_settings, database=database_settings, roster_path=roster)
        )
        async with running(app):
            db = app.state.context.db
            await produce(
                kafka_settings.bootstrap,
                topic(kafka_settings, "risk-classified"),
                [record_of(classified("risk-tls", 4, now))],
            )

            async def settled() -> bool:
                states = await db.fetch(
                    "SELECT state FROM notifications WHERE channel = 'email'"
                    " AND state IN ('delivered', 'failed')"
                )
                return len(states) == len(PEOPLE)

            await eventually(settled, 30)
            rows = await db.fetch(
                "SELECT n.recipient, n.state, array_agg(a.status_code ORDER BY a.attempt) AS codes,"
                " array_agg(a.outcome ORDER BY a.attempt) AS outcomes,"
                " array_agg(a.error ORDER BY a.attempt) AS errors"
                " FROM notifications n JOIN delivery_attempts a ON a.notification_id = n.id"
                " WHERE n.channel = 'email' GROUP BY n.recipient, n.state"
            )
    by_person = {row["recipient"].split("@")[0]: row for row in rows}
    assert set(by_person) == set(PEOPLE)

    # Trusted certificates for the right name: delivered at the first attempt, encrypted.
    for person in ("ana", "ben"):
        row = by_person[person]
        assert (row["state"], row["codes"], row["outcomes"]) == ("delivered", [250], ["delivered"])
        server = servers[PEOPLE[person][1]][1]
        assert server.delivered == [(f"{person}@example.org", True)], person
    # The STARTTLS server took no transaction before the upgrade (cy never got that far).
    assert servers["starttls"][1].transactions == [("riskrelay@example.org", True)]

    # Never delivered, never in clear: each attempt recorded, the last one failed.
    refusals = {
        "cy": "certificate verify failed",
        "dee": "mismatch",
        "eve": "STARTTLS extension not supported",
    }
    for person, reason in refusals.items():
        row = by_person[person]
        assert row["state"] == "failed", person
        assert row["codes"] == [None, None], person
        assert row["outcomes"] == ["retry", "failed"], person
        assert all(reason in error for error in row["errors"]), (person, row["errors"])
    assert servers["wrong-name"][1].transactions == []
    assert servers["plain"][1].transactions == []
    assert servers["plain"][1].delivered == []
