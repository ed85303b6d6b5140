"""Realistic upstream ticket traffic for demos, tests and benchmarks, with its ground truth.

The stream imitates four helpdesk tenants (a SaaS vendor, an online shop, a fintech and a
health provider): mostly harmless tickets, a share of tickets that carry one of the protocol's
risk indicators, follow-ups (customer and agent comments, agent updates, agent Risk Flags), and
bursts of different customers describing the same incident in different words within minutes.
Text carries realistic personal data (e-mail addresses, phone numbers that ``phonenumbers``
accepts, card numbers that pass Luhn, IBANs with valid check digits, IP addresses from the
documentation ranges) so that intake's redaction is exercised.

Everything comes from one ``random.Random(seed)`` and the vocabularies below: the same seed and
start give the same events, byte for byte, on every machine. There is no network and no clock.

Each event's intended ground truth (:class:`Label`) is what the *text* was written to show, so
evaluations can measure intake and the classifier against it. The expected level is the
generator's intent, following the protocol's examples (data breach and outage 5, widespread
functionality issue 4, ...), raised by one for a vulnerable customer; it is a yardstick, not
the risk policy.
"""

from __future__ import annotations

import heapq
import json
import random
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

from riskrelay.shared.events import (
    TICKET_EVENT_TYPES,
    Comment,
    Customer,
    Indicator,
    RiskCategory,
    RiskFlag,
    RiskLevel,
    TicketData,
    TicketEvent,
    TicketEventKind,
)

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """What an event was generated to show.

    ``indicators`` are those of the ticket as it stands after the event (a ticket event carries
    the whole ticket); for a burst they include ``multiple_similar_reports`` on every member,
    because that is the incident's truth even if intake can only see it from the n-th report.
    ``level`` is ``None`` for a harmless ticket.
    """

    scenario: str
    indicators: frozenset[Indicator]
    level: RiskLevel | None
    category: RiskCategory | None
    incident_id: str | None
    industry: str
    follow_up: bool = False

    @property
    def risky(self) -> bool:
        return bool(self.indicators)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "indicators": sorted(self.indicators),
            "level": int(self.level) if self.level is not None else None,
            "category": self.category.value if self.category is not None else None,
            "incident_id": self.incident_id,
            "industry": self.industry,
            "follow_up": self.follow_up,
        }


# ---------------------------------------------------------------------------------------------
# Tenants, products, people
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class Tenant:
    """One upstream helpdesk: the ``source`` of its events and what its customers buy."""

    source: str
    ticket_prefix: str
    industry: str
    company: str
    handle: str
    products: tuple[Product, ...]
    segment_weights: tuple[tuple[str, int], ...]
    vulnerable_rate: float


TENANTS: tuple[Tenant, ...] = (
    Tenant(
        source="zendesk://acme",
        ticket_prefix="ZD-",
        industry="saas",
        company="Acme Cloud",
        handle="AcmeCloudHelp",
        products=(
            Product("acme-crm", "Acme CRM", ("pipeline view", "contact import", "email sync")),
            Product("acme-analytics", "Acme Analytics", ("dashboards", "CSV export", "alerts")),
            Product("acme-mail", "Acme Mail", ("shared inbox", "templates", "auto-replies")),
        ),
        segment_weights=(("smb", 55), ("enterprise", 30), ("consumer", 10), ("public_sector", 5)),
        vulnerable_rate=0.01,
    ),
    Tenant(
        source="freshdesk://shop",
        ticket_prefix="FD-",
        industry="ecommerce",
        company="ShopNest",
        handle="ShopNestCares",
        products=(
            Product("shopnest-marketplace", "ShopNest Marketplace", ("wishlist", "reviews")),
            Product("shopnest-checkout", "ShopNest Checkout", ("gift cards", "saved cards")),
            Product("shopnest-delivery", "ShopNest Delivery", ("tracking", "returns")),
        ),
        segment_weights=(("consumer", 85), ("smb", 15)),
        vulnerable_rate=0.04,
    ),
    Tenant(
        source="zammad://helpdesk.example",
        ticket_prefix="ZM-",
        industry="fintech",
        company="PayFlow",
        handle="PayFlowSupport",
        products=(
            Product("payflow-wallet", "PayFlow Wallet", ("instant transfers", "savings pots")),
            Product("payflow-card", "PayFlow Card", ("card freeze", "spending limits")),
            Product("payflow-business", "PayFlow Business", ("payroll", "invoicing", "API")),
        ),
        segment_weights=(("consumer", 65), ("smb", 25), ("enterprise", 10)),
        vulnerable_rate=0.06,
    ),
    Tenant(
        source="zendesk://carelink",
        ticket_prefix="CL-",
        industry="health",
        company="CareLink",
        handle="CareLinkHelp",
        products=(
            Product("carelink-portal", "CareLink Patient Portal", ("lab results", "messages")),
            Product("carelink-telehealth", "CareLink Telehealth", ("video visits", "booking")),
            Product("carelink-pharmacy", "CareLink Pharmacy", ("repeat prescriptions",)),
        ),
        segment_weights=(("consumer", 70), ("public_sector", 20), ("smb", 10)),
        vulnerable_rate=0.12,
    ),
)
_TENANT_CHOICES = tuple(zip(TENANTS, (35, 30, 25, 10), strict=True))
_CHANNEL_WEIGHTS = (("email", 40), ("web", 25), ("chat", 20), ("phone", 10), ("social", 5))

FIRST_NAMES = (
    "Anna", "Ben", "Chloé", "Daniel", "Emeka", "Fatima", "Giulia", "Hiroshi", "Ingrid", "Jamal",
    "Katarzyna", "Liam", "Maria", "Noah", "Olga", "Pedro", "Priya", "Quentin", "Rosa", "Sven",
    "Tomás", "Uma", "Viktor", "Wen", "Yusuf", "Zoe", "Aoife", "Björn", "Carmen", "Dmitri",
)  # fmt: skip
LAST_NAMES = (
    "Andersen", "Bianchi", "Chen", "Dubois", "Evans", "Fischer", "García", "Haddad", "Ivanova",
    "Jansen", "Kowalski", "Lopez", "Müller", "Nakamura", "O'Brien", "Patel", "Rossi", "Schmidt",
    "Takahashi", "Usman", "Virtanen", "Walsh", "Xu", "Yilmaz", "Zimmermann", "Okafor", "Novak",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
CITIES = (
    ("Lagos", "Nigeria"), ("São Paulo", "Brazil"), ("Jakarta", "Indonesia"), ("Kyiv", "Ukraine"),
    ("Hanoi", "Vietnam"), ("Bucharest", "Romania"), ("Manila", "the Philippines"),
)  # fmt: skip
DEVICES = ("iPhone 15", "Pixel 8", "Galaxy S23", "iPad", "MacBook", "Windows laptop")
BROWSERS = ("Chrome", "Firefox", "Safari", "Edge")
REGULATORS = (
    "the ICO", "the FCA", "the Financial Ombudsman", "BaFin", "the CNIL", "the FTC",
    "the data protection authority", "Trading Standards", "the CFPB",
)  # fmt: skip
OUTLETS = ("the BBC", "The Guardian", "TechCrunch", "Der Spiegel", "a consumer TV programme")
ERROR_CODES = ("502 Bad Gateway", "error 500", "ERR_CONNECTION_RESET", "503 Service Unavailable")


def _pick(rng: random.Random, options: Sequence[T]) -> T:
    return options[rng.randrange(len(options))]


def _weighted(rng: random.Random, pairs: Sequence[tuple[T, int]]) -> T:
    # Integer weights and a linear walk: several times faster than random.choices for the
    # handful of options used here, which matters when benchmarks ask for a million events.
    point = rng.randrange(sum(weight for _, weight in pairs))
    for value, weight in pairs:
        if point < weight:
            return value
        point -= weight
    raise AssertionError("unreachable: point is below the total weight")


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(partial)):
        digit = int(char)
        if position % 2 == 0:  # these double once the check digit is appended
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def _card_number(rng: random.Random) -> str:
    prefix, length = _pick(rng, (("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("37", 15)))
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    number = body + luhn_check_digit(body)
    style = rng.randrange(3)
    if style == 0:
        return number
    separator = " " if style == 1 else "-"
    if length == 15:
        return separator.join((number[:4], number[4:10], number[10:]))
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


_IBAN_SHAPES = {
    # country: BBAN made of (kind, length) parts, "n" digits, "a" upper-case letters
    "DE": (("n", 18),),
    "GB": (("a", 4), ("n", 14)),
    "NL": (("a", 4), ("n", 10)),
    "IE": (("a", 4), ("n", 14)),
}


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616 check digits: 98 minus the mod-97 of the rearranged, digit-coded IBAN."""
    coded = "".join(str(int(char, 36)) for char in bban + country + "00")
    return f"{98 - int(coded) % 97:02d}"


def _iban(rng: random.Random) -> str:
    country = _pick(rng, tuple(_IBAN_SHAPES))
    bban = "".join(
        "".join(
            chr(ord("A") + rng.randrange(26)) if kind == "a" else str(rng.randrange(10))
            for _ in range(length)
        )
        for kind, length in _IBAN_SHAPES[country]
    )
    iban = country + iban_check_digits(country, bban) + bban
    if rng.random() < 0.6:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def _phone(rng: random.Random) -> str:
    def digits(count: int) -> str:
        return "".join(str(rng.randrange(10)) for _ in range(count))

    kind = rng.randrange(6)
    if kind == 0:
        return f"+1 202-555-01{digits(2)}"
    if kind == 1:
        return f"(212) 555-01{digits(2)}"
    if kind == 2:
        return f"+44 20 7946 0{digits(3)}"
    if kind == 3:
        return f"+49 151 {digits(8)}"
    if kind == 4:
        return f"+33 6 {digits(2)} {digits(2)} {digits(2)} {digits(2)}"
    return f"+31 6 {digits(8)}"


def _ip(rng: random.Random) -> str:
    network = _pick(rng, ("192.0.2", "198.51.100", "203.0.113"))
    return f"{network}.{rng.randrange(1, 255)}"


def _amount(rng: random.Random, low: int, high: int) -> str:
    value = rng.randrange(low, high)
    currency = _pick(rng, ("$", "€", "£"))
    return f"{currency}{value:,}"


@dataclass
class _Person:
    customer: Customer
    first: str
    last: str
    email: str
    phone: str


def _new_person(rng: random.Random, tenant: Tenant) -> _Person:
    first = _pick(rng, FIRST_NAMES)
    last = _pick(rng, LAST_NAMES)
    local = _pick(
        rng,
        (
            f"{first}.{last}",
            f"{first[0]}{last}{rng.randrange(10, 99)}",
            f"{first}_{last}",
            f"{first}{rng.randrange(1970, 2005)}",
        ),
    )
    # Mail addresses are ASCII in practice: "García" becomes "garcia", "O'Brien" "obrien".
    folded = unicodedata.normalize("NFKD", local.lower()).replace("ø", "o")
    ascii_local = folded.encode("ascii", "ignore").decode().replace("'", "")
    segment = _weighted(rng, tenant.segment_weights)
    vulnerable = segment == "consumer" and rng.random() < tenant.vulnerable_rate
    customer = Customer(
        id=f"cus_{rng.getrandbits(48):012x}", segment=segment, vulnerable=vulnerable
    )
    return _Person(customer, first, last, f"{ascii_local}@{_pick(rng, EMAIL_DOMAINS)}", _phone(rng))


# ---------------------------------------------------------------------------------------------
# Scenarios: template families with their ground truth
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A family of interchangeable ticket texts that all mean the same thing."""

    key: str
    texts: tuple[tuple[str, str], ...]  # (subject, body) templates
    indicators: frozenset[Indicator] = frozenset()
    level: RiskLevel | None = None
    category: RiskCategory | None = None
    industries: frozenset[str] | None = None  # None: any tenant
    priorities: tuple[str, ...] = ("normal", "low", "normal")
    tags: tuple[str, ...] = ()

    def fits(self, tenant: Tenant) -> bool:
        return self.industries is None or tenant.industry in self.industries


_I = Indicator
_L = RiskLevel
_C = RiskCategory

# fmt: off
HARMLESS: tuple[Scenario, ...] = (
    Scenario(
        "password_reset",
        (
            ("Password reset", "I forgot my password and the reset link isn't in my inbox. My login is {email}."),
            ("Can't log in", "Hi, I can't remember my password. Could you send the reset e-mail again to {email}?"),
            ("Reset link expired", "The reset link said it expired by the time I clicked it. Can I get a new one?"),
            ("locked out after too many tries", "I typed my password wrong a few times and now it says wait 30 minutes. Is there a faster way? You can call me on {phone}."),
            ("New phone, need to log in", "I changed phones and the {product} app logged me out. What's the easiest way to get back in?"),
            ("Username?", "Is my username my e-mail ({email}) or something else? The login page is confusing."),
            ("password rules", "Your password rules reject everything I try. What characters are allowed?"),
        ),
        tags=("login", "password"),
    ),
    Scenario(
        "how_to",
        (
            ("How do I use {feature}?", "Hello, where do I find {feature} in {product}? I looked through the settings but couldn't find it."),
            ("Question about {feature}", "Is it possible to set up {feature} for several team members at once?"),
            ("Export", "How can I export my {feature} history to a spreadsheet? Thanks!"),
            ("Getting started", "We just signed up for {product}. Is there a guide for setting up {feature}?"),
            ("quick question", "does {product} work on a {device}? want to use {feature} on the go"),
            ("Change language", "How do I switch {product} from English to German?"),
            ("Notifications", "How do I turn off the e-mail notifications for {feature}? I get too many."),
            ("Dark mode?", "Is there a dark mode in {product}? I use it late at night."),
            ("Shortcut keys", "Are there keyboard shortcuts for {feature}? Would save me a lot of clicks."),
        ),
        tags=("how-to",),
    ),
    Scenario(
        "feature_request",
        (
            ("Feature request: {feature}", "It would be great if {feature} could be scheduled in advance. We'd use it every week."),
            ("Suggestion", "Could you add a way to pin favourites in {feature}? Small thing but would help a lot."),
            ("Wish list", "Please add two-column layout to {feature}. Our team has been asking for it."),
            ("Idea for {product}", "Love {product}! One idea: let us tag items in {feature} with colours."),
            ("integration request", "Any plans to integrate {feature} with Slack or Teams?"),
            ("Bulk edit", "Would be nice to edit many entries in {feature} at once instead of one by one."),
        ),
        tags=("feature-request",),
        priorities=("low",),
    ),
    Scenario(
        "ui_glitch",
        (
            ("Button overlaps text", "On {browser} the Save button in {feature} overlaps the text field. Still works though."),
            ("Typo on settings page", "Small thing: the settings page says 'Notifcations'."),
            ("Icons look blurry", "The icons in {product} look blurry on my {device} since the last update."),
            ("Dropdown cut off", "The dropdown in {feature} is cut off at the bottom of the screen, I have to zoom out."),
            ("Dark mode colours", "In dark mode some labels in {feature} are dark grey on black, hard to read."),
            ("Date format", "Dates in {feature} show as MM/DD even though I picked DD/MM."),
            ("Tooltip stays open", "The tooltip next to {feature} doesn't close until I reload the page."),
        ),
        tags=("ui", "bug"),
        priorities=("low", "normal"),
    ),
    Scenario(
        "invoice_copy",
        (
            ("Invoice copy", "Could you send me a copy of invoice {invoice}? Our accountant needs it. Please e-mail it to {email}."),
            ("VAT invoice", "We need a VAT invoice for {invoice} with our company address. We paid by transfer from {iban}."),
            ("Missing invoice", "I can't find last month's invoice in the portal. Can you resend {invoice}?"),
            ("Receipt please", "Hi, need a receipt for my last payment, the one from the card ending {card_last4}."),
            ("Billing address change", "Please update the billing address on future invoices. Our IBAN stays {iban}."),
            ("Invoice in PDF", "The invoice link opens a web page; can I get {invoice} as a PDF?"),
        ),
        tags=("billing",),
    ),
    Scenario(
        "payment_details_update",
        (
            ("Update my card", "My old card expired. New one is {card}, exp 09/28. Please update my account."),
            ("New bank details", "Please use {iban} for the direct debit from next month on."),
            ("Change payment method", "I want to pay by card instead of invoice: {card}. Call me on {phone} if you need anything."),
            ("card declined?", "my card {card} got declined when renewing, is something wrong on your side or mine?"),
        ),
        tags=("billing", "payment-method"),
    ),
    Scenario(
        "order_status",
        (
            ("Where is my order {order}?", "I ordered a week ago ({order}) and tracking hasn't moved since Tuesday."),
            ("Return label", "I'd like to return {order}, the size is wrong. How do I get a return label?"),
            ("Change delivery address", "Can I still change the delivery address for {order}? I'll be away."),
            ("Item missing", "Parcel for {order} arrived but one item is missing. Can you check?"),
            ("Refund status", "I returned {order} two weeks ago. When will the refund show up?"),
        ),
        industries=frozenset({"ecommerce"}),
        tags=("order",),
    ),
    Scenario(
        "appointment",
        (
            ("Reschedule my appointment", "I need to move my video visit on Thursday. Any slots next week?"),
            ("Booking question", "Can I book a telehealth appointment for my mother with my account? My number is {phone}."),
            ("Prescription renewal", "How long does a repeat prescription usually take to be approved?"),
        ),
        industries=frozenset({"health"}),
        tags=("appointment",),
    ),
    Scenario(
        "account_change",
        (
            ("Change e-mail address", "Please change my login e-mail from {email} to my work address."),
            ("Update phone number", "My new number is {phone}, please update it for SMS notifications."),
            ("Add a team member", "How do I add a colleague to our {product} account?"),
            ("Close my account", "I don't use {product} anymore, please close my account. Thanks for everything."),
            ("Name change", "I got married, please change my surname on the account to {last}."),
        ),
        tags=("account",),
    ),
    Scenario(
        "praise",
        (
            ("Thank you!", "Just wanted to say your colleague on chat yesterday was super helpful."),
            ("Great update", "The new {feature} is great, saves me an hour a week."),
        ),
        tags=("feedback",),
        priorities=("low",),
    ),
)

RISKY: tuple[Scenario, ...] = (
    Scenario(
        "data_exposure",
        (
            ("I can see someone else's data", "When I open {feature} in {product} I see invoices with another customer's name and address on them. This is not my data!"),
            ("Wrong person's records", "The e-mail I got this morning contains someone else's account details, including their e-mail {other_email}. Your system is leaking personal data."),
            ("Privacy problem", "Logged in and the dashboard shows another company's contacts. Anyone could be seeing ours as well. Please fix this immediately."),
            ("Data leak?", "Our CSV export contained thousands of rows that belong to other customers, with names and phone numbers. Is this a data breach?"),
            ("Received a stranger's documents", "I received a PDF with another person's bank details ({iban}) and home address. I did not ask for this."),
        ),
        indicators=frozenset({_I.DATA_CONCERN}),
        level=_L.CRITICAL,
        category=_C.DATA_SECURITY_PRIVACY,
        priorities=("urgent", "high"),
        tags=("privacy",),
    ),
    Scenario(
        "unauthorized_access",
        (
            ("Someone logged into my account", "I got a login alert from {city}, {country} (IP {ip}). That wasn't me and now my password doesn't work."),
            ("Account hacked", "My account was hacked. The e-mail was changed to one I don't know and I can't get in. My real e-mail is {email}."),
            ("Unknown device on my account", "There's a {device} in my list of devices that I never owned. Did someone get into my account?"),
            ("2FA changed without me", "Somebody changed my two-factor phone number to one that isn't mine. I never requested that."),
            ("Strange activity", "There are messages sent from my account that I never wrote. I think someone has access to it."),
        ),
        indicators=frozenset({_I.SECURITY_ISSUE, _I.DATA_CONCERN}),
        level=_L.HIGH,
        category=_C.DATA_SECURITY_PRIVACY,
        priorities=("high", "urgent"),
        tags=("account-security",),
    ),
    Scenario(
        "card_fraud",
        (
            ("Transactions I didn't make", "There are three payments on my card {card} that I did not make, total {small_amount}. Somebody has my card details."),
            ("Money gone from wallet", "{small_amount} was sent from my wallet to an account I don't know ({iban}). I did not authorise this."),
            ("Fraud on my account", "Unauthorised transfer this morning. Please freeze everything. Call me: {phone}."),
        ),
        indicators=frozenset({_I.SECURITY_ISSUE, _I.SEVERE_IMPACT}),
        level=_L.HIGH,
        category=_C.DATA_SECURITY_PRIVACY,
        industries=frozenset({"fintech", "ecommerce"}),
        priorities=("urgent",),
        tags=("fraud",),
    ),
    Scenario(
        "privacy_request",
        (
            ("Data subject access request", "Under Article 15 GDPR I request a copy of all personal data you hold about me. My account e-mail is {email}."),
            ("Delete my data", "Please erase all my personal data (right to be forgotten, Art. 17 GDPR) and confirm in writing."),
            ("What data do you have on me?", "I'd like to know what personal information you store about me and who you share it with."),
            ("CCPA request", "I'm a California resident and request that you do not sell my personal information, per the CCPA."),
            ("Opt out of data sharing", "Please stop sharing my data with third parties and tell me which partners received it."),
        ),
        indicators=frozenset({_I.COMPLIANCE_QUESTION, _I.DATA_CONCERN}),
        level=_L.LOW,
        category=_C.COMPLIANCE,
        tags=("privacy-request",),
    ),
    Scenario(
        "compliance_question",
        (
            ("Are you SOC 2 compliant?", "Our procurement team needs your SOC 2 Type II report and a signed DPA before renewal."),
            ("HIPAA", "Is {product} HIPAA compliant? We'd need a BAA before storing patient information."),
            ("Data residency", "Where is our data stored? We must comply with EU data residency requirements after Schrems II."),
            ("Regulatory question", "Does your service meet PCI DSS for storing card data? Our auditor is asking."),
            ("Accessibility compliance", "Does {product} meet WCAG 2.1 AA? We're a public body and legally required to check."),
        ),
        indicators=frozenset({_I.COMPLIANCE_QUESTION}),
        level=_L.LOW,
        category=_C.COMPLIANCE,
        tags=("compliance",),
    ),
    Scenario(
        "security_vulnerability",
        (
            ("Security vulnerability report", "I found a stored XSS in the {feature} name field of {product}; a script runs for anyone who opens it. Happy to share details privately."),
            ("IDOR in your API", "Changing the id in /api/v2/invoices/<id> returns other customers' invoices. That's a serious vulnerability."),
            ("Password reset token doesn't expire", "Reset tokens stay valid for weeks and can be reused. An attacker with an old e-mail could take over accounts."),
            ("Responsible disclosure", "Your admin login has no rate limit, so passwords can be brute-forced. Where do I report security issues?"),
            ("Exposed debug endpoint", "Your server exposes a debug page with stack traces and internal hostnames. Looks like a security hole."),
        ),
        indicators=frozenset({_I.SECURITY_ISSUE}),
        level=_L.HIGH,
        category=_C.DATA_SECURITY_PRIVACY,
        priorities=("high",),
        tags=("security",),
    ),
    Scenario(
        "legal_threat",
        (
            ("Formal complaint", "This is unacceptable. If it isn't resolved this week I will file a complaint with {regulator}."),
            ("Legal action", "My lawyer will be in touch. You charged me for months after I cancelled and refuse to refund."),
            ("Complaint to regulator", "I have already contacted {regulator} about how you handled my case, reference {order}."),
            ("I will sue", "I'm taking this to small claims court unless I get my {small_amount} back."),
            ("Breach of contract", "You are in breach of our contract's SLA. Our legal department is reviewing options."),
        ),
        indicators=frozenset({_I.COMPLIANCE_QUESTION}),
        level=_L.MEDIUM,
        category=_C.COMPLIANCE,
        priorities=("high",),
        tags=("complaint", "legal"),
    ),
    Scenario(
        "financial_loss",
        (
            ("We are losing money", "Since your update yesterday our orders aren't syncing. We've lost about {big_amount} in sales so far."),
            ("Charged twice for annual plan", "You charged our company card twice for the annual plan, {big_amount} each. We need this refunded urgently."),
            ("Payroll failed", "Our payroll run failed and 140 employees were not paid today. This is a disaster for us."),
            ("Wrong payout", "Our payout of {big_amount} never arrived and our suppliers are now chasing us."),
            ("Invoices sent with wrong amounts", "{product} sent 300 invoices to our clients with the wrong amounts. We're losing credibility and money."),
        ),
        indicators=frozenset({_I.SEVERE_IMPACT}),
        level=_L.HIGH,
        category=_C.OPERATIONAL,
        priorities=("urgent", "high"),
        tags=("billing", "impact"),
    ),
    Scenario(
        "outage",
        (
            ("Everything is down", "{product} has been completely down for all our users since 9:00. {error_code} on every page. We cannot work."),
            ("Total outage", "Nobody in our company can log in. Is there an outage? Our whole operation is blocked."),
            ("Service unavailable", "All API calls fail with {error_code} for the last hour. Our production system is stopped."),
            ("Can't process any payments", "No payment goes through at all since this morning. Our shop is effectively closed."),
            ("Video calls failing for everyone", "None of our team can start video calls in {product} today. Clients are waiting and we can't reach them."),
        ),
        indicators=frozenset({_I.SEVERE_IMPACT}),
        level=_L.CRITICAL,
        category=_C.SERVICE_DISRUPTION,
        priorities=("urgent",),
        tags=("outage",),
    ),
    Scenario(
        "reputation_threat",
        (
            ("Going public", "If I don't hear back today I'm posting this whole thread on Twitter. I have 80k followers."),
            ("Journalist", "I'm a reporter at {outlet} writing about customers who lost access to their accounts. Would you comment?"),
            ("Review", "Worst service ever. I'm leaving one-star reviews everywhere and making a TikTok about it."),
            ("Contacting the press", "I've told {outlet} how you treated me. Maybe that will get your attention."),
            ("viral", "my post about your app deleting my photos already has 10k shares, maybe respond now?"),
        ),
        indicators=frozenset({_I.REPUTATION_THREAT}),
        level=_L.MEDIUM,
        category=_C.REPUTATION,
        priorities=("high",),
        tags=("escalation",),
    ),
    Scenario(
        "patient_data_exposure",
        (
            ("other patients' results", "In the portal I can see lab results of a patient who isn't me. That is confidential medical data."),
            ("Someone else's prescription", "The pharmacy page lists a name and date of birth that are not mine, with their medication history."),
            ("Message meant for another patient", "I received a message from the clinic about another patient's diagnosis. Who else can read mine?"),
        ),
        indicators=frozenset({_I.DATA_CONCERN}),
        level=_L.CRITICAL,
        category=_C.DATA_SECURITY_PRIVACY,
        industries=frozenset({"health"}),
        priorities=("urgent", "high"),
        tags=("privacy",),
    ),
    Scenario(
        "medication_error",
        (
            ("Wrong dosage shown", "The pharmacy app shows twice the dose my doctor prescribed. I almost took the wrong amount."),
            ("Prescription mix-up", "My repeat prescription in the app lists a medication I've never been prescribed. Is that someone else's?"),
        ),
        indicators=frozenset({_I.SEVERE_IMPACT, _I.DATA_CONCERN}),
        level=_L.CRITICAL,
        category=_C.PRODUCT_SAFETY,
        industries=frozenset({"health"}),
        priorities=("urgent",),
        tags=("safety",),
    ),
)


@dataclass(frozen=True)
class Incident:
    """One real-world problem that many customers report in their own words within minutes."""

    key: str
    industry: str
    product_id: str
    texts: tuple[tuple[str, str], ...]
    level: RiskLevel
    category: RiskCategory
    extra_indicators: frozenset[Indicator] = frozenset()


INCIDENTS: tuple[Incident, ...] = (
    Incident(
        "checkout_502",
        "ecommerce",
        "shopnest-checkout",
        (
            ("Checkout fails with error 502", "Checkout fails with error 502 every time I click 'Pay now'."),
            ("can't pay for my order", "Can't pay for my order, the payment page crashes. Order {order}."),
            ("Payment page broken", "The payment step just shows a blank page with 'Bad Gateway'."),
            ("order won't go through", "I've tried 4 times to place my order and it never completes. Card is fine, {card_last4}."),
            ("Error at checkout", "Getting an error at the last step of checkout, basket is still full."),
            ("Pay button does nothing", "pressing pay does nothing then I get kicked back to the basket??"),
            ("Checkout down?", "Is checkout down? I keep getting a gateway error, tried {browser} and the app."),
            ("Payment keeps failing", "Payment keeps failing with 'something went wrong, try again later'. Please help, I need it by Friday."),
            ("Can't complete purchase", "Cannot complete my purchase, spinner forever and then error 502."),
            ("checkout error", "your checkout is broken, i just want to buy the thing"),
        ),
        level=_L.HIGH,
        category=_C.SERVICE_DISRUPTION,
    ),
    Incident(
        "login_codes_missing",
        "saas",
        "acme-crm",
        (
            ("Verification code never arrives", "The 2FA code by SMS never arrives, I've requested it five times. My number is {phone}."),
            ("Can't log in - no code", "Login asks for a code but I don't get any text message."),
            ("2FA SMS not working", "Two-factor SMS isn't coming through for me or my colleagues."),
            ("Locked out: no security code", "I'm locked out because the security code doesn't come. Urgent, we have a client demo."),
            ("No SMS from Acme", "Haven't received a single verification text today."),
            ("login broken", "stuck on the 'enter code' screen, nothing arrives on my phone"),
            ("Authentication code missing", "Authentication code e-mail/SMS missing since this morning, cannot access our CRM."),
            ("Cannot sign in", "Sign-in fails at the verification step, the code never shows up. Tried on {device} too."),
        ),
        level=_L.HIGH,
        category=_C.SERVICE_DISRUPTION,
    ),
    Incident(
        "double_charge",
        "fintech",
        "payflow-card",
        (
            ("Charged twice", "Every card payment today was taken twice from my account."),
            ("Double payment", "My coffee this morning shows up two times in the app, same amount, same time."),
            ("Duplicate transactions", "I see duplicate transactions for everything I paid today with card {card_last4}."),
            ("balance wrong", "my balance is way lower than it should be, all payments appear double"),
            ("Why was I debited twice?", "Groceries {small_amount} debited twice. Please refund the duplicate."),
            ("Card payments duplicated", "All my card payments since 8am are duplicated. I'm now overdrawn."),
            ("Double debit", "Double debit on every purchase. Is this a known problem?"),
            ("Paid twice at the station", "Paid for my train ticket once, charged twice."),
        ),
        level=_L.HIGH,
        category=_C.OPERATIONAL,
        extra_indicators=frozenset({_I.SEVERE_IMPACT}),
    ),
    Incident(
        "video_visit_crash",
        "health",
        "carelink-telehealth",
        (
            ("App crashes when the video starts", "The app closes as soon as my video visit begins."),
            ("Can't join my appointment", "I can't join my appointment, the screen goes black and the app quits."),
            ("Telehealth not working", "Video consultation won't load since the update, I missed my doctor."),
            ("Crash on video call", "Crash every time I press 'Join visit' on my {device}."),
            ("Video visit failed", "My video visit failed three times, the doctor said they couldn't see me."),
            ("app keeps closing", "app keeps closing when i try to see the doctor"),
            ("Update broke video", "After updating, video calls with the clinic don't work at all."),
        ),
        level=_L.HIGH,
        category=_C.SERVICE_DISRUPTION,
    ),
    Incident(
        "cross_tenant_data",
        "saas",
        "acme-analytics",
        (
            ("Seeing another company's dashboard", "Our dashboard shows revenue numbers and customer names that aren't ours."),
            ("Wrong company data", "I'm seeing another organisation's data in Acme Analytics. Is ours visible to them?"),
            ("Data from a different account", "The reports tab lists contacts from a different company, with e-mails and phone numbers."),
            ("Privacy issue in reports", "Our weekly report e-mail contained another customer's figures."),
            ("Someone else's data", "Logged in this morning and the whole workspace belongs to some other business."),
            ("data mix-up", "pretty sure I'm looking at someone else's analytics right now, this is a big privacy problem"),
        ),
        level=_L.CRITICAL,
        category=_C.DATA_SECURITY_PRIVACY,
        extra_indicators=frozenset({_I.DATA_CONCERN}),
    ),
    Incident(
        "transfers_stuck",
        "fintech",
        "payflow-wallet",
        (
            ("Transfer stuck on pending", "My transfer to {iban} has been pending for hours, it's usually instant."),
            ("Money not arrived", "Sent money to my landlord this morning, it still hasn't arrived."),
            ("Instant transfer delayed", "Instant transfers aren't instant today, everything stuck at 'processing'."),
            ("Where is my payment?", "Payment left my wallet but the recipient hasn't got it."),
            ("Transfers not going through", "None of my transfers today have gone through. Rent is due!"),
            ("pending forever", "transfer says pending for 6 hours now"),
            ("Delayed transfers", "Outgoing transfers delayed, our suppliers are asking where the money is."),
        ),
        level=_L.HIGH,
        category=_C.OPERATIONAL,
    ),
)

CUSTOMER_FOLLOW_UPS = (
    "Any update on this?",
    "Hi again, still waiting for an answer.",
    "Thanks, that worked!",
    "I've attached a screenshot. Let me know if you need more.",
    "It happened again just now.",
    "Could someone call me back on {phone}?",
    "Never mind, found it. Thanks!",
    "Still not resolved, please look at this.",
)
ESCALATING_FOLLOW_UPS = (
    "Three days and no answer. If this isn't fixed by tomorrow I'm going to the press.",
    "I'm posting about this on social media tonight so other customers know.",
    "A journalist friend at {outlet} is very interested in this story.",
)
AGENT_COMMENTS = (
    "Thanks for reaching out, we're looking into it.",
    "I've passed this on to our technical team and will update you as soon as I hear back.",
    "Could you tell us which browser and device you're using?",
    "Sorry for the trouble. Could you send a screenshot of the error?",
    "This should be fixed now, please try again and let us know.",
)
AGENT_FLAG_NOTES = {
    _C.DATA_SECURITY_PRIVACY: "Customer reports personal data visible to the wrong person; escalating.",
    _C.SERVICE_DISRUPTION: "Several customers affected, service not usable.",
    _C.COMPLIANCE: "Customer mentions regulator/legal action.",
    _C.REPUTATION: "Customer threatens to go public.",
    _C.OPERATIONAL: "Significant financial impact reported by the customer.",
    _C.PRODUCT_SAFETY: "Possible patient safety issue, treat as urgent.",
}
# fmt: on


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


@dataclass
class _State:
    """Mutable generation state; everything random comes from ``rng``."""

    rng: random.Random
    people: dict[str, list[_Person]] = field(default_factory=dict)
    ticket_numbers: dict[str, int] = field(default_factory=dict)
    incidents: int = 0
    arrivals: int = 0  # single tickets and bursts so far, which paces the bursts

    def person(self, tenant: Tenant, *, fresh: bool = False) -> _Person:
        known = self.people.setdefault(tenant.source, [])
        if known and not fresh and self.rng.random() < 0.2:
            return _pick(self.rng, known)
        created = _new_person(self.rng, tenant)
        known.append(created)
        return created

    def ticket_id(self, tenant: Tenant) -> str:
        current = self.ticket_numbers.get(tenant.source)
        number = (
            self.rng.randrange(10_000, 90_000)
            if current is None
            else current + 1 + self.rng.randrange(3)
        )
        self.ticket_numbers[tenant.source] = number
        return f"{tenant.ticket_prefix}{number}"

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


class _Values(dict[str, str]):
    """Placeholder values for one ticket, drawn only when a template asks and then kept.

    Drawing lazily keeps generation cheap (most templates use two or three placeholders);
    keeping them makes the subject and the body agree ("How do I use dashboards?" ... "find
    dashboards").
    """

    def __init__(self, rng: random.Random, person: _Person, tenant: Tenant, product: Product):
        super().__init__(
            first=person.first,
            last=person.last,
            email=person.email,
            phone=person.phone,
            product=product.name,
        )
        self._rng = rng
        self._tenant = tenant
        self._product = product

    def __missing__(self, key: str) -> str:
        value = self._draw(key)
        self[key] = value
        return value

    def _draw(self, key: str) -> str:
        rng = self._rng
        simple: dict[str, Sequence[str]] = {
            "device": DEVICES,
            "browser": BROWSERS,
            "feature": self._product.features,
            "regulator": REGULATORS,
            "outlet": OUTLETS,
            "error_code": ERROR_CODES,
        }
        if key in simple:
            return _pick(rng, simple[key])
        if key == "card":
            return _card_number(rng)
        if key == "card_last4":
            return self["card"].replace(" ", "").replace("-", "")[-4:]
        if key == "iban":
            return _iban(rng)
        if key == "ip":
            return _ip(rng)
        if key in ("city", "country"):
            self["city"], self["country"] = _pick(rng, CITIES)
            return self[key]
        if key == "other_email":
            return _new_person(rng, self._tenant).email
        if key == "order":
            return f"#{rng.randrange(100_000, 999_999)}"
        if key == "invoice":
            return f"INV-{rng.randrange(2023, 2027)}-{rng.randrange(1, 99_999):05d}"
        if key == "small_amount":
            return _amount(rng, 12, 900)
        if key == "big_amount":
            return _amount(rng, 10_000, 250_000)
        raise KeyError(f"unknown placeholder {{{key}}} in a sample-traffic template")


_GREETINGS = ("Hello,", "Hi,", "Hi team,", "Dear Support,", "Good morning,", "")
_CLOSINGS = ("Thanks", "Kind regards", "Best", "Cheers", "Thank you")


def _dress(rng: random.Random, channel: str, body: str, person: _Person, tenant: Tenant) -> str:
    """Wrap a body the way the channel delivers it (mail signature, web form, call notes, ...)."""
    if channel == "email":
        greeting = _pick(rng, _GREETINGS)
        if body.startswith(("Hi", "Hello")):  # the template already greets
            greeting = ""
        signature = f"{_pick(rng, _CLOSINGS)},\n{person.first} {person.last}"
        if rng.random() < 0.4:
            signature += f"\n{person.phone}"
        if rng.random() < 0.3:
            parts = [greeting, body, signature.replace("\n", "<br>")]
            return "".join(f"<p>{part}</p>" for part in parts if part)
        return "\n\n".join(part for part in (greeting, body, signature) if part)
    if channel == "web":
        return f"Name: {person.first} {person.last}\nE-mail: {person.email}\nMessage: {body}"
    if channel == "phone":
        return f'Call notes: customer called from {person.phone}. Customer said: "{body}"'
    if channel == "social":
        return f"@{tenant.handle} {body}"
    return body  # chat


def _leveled(level: RiskLevel | None, vulnerable: bool) -> RiskLevel | None:
    if level is None or not vulnerable:
        return level
    return RiskLevel(min(5, int(level) + 1))


@dataclass
class _Ticket:
    data: TicketData
    label: Label
    tenant: Tenant
    person: _Person
    opened_at: datetime


def _open_ticket(
    state: _State,
    tenant: Tenant,
    product: Product,
    person: _Person,
    texts: tuple[str, str],
    *,
    label: Label,
    priorities: Sequence[str],
    tags: Sequence[str],
    at: datetime,
) -> _Ticket:
    rng = state.rng
    channel = _weighted(rng, _CHANNEL_WEIGHTS)
    subject_template, body_template = texts
    values = _Values(rng, person, tenant, product)
    body = body_template.format_map(values)
    data = TicketData(
        ticket_id=state.ticket_id(tenant),
        subject=subject_template.format_map(values),
        description=_dress(rng, channel, body, person, tenant),
        channel=channel,
        customer=person.customer,
        product=product.id,
        priority=_pick(rng, priorities),
        tags=[*tags, f"industry:{tenant.industry}"],
    )
    return _Ticket(data, label, tenant, person, at)


def _envelope(state: _State, ticket: _Ticket, kind: TicketEventKind, at: datetime) -> TicketEvent:
    return TicketEvent(
        id=state.event_id(),
        source=ticket.tenant.source,
        type=TICKET_EVENT_TYPES[kind],
        time=at,
        subject=ticket.data.ticket_id,
        data=ticket.data,
    )


def _follow_ups(
    state: _State, ticket: _Ticket, agent_flag_ratio: float
) -> list[tuple[datetime, TicketEvent, Label]]:
    """The ticket's later events, each carrying the ticket as it stands after it."""
    rng = state.rng
    risky = ticket.label.risky
    planned: list[str] = []
    if risky and rng.random() < agent_flag_ratio:
        planned.append("flag")
    if rng.random() < 0.25:
        planned.append("customer")
    if rng.random() < 0.2:
        planned.append("agent")
    if rng.random() < (0.25 if risky else 0.08):
        planned.append("update")
    rng.shuffle(planned)

    out: list[tuple[datetime, TicketEvent, Label]] = []
    at = ticket.opened_at
    data, label = ticket.data, replace(ticket.label, follow_up=True)
    agent_id = data.agent_id or f"agent-{rng.randrange(1, 40):02d}"
    for step in planned:
        at += timedelta(seconds=max(120, round(rng.expovariate(1 / 5400))))
        comment: Comment | None = None
        if step == "flag":
            level = label.level or RiskLevel.MEDIUM
            category = label.category or RiskCategory.OPERATIONAL
            flag = RiskFlag(
                level=level,
                category=category,
                description=AGENT_FLAG_NOTES[category],
                affected_customers=1,
                containment=_pick(rng, (None, "Advised customer to change password.", None)),
            )
            data = data.model_copy(update={"risk_flag": flag, "agent_id": agent_id})
            label = replace(label, indicators=label.indicators | {Indicator.AGENT_RISK_FLAG})
            kind = TicketEventKind.UPDATED
        elif step == "update":
            new_priority = "high" if data.priority in ("low", "normal") else data.priority
            data = data.model_copy(
                update={
                    "agent_id": agent_id,
                    "priority": new_priority,
                    "tags": [*data.tags, "triaged"],
                }
            )
            kind = TicketEventKind.UPDATED
        elif step == "customer":
            escalate = risky and rng.random() < 0.2
            template = _pick(rng, ESCALATING_FOLLOW_UPS if escalate else CUSTOMER_FOLLOW_UPS)
            product = next(p for p in ticket.tenant.products if p.id == data.product)
            body = template.format_map(_Values(rng, ticket.person, ticket.tenant, product))
            comment = Comment(author_type="customer", body=body)
            if escalate:
                level = max(label.level or RiskLevel.MEDIUM, RiskLevel.MEDIUM)
                label = replace(
                    label, indicators=label.indicators | {Indicator.REPUTATION_THREAT}, level=level
                )
            kind = TicketEventKind.COMMENTED
        else:
            comment = Comment(author_type="agent", body=_pick(rng, AGENT_COMMENTS))
            data = data.model_copy(update={"agent_id": agent_id})
            kind = TicketEventKind.COMMENTED
        if kind is TicketEventKind.COMMENTED:
            event_data = data.model_copy(update={"comment": comment})
        else:
            event_data = data.model_copy(update={"comment": None})
        # model_copy does not validate; rebuilding keeps every generated event contract-checked.
        event_data = TicketData.model_validate(event_data.model_dump())
        snapshot = _Ticket(event_data, label, ticket.tenant, ticket.person, ticket.opened_at)
        out.append((at, _envelope(state, snapshot, kind, at), label))
    return out


def _gap(rng: random.Random, at: datetime) -> timedelta:
    """Time to the next ticket: busy in office hours on weekdays, quiet at night and weekends."""
    busy = at.weekday() < 5 and 8 <= at.hour < 18
    mean_seconds = 45.0 if busy else 240.0
    # Whole seconds, as helpdesks report them.
    return timedelta(seconds=max(1, round(rng.expovariate(1 / mean_seconds))))


def _single_ticket(
    state: _State, at: datetime, flag_ratio: float, agent_flag_ratio: float
) -> list[tuple[datetime, TicketEvent, Label]]:
    rng = state.rng
    tenant = _weighted(rng, _TENANT_CHOICES)
    pool = RISKY if rng.random() < flag_ratio else HARMLESS
    # Drawing a text, not a scenario, weights scenarios by their variety: families with few
    # texts do not repeat the same sentence over and over.
    scenario, texts = _pick(rng, [(s, t) for s in pool if s.fits(tenant) for t in s.texts])
    product = _pick(rng, tenant.products)
    person = state.person(tenant)
    label = Label(
        scenario=scenario.key,
        indicators=scenario.indicators,
        level=_leveled(scenario.level, person.customer.vulnerable),
        category=scenario.category,
        incident_id=None,
        industry=tenant.industry,
    )
    ticket = _open_ticket(
        state, tenant, product, person, texts,
        label=label, priorities=scenario.priorities, tags=scenario.tags, at=at,
    )  # fmt: skip
    created = _envelope(state, ticket, TicketEventKind.CREATED, at)
    return [(at, created, label), *_follow_ups(state, ticket, agent_flag_ratio)]


def _burst(
    state: _State, at: datetime, agent_flag_ratio: float
) -> tuple[list[tuple[datetime, TicketEvent, Label]], datetime]:
    """Many different customers, one incident, their own words, within minutes."""
    rng = state.rng
    incident = _pick(rng, INCIDENTS)
    tenant = next(t for t in TENANTS if t.industry == incident.industry)
    product = next(p for p in tenant.products if p.id == incident.product_id)
    state.incidents += 1
    incident_id = f"incident-{state.incidents:04d}-{incident.key}"
    reporters = rng.randrange(5, 13)
    texts = rng.sample(incident.texts, k=min(reporters, len(incident.texts)))
    texts += [_pick(rng, incident.texts) for _ in range(reporters - len(texts))]
    indicators = frozenset({Indicator.MULTIPLE_SIMILAR_REPORTS}) | incident.extra_indicators
    # Agents notice a pattern more readily than a single odd ticket: two chances at the ratio.
    flagged_one = rng.random() < 1 - (1 - agent_flag_ratio) ** 2
    out: list[tuple[datetime, TicketEvent, Label]] = []
    for position, text in enumerate(texts):
        if position:
            at += timedelta(seconds=rng.randrange(10, 150))
        label = Label(
            scenario=f"burst:{incident.key}",
            indicators=indicators,
            level=incident.level,
            category=incident.category,
            incident_id=incident_id,
            industry=tenant.industry,
        )
        ticket = _open_ticket(
            state, tenant, product, state.person(tenant, fresh=True), text,
            label=label, priorities=("high", "urgent", "normal"), tags=(), at=at,
        )  # fmt: skip
        out.append((at, _envelope(state, ticket, TicketEventKind.CREATED, at), label))
        # One agent (the one who notices the pattern) flags one ticket of the burst.
        flag_here = flagged_one and position == len(texts) // 2
        follow_ups = _follow_ups(state, ticket, 1.0 if flag_here else 0.0)
        if flag_here:
            follow_ups = [
                (when, _with_affected(event, reporters), lbl) for when, event, lbl in follow_ups
            ]
        out.extend(follow_ups)
    return out, at


def _with_affected(event: TicketEvent, affected: int) -> TicketEvent:
    flag = event.data.risk_flag
    if flag is None:
        return event
    data = event.data.model_copy(
        update={"risk_flag": flag.model_copy(update={"affected_customers": affected})}
    )
    return event.model_copy(update={"data": data})


def generate_labelled(
    count: int,
    *,
    seed: int,
    start: datetime,
    flag_ratio: float = 0.1,
    burst_every: int | None = 60,
    agent_flag_ratio: float = 0.3,
) -> list[tuple[TicketEvent, Label]]:
    """``count`` ticket events from ``start`` on, sorted by event time, each with its truth.

    ``flag_ratio`` is the share of single tickets drawn from the risky scenarios (each carries
    at least one protocol indicator). ``burst_every``: every ``burst_every``-th arrival is a
    burst of 5-12 different customers reporting one incident in their own words within about
    half an hour (``None``: no bursts). ``agent_flag_ratio``: share of risky tickets whose agent
    sets a Risk Flag in a later ``updated`` event (bursts: ``1 - (1 - ratio)**2``, on one
    ticket, with the number of affected customers). Roughly 60 % of the events are ``created``;
    the rest are customer and agent comments and agent updates of earlier tickets.

    The result is the first ``count`` events of an endless stream, so a longer run with the
    same seed and start begins with the same events.
    """
    _check_arguments(start, count, flag_ratio, agent_flag_ratio, burst_every)
    return _stream(
        _State(random.Random(seed)), count, start, _gap,
        flag_ratio=flag_ratio, burst_every=burst_every, agent_flag_ratio=agent_flag_ratio,
    )  # fmt: skip


def _check_arguments(
    start: datetime,
    count: int,
    flag_ratio: float,
    agent_flag_ratio: float,
    burst_every: int | None,
    name: str = "start",
) -> None:
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (event times are RFC 3339 instants)")
    if count < 0:
        raise ValueError("count must not be negative")
    if not 0.0 <= flag_ratio <= 1.0 or not 0.0 <= agent_flag_ratio <= 1.0:
        raise ValueError("flag_ratio and agent_flag_ratio must be between 0 and 1")
    if burst_every is not None and burst_every < 1:
        raise ValueError("burst_every must be at least 1 (or None for no bursts)")


Gap = Callable[[random.Random, datetime], timedelta]


def _stream(
    state: _State,
    count: int,
    start: datetime,
    gap: Gap,
    *,
    flag_ratio: float,
    burst_every: int | None,
    agent_flag_ratio: float,
) -> list[tuple[TicketEvent, Label]]:
    """The first ``count`` events, by time, of the endless stream whose arrivals begin at
    ``start`` and follow each other by ``gap``; every event is at or before the last arrival."""
    produced: list[tuple[datetime, int, TicketEvent, Label]] = []
    pending: list[datetime] = []  # times of generated events later than the clock
    settled = 0  # generated events at or before the clock: their order can no longer change
    clock = start
    while settled < count:
        arrivals = state.arrivals
        if burst_every is not None and arrivals and arrivals % burst_every == 0:
            batch, clock = _burst(state, clock, agent_flag_ratio)
        else:
            batch = _single_ticket(state, clock, flag_ratio, agent_flag_ratio)
        state.arrivals += 1  # a burst takes the place of one single ticket in the count
        for when, event, label in batch:
            produced.append((when, len(produced), event, label))
            heapq.heappush(pending, when)
        while pending and pending[0] <= clock:
            heapq.heappop(pending)
            settled += 1
        clock += gap(state.rng, clock)
    produced.sort(key=lambda item: (item[0], item[1]))
    return [(event, label) for _, _, event, label in produced[:count]]


def generate(
    count: int,
    *,
    seed: int,
    start: datetime,
    flag_ratio: float = 0.1,
    burst_every: int | None = 60,
    agent_flag_ratio: float = 0.3,
) -> list[TicketEvent]:
    """The events of :func:`generate_labelled`, without the labels."""
    return [
        event
        for event, _ in generate_labelled(
            count,
            seed=seed,
            start=start,
            flag_ratio=flag_ratio,
            burst_every=burst_every,
            agent_flag_ratio=agent_flag_ratio,
        )
    ]


# Recent traffic (the demo): the past days' office hours, then a surge that ends just now.

_EVENTS_PER_ARRIVAL = 1.6  # a ticket brings about 0.6 follow-ups (measured on long runs)
_OFFICE_OPENS = time(8, 0)
_OFFICE_SECONDS = 9 * 3600.0
_WEEKEND_WEIGHT = 0.3
_SURGE_MEAN_GAP_SECONDS = 30.0


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` into whole shares proportional to ``weights`` (largest remainders)."""
    whole = sum(weights)
    exact = [total * weight / whole for weight in weights]
    shares = [int(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (shares[i] - exact[i], i))
    for index in by_remainder[: total - sum(shares)]:
        shares[index] += 1
    return shares


def _exponential_gap(mean_seconds: float) -> Gap:
    def gap(rng: random.Random, at: datetime) -> timedelta:
        return timedelta(seconds=max(1, round(rng.expovariate(1 / mean_seconds))))

    return gap


def _shifted(
    pairs: list[tuple[TicketEvent, Label]], by: timedelta
) -> list[tuple[TicketEvent, Label]]:
    return [(event.model_copy(update={"time": event.time + by}), label) for event, label in pairs]


def generate_recent_labelled(
    count: int,
    *,
    seed: int,
    now: datetime,
    days: int = 14,
    surge_share: float = 0.3,
    surge_flag_ratio: float = 0.15,
    surge_burst_every: int = 25,
    flag_ratio: float = 0.1,
    burst_every: int | None = 45,
    agent_flag_ratio: float = 0.3,
) -> list[tuple[TicketEvent, Label]]:
    """``count`` events of the ``days`` days before ``now``, sorted by event time, each with its
    truth, so that the dashboard, the weekly summary and the monthly report all have traffic
    to show as soon as it is processed.

    Each of those days gets a share of ``1 - surge_share`` of the events in its office hours
    (08:00-17:00 UTC; a weekend day 0.3 of a weekday's share), with a burst of similar reports
    every ``burst_every``-th arrival. The remaining ``surge_share`` is a surge that ends two
    minutes before ``now``: arrivals every 30 s on average, ``surge_flag_ratio`` risky, a burst
    every ``surge_burst_every``-th arrival, so today's risks are fresh and their escalations
    still open. Every event is before ``now``; one seed and one ``now`` give the same events,
    another ``now`` other ids.
    """
    _check_arguments(now, count, flag_ratio, agent_flag_ratio, burst_every, name="now")
    if days < 1:
        raise ValueError("days must be at least 1")
    if not 0.0 <= surge_share <= 1.0 or not 0.0 <= surge_flag_ratio <= 1.0:
        raise ValueError("surge_share and surge_flag_ratio must be between 0 and 1")
    if surge_burst_every < 1:
        raise ValueError("surge_burst_every must be at least 1")
    now = now.astimezone(UTC)
    # Seeded by ``now`` too: a later run's events get ids (and tickets) of their own, so
    # consumers that remember event ids do not drop them as repeats of an earlier run.
    state = _State(random.Random(f"{seed}/{now.isoformat()}"))
    latest = now - timedelta(minutes=2)
    surge_count = round(count * surge_share)
    dates = [(now - timedelta(days=ago)).date() for ago in range(days, 0, -1)]
    weights = [1.0 if day.weekday() < 5 else _WEEKEND_WEIGHT for day in dates]
    background: list[tuple[TicketEvent, Label]] = []
    for day, share in zip(dates, _apportion(count - surge_count, weights), strict=True):
        if not share:
            continue
        opens = datetime.combine(day, _OFFICE_OPENS, UTC)
        start = opens + timedelta(minutes=state.rng.randrange(90))
        mean_gap = _OFFICE_SECONDS / max(1.0, share / _EVENTS_PER_ARRIVAL)
        day_events = _stream(
            state, share, start, _exponential_gap(mean_gap),
            flag_ratio=flag_ratio, burst_every=burst_every, agent_flag_ratio=agent_flag_ratio,
        )  # fmt: skip
        # A quiet day's slice can run into the night; none may reach past the surge's end.
        if (overshoot := day_events[-1][0].time - latest) > timedelta(0):
            day_events = _shifted(day_events, -overshoot)
        background += day_events
    surge = _stream(
        state, surge_count, now, _exponential_gap(_SURGE_MEAN_GAP_SECONDS),
        flag_ratio=surge_flag_ratio, burst_every=surge_burst_every,
        agent_flag_ratio=agent_flag_ratio,
    )  # fmt: skip
    if surge:
        surge = _shifted(surge, latest - surge[-1][0].time)
    return sorted([*background, *surge], key=lambda pair: pair[0].time)


def generate_recent(count: int, *, seed: int, now: datetime, days: int = 14) -> list[TicketEvent]:
    """The events of :func:`generate_recent_labelled`, without the labels."""
    return [event for event, _ in generate_recent_labelled(count, seed=seed, now=now, days=days)]


def write_jsonl(events: Iterable[TicketEvent], path: Path) -> int:
    """Write one structured-mode CloudEvent per line; returns the number written."""
    written = 0
    with path.open("wb") as out:
        for event in events:
            out.write(event.to_json_bytes() + b"\n")
            written += 1
    return written


def write_labels_jsonl(labelled: Iterable[tuple[TicketEvent, Label]], path: Path) -> int:
    """Write ``{"event_id", "ticket_id", **label}`` per line, for evaluations."""
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for event, label in labelled:
            row = {"event_id": event.id, "ticket_id": event.data.ticket_id, **label.to_dict()}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    return written
