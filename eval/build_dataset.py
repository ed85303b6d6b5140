"""Build riskrelay's labelled evaluation set: eval/tickets.jsonl and eval/labels.jsonl.

Every ticket text below was written by hand for this set, and every label is what a person
applying the protocol would say about that text (see eval/README.md for the labelling guide),
not what intake's rules or the risk policy happen to output: the set exists to measure them.

The script only *dresses* the texts (a greeting and a signature for e-mail, a form for the web,
call notes for the phone, a transcript for chat, a handle for social posts, now and then a
corporate footer), invents the people and their personal data, and lays everything out over
three working days, with incident groups of 5-12 different customers inside an hour. All of it
comes from one seeded ``random.Random``, so running it again writes the same bytes:

    uv run --frozen python eval/build_dataset.py            # writes eval/tickets.jsonl, labels
    uv run --frozen python eval/build_dataset.py --check    # fails if the files are stale
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from riskrelay.shared.events import TicketEvent

SEED = 20260302
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
DAYS = 3
HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------

INDICATOR_CODES = {
    "M": "multiple_similar_reports",
    "D": "data_concern",
    "S": "security_issue",
    "C": "compliance_question",
    "I": "severe_impact",
    "R": "reputation_threat",
    "U": "unusual_pattern",
    "A": "agent_risk_flag",
}
DSP = "data_security_privacy"
SAFE = "product_safety"
SVC = "service_disruption"
COMP = "compliance"
REP = "reputation"
OPS = "operational"


@dataclass(frozen=True)
class Truth:
    """What a person applying the protocol says about a ticket as it stands."""

    indicators: frozenset[str] = frozenset()
    level: int | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        if bool(self.indicators) != (self.level is not None) or (
            (self.level is None) != (self.category is None)
        ):
            raise ValueError(f"inconsistent truth {self}: flagged iff indicators, level, category")

    def adding(self, codes: str, level: int | None = None, category: str | None = None) -> Truth:
        return Truth(
            self.indicators | _indicators(codes),
            level if level is not None else self.level,
            category if category is not None else self.category,
        )


HARMLESS = Truth()


def _indicators(codes: str) -> frozenset[str]:
    return frozenset(INDICATOR_CODES[code] for code in codes)


def truth(codes: str, level: int, category: str) -> Truth:
    return Truth(_indicators(codes), level, category)


# ---------------------------------------------------------------------------------------------
# Tenants
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    industry: str
    source: str
    prefix: str
    company: str
    handle: str
    products: tuple[str, ...]
    segments: tuple[tuple[str, int], ...]
    first_number: int


TENANTS = {
    t.industry: t
    for t in (
        Tenant("saas", "zendesk://northwind", "NW-", "Northwind", "NorthwindHQ",
               ("Northwind CRM", "Northwind Analytics", "Northwind Sign"),
               (("smb", 55), ("enterprise", 35), ("public_sector", 10)), 40_120),
        Tenant("fintech", "zammad://kestrel-bank", "KB-", "Kestrel Bank", "KestrelHelp",
               ("Kestrel Current Account", "Kestrel Card", "Kestrel Business"),
               (("consumer", 80), ("smb", 20)), 7_310),
        Tenant("ecommerce", "freshdesk://lumen", "LM-", "Lumen", "LumenCares",
               ("Lumen Marketplace", "Lumen Checkout", "Lumen Delivery"),
               (("consumer", 90), ("smb", 10)), 118_004),
        Tenant("telecom", "servicenow://orbitel", "OT-", "Orbitel", "OrbitelUK",
               ("Orbitel Mobile", "Orbitel Fibre", "Orbitel TV"),
               (("consumer", 85), ("smb", 10), ("enterprise", 5)), 55_870),
        Tenant("healthcare", "zendesk://medisure", "MS-", "MediSure", "MediSureCare",
               ("MediSure Patient App", "MediSure Telehealth", "MediSure Pharmacy"),
               (("consumer", 90), ("public_sector", 10)), 2_044),
        Tenant("travel", "freshdesk://skyway", "SW-", "SkyWay", "SkyWayAir",
               ("SkyWay Bookings", "SkyWay App", "SkyWay Loyalty"),
               (("consumer", 92), ("smb", 8)), 90_315),
    )
}  # fmt: skip

# ---------------------------------------------------------------------------------------------
# Cases: hand-written tickets with their truth
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    industry: str
    subject: str
    body: str
    truth: Truth
    product: int | None = None  # index into the tenant's products; None: drawn
    priority: str = "normal"
    tags: tuple[str, ...] = ()
    segment: str | None = None  # None: drawn from the tenant's mix
    channel: str | None = None  # None: drawn
    follow_ups: tuple[FollowUp, ...] = ()


@dataclass(frozen=True)
class FollowUp:
    """A later event on the same ticket: a comment, or an agent's Risk Flag (an update)."""

    after_minutes: int
    truth: Truth  # the ticket's truth once this event happened
    comment: str | None = None
    author: str = "customer"
    flag_level: int | None = None
    flag_category: str | None = None
    flag_note: str = ""
    affected: int | None = None


def H(industry: str, subject: str, body: str, **options: Any) -> Case:
    return Case(industry, subject, body, HARMLESS, **options)


def R(
    industry: str, subject: str, body: str, codes: str, level: int, category: str, **options: Any
) -> Case:
    options.setdefault("priority", "high")
    return Case(industry, subject, body, truth(codes, level, category), **options)


def comment(after: int, text: str, result: Truth, author: str = "customer") -> FollowUp:
    return FollowUp(after, result, comment=text, author=author)


def agent_flag(
    after: int, result: Truth, level: int, category: str, note: str, affected: int | None = None
) -> FollowUp:
    return FollowUp(
        after,
        result.adding("A"),
        flag_level=level,
        flag_category=category,
        flag_note=note,
        affected=affected,
    )


# fmt: off
SINGLES: tuple[Case, ...] = (
    # ------------------------------------------------------------------------------- SaaS
    H("saas", "Password reset email not arriving", "I clicked 'forgot password' three times now and nothing shows up, not even in spam. The address on the account is {email}.", tags=("login",)),
    H("saas", "Import contacts from Outlook?", "We're moving over from a spreadsheet. Is there a way to bring our Outlook contacts into the CRM without retyping them all?", product=0),
    H("saas", "Pipeline stages", "Can I rename the default pipeline stages? 'Qualified' means something different for us and the team keeps getting confused.", product=0),
    H("saas", "Feature idea: recurring reminders", "Would love a 'remind me every Monday' option on tasks. Right now I recreate the same task every week.", product=0, tags=("feature-request",), priority="low"),
    H("saas", "Chart labels overlap", "On the revenue chart, when there are more than 12 months the labels at the bottom overlap and you can't read them. Minor, but annoying when I put it in slides.", product=1, tags=("ui",), priority="low"),
    H("saas", "Sidebar collapses by itself", "Every time I switch between Contacts and Deals the left sidebar collapses. Not a big deal, just odd.", product=0, tags=("ui",), priority="low"),
    H("saas", "Seats on our plan", "We have 14 seats but only 11 active users. Can we drop to 11 at renewal, or is that only possible on the annual anniversary?", tags=("billing",)),
    H("saas", "VAT number missing on invoice", "Our invoice for February doesn't show our VAT number (it's in the account settings). Could you reissue it?", tags=("billing",)),
    H("saas", "Signing order", "Is it possible to make sure our CFO signs after the client, not before? The envelope seems to go to everyone at once.", product=2),
    H("saas", "Hacked together a workaround", "Not a bug report really - I hacked together a Zapier flow to sync deals to our sheet, but it breaks on deals with emoji in the name. Is that a known limitation?", product=0),
    H("saas", "Sharing a dashboard on LinkedIn", "Our marketing lead wants to post a screenshot of our growth dashboard on LinkedIn. Is there a way to hide the customer names before we take it?", product=1),
    H("saas", "API rate limits", "What are the API rate limits on the Growth plan? Our nightly sync hits 429s around 2am.", product=0),
    H("saas", "Love the new timeline", "Just a note to say the new activity timeline is brilliant. Our sales team actually uses the CRM now.", product=0, priority="low"),
    H("saas", "Transfer account ownership", "Our admin is leaving the company next week. How do we move ownership of the workspace to me before she goes?"),
    H("saas", "New sign-in email", "I got a 'new sign-in' email at 8:02 but that was me on my new laptop, so no problem there. Question is just: can I turn those emails off for trusted devices?", tags=("login",),
      follow_ups=(comment(95, "We take the security of your account very seriously. I checked and there has been no unauthorised access - the email was our new-device notification. You can switch it off under Profile > Notifications.", HARMLESS, author="agent"),)),
    H("saas", "Dark mode contrast", "In dark mode the grey text on the deal cards is almost invisible. Could you bump the contrast a bit?", product=0, tags=("ui",), priority="low"),
    H("saas", "Bulk export before review", "Before our annual review I'd like to export all deals and notes to Excel. Where's the bulk export?", product=0),
    H("saas", "Custom fields on companies", "Please allow date-type custom fields on company records, not just on contacts.", product=0, tags=("feature-request",), priority="low"),
    H("saas", "Not a security issue, just a question", "This is not a security incident or anything - I'd just like to know whether Northwind supports SSO with Okta on the Starter plan.", tags=("login",)),
    H("saas", "SAML rollout", "We're enabling SAML for everyone on Monday. What happens to users who are still logged in with a password at that moment?", tags=("login",)),
    H("saas", "Template for reminders", "Can the e-signature reminder email use our own wording? The default one sounds a bit robotic for our clients.", product=2),
    H("saas", "CSV import skips rows", "Importing a CSV of 300 contacts only brought in 287. No error shown. Is there a log of what was skipped?", product=0),
    H("saas", "Our lawyer needs the contract", "Our company lawyer asked me for a signed copy of our service agreement for the annual contract review. Could you send it over?", tags=("billing",)),
    R("saas", "Export contains other customers' contacts", "We downloaded our contact export this morning and about a third of the rows are people we have never heard of - names, mobile numbers, companies. They are clearly another Northwind customer's contacts. Which means ours may be sitting in someone else's export too.", "D", 5, DSP, product=0, priority="urgent", segment="enterprise",
      follow_ups=(agent_flag(40, truth("D", 5, DSP), 5, DSP, "Export returns rows from other tenants. Reproduced on two accounts. Escalating as possible breach."),)),
    R("saas", "Our client list visible in another workspace?", "A partner agency just told me they can see our client list in their Northwind workspace under 'Shared with you'. We never shared it. Under GDPR we have to report this within 72 hours, so I need to know today what happened.", "DC", 5, DSP, product=0, priority="urgent", segment="enterprise"),
    R("saas", "Someone logged into our admin account", "Our admin account was used at 03:14 last night from an IP in a country none of us have been to. They exported the full contact list and created an API key. We've changed the password but need to know what else they touched.", "SD", 5, DSP, product=0, priority="urgent", segment="smb"),
    R("saas", "Reusable password reset links", "Hi, security researcher here. Your password reset links in Northwind Sign can be used more than once and don't expire after a password change. I can share a proof of concept through whatever channel you prefer for responsible disclosure.", "S", 4, DSP, product=2),
    R("saas", "Script runs in deal notes", "If you put an <img onerror> tag into a deal note it runs for every user who opens the deal. We noticed because an intern pasted some HTML. Anyone in a workspace could steal other people's sessions this way.", "S", 4, DSP, product=0),
    R("saas", "DPA and sub-processors", "Our legal team needs your Data Processing Agreement and the current list of sub-processors before we can roll Northwind out to the EU offices. Where can I download them?", "C", 2, COMP, priority="normal", segment="enterprise"),
    R("saas", "SOC 2 report", "Procurement is asking for your SOC 2 Type II report and your latest penetration test summary before they sign the renewal. Can you send them under NDA?", "C", 2, COMP, priority="normal", segment="enterprise"),
    R("saas", "AI Act and lead scoring", "Will the lead scoring feature be affected by the EU AI Act? We're planning next year's budget and want to know whether you'll document it as high-risk or not.", "C", 1, COMP, product=0, priority="low"),
    R("saas", "Complete outage for our team", "Nobody in our company (about 240 users) can open Northwind CRM since 08:40 - just a spinning wheel and then error 503. Our sales floor is at a standstill. Is there an incident?", "I", 5, SVC, product=0, priority="urgent", segment="enterprise"),
    R("saas", "Nightly sync wiped our pipeline", "The nightly sync with our ERP ran into an error and wiped 1,900 open deals from the pipeline. Quarter ends Friday and the team can't forecast or work their deals. We need a restore from backup urgently.", "I", 3, OPS, product=0, priority="urgent", segment="smb",
      follow_ups=(agent_flag(75, truth("I", 3, OPS), 3, OPS, "Customer lost 1,900 deals after sync failure; restore requested from engineering."),)),
    R("saas", "About to go on LinkedIn", "Four weeks, three tickets, zero answers about our broken invoices. If I don't hear from a human by Friday I'll write a LinkedIn post about how Northwind treats paying customers. I have a fairly big network in the SaaS scene.", "R", 3, REP),
    R("saas", "SLA breached again", "We pay for the enterprise SLA and you've breached it three times this quarter. Our legal department has been instructed to review the contract and our options.", "C", 3, COMP, segment="enterprise"),
    R("saas", "Hundreds of bot submissions on our form", "Since yesterday our Northwind web form has received about 600 submissions from addresses like qx7k2@..., all within minutes of each other, all with the same company name. Looks like a bot. It's flooding the sales team's queue.", "U", 3, OPS, product=0),
    R("saas", "API usage spike we didn't cause", "Our API usage went from about 2k calls a day to 480k in the last 24 hours, all from a key that belongs to an integration we switched off months ago. Either your metering is wrong or someone is using that key.", "US", 4, DSP, priority="urgent"),
    R("saas", "Why does the app want my location?", "The mobile app asks for my location all the time, even when I'm not using it. Why does a CRM need that? I'm uncomfortable with how much you're collecting about me.", "D", 2, DSP, product=0, priority="normal"),
    R("saas", "Former employee can still log in", "A sales rep who left in January can still log in and the audit log shows she opened 40 contact records last week. I removed her in the admin panel weeks ago. How is that possible?", "SD", 4, DSP, product=0, priority="urgent"),
    R("saas", "Search API returns every user's email", "Calling /v1/users/search with an empty query returns the email addresses of every user on the platform, not just our team. I've stopped our script; you may want to fix this before someone less friendly finds it.", "SD", 5, DSP, priority="urgent"),
    R("saas", "Share link opens the whole folder", "The share link for one contract gives access to our entire folder, including payroll files. A client told us they could browse everything.", "SD", 5, DSP, product=2, priority="urgent"),
    R("saas", "Cookie banner has no reject button", "Your cookie banner on the signing page has no 'reject all' button. Isn't that required under the ePrivacy rules? Our customers sign documents there.", "C", 2, COMP, product=2, priority="normal"),

    # ---------------------------------------------------------------------------- fintech
    H("fintech", "Forgot my app passcode", "I've forgotten the 6 digit passcode for the app. I still know my memorable word. How do I reset it without going to a branch?", tags=("login",)),
    H("fintech", "Savings pot on payday", "How do I set up a pot that moves £50 every payday automatically?", product=0),
    H("fintech", "Stamped statements for my mortgage", "My mortgage advisor needs the last 3 months of statements stamped by the bank. Can I get that from the app or do you post it?", product=0),
    H("fintech", "FX fee I don't understand", "There's a £2.50 fee on my statement called 'FX margin' on a purchase in euros. I thought the card had no foreign fees?", product=1, tags=("billing",)),
    H("fintech", "Declined at the petrol pump", "My card was declined at a petrol pump yesterday but worked in the shop inside. Is there a limit on pay-at-pump?", product=1),
    H("fintech", "Replacement card not arrived", "Ordered a replacement card 9 days ago, still nothing. Address on file is correct. Should I order another?", product=1,
      follow_ups=(comment(300, "Now my old card has been cancelled and the new one still isn't here. I literally can't buy food this week. I'm going to tell everyone on Twitter what this bank is like.", truth("RI", 3, REP)),)),
    H("fintech", "Round-ups", "Could you add round-ups so every card payment rounds up to the nearest pound into a pot? My old bank had it.", tags=("feature-request",), priority="low"),
    H("fintech", "Balance hidden behind the notch", "On my phone the balance at the top is cut off by the notch. Turning the phone sideways shows it. Small thing.", tags=("ui",), priority="low"),
    H("fintech", "Read-only access for our accountant", "How do I give our accountant read-only access to the Business account? She shouldn't be able to make payments.", product=2, segment="smb"),
    H("fintech", "Would you ever text me for my PIN?", "Saw a news piece about scam texts pretending to be banks. Just checking: would Kestrel ever text me asking for my PIN? I haven't had one, I just want to know what to look out for.", product=0),
    H("fintech", "Change of address", "I've moved. New address is 14 Harbour Row, Cardiff CF10 4PA. Do I need to send proof?"),
    H("fintech", "Thanks for the quick refund", "Just wanted to say thank you, the disputed £34 came back within two days.", priority="low"),
    H("fintech", "Not fraud after all", "I reported a payment as fraud on Monday but it was actually my son using my card for a game. Nothing was stolen and nobody else has my details. Can you cancel the dispute?", product=1),
    H("fintech", "Overdraft interest", "If I go £30 into my arranged overdraft for a day, how much interest is that roughly?", product=0),
    H("fintech", "Joint account", "My partner and I want to open a joint account. Can we do it all in the app or does one of us need to visit?", product=0),
    H("fintech", "Invoice template logo", "The invoices we send from Kestrel Business show our old logo. Where do I upload the new one?", product=2, segment="smb"),
    H("fintech", "Standing order date", "Can I change the date of my standing order to my landlord from the 1st to the 28th?", product=0),
    R("fintech", "Payments I didn't make", "There are four payments to an online electronics shop on my card ending {card4} last night, £1,240 in total. I was asleep and my card is in my wallet. Please block it.", "SI", 4, DSP, product=1, priority="urgent"),
    R("fintech", "Someone changed my phone number", "I got a text saying my registered phone number was changed. I didn't do that. Now I can't log in and there's a new payee called 'M Holdings' on my account.", "SD", 4, DSP, product=0, priority="urgent"),
    R("fintech", "My account has been emptied", "My current account has been emptied - £6,800 transferred out in three payments to an account I don't recognise while I was at work. That's my rent and my savings. Please help me.", "SI", 4, DSP, product=0, priority="urgent",
      follow_ups=(agent_flag(25, truth("SI", 4, DSP), 4, DSP, "Three outbound transfers not made by the customer, total 6,800. Account frozen, fraud team informed."),)),
    R("fintech", "Email pretending to be you", "Got an email from 'Kestrel Security Team' asking me to verify my card details through a link. The sender address looks off. I didn't click anything, just forwarding so you know.", "S", 3, DSP, priority="normal"),
    R("fintech", "Subject access request", "Please treat this as a subject access request under the UK GDPR. I want all personal data you hold about me, including call recordings and the notes your agents have made about me.", "C", 2, COMP, priority="normal"),
    R("fintech", "Referred to the Financial Ombudsman", "You've had eight weeks to resolve my complaint about the blocked transfer. I have now referred the case to the Financial Ombudsman Service, reference FOS-{ref}.", "C", 4, COMP),
    R("fintech", "I will take this further", "If the £420 isn't back in my account by the end of the week I'll be raising a formal complaint with the FCA.", "C", 3, COMP),
    R("fintech", "Payroll file rejected", "Our payroll bulk payment was rejected at 16:58 with 'file format error' - the same file format we've used for two years. 62 staff expect to be paid tomorrow morning. We cannot pay our employees unless this is fixed tonight.", "I", 3, OPS, product=2, priority="urgent", segment="smb"),
    R("fintech", "Card settlements missing for three days", "We haven't received card settlements for three days. That's roughly £38,000 of takings. Our suppliers are due to be paid Friday.", "I", 3, OPS, product=2, segment="smb"),
    R("fintech", "Press enquiry: frozen accounts", "I'm a reporter with the Evening Standard's money desk. Several readers have told us their Kestrel accounts were frozen without explanation for weeks. Could someone from your press office call me today?", "R", 4, REP),
    R("fintech", "Making a TikTok about this", "Three hours on hold today. I'm making a TikTok about this tonight, people need to know how this bank treats its customers.", "R", 3, REP, channel="social"),
    R("fintech", "Tiny test payments on my card", "I see 15 tiny payments between 1p and 10p from random merchants over the last hour on my card. Looks like someone is testing whether it works.", "US", 4, DSP, product=1, priority="urgent"),
    R("fintech", "90 refund requests in a day", "In the last 24 hours we've had 90 refund requests through our Kestrel Business payment link, all for exactly £49.99 and all to cards issued abroad. Normally we get 2 a week. Can you check whether this is fraud before we approve them?", "US", 3, DSP, product=2, segment="smb"),
    R("fintech", "Someone else's statement in my app", "There's a statement in my documents tab that belongs to a Mr P. Okafor - full account number, address, transactions. I'm not him. If I can see his, who can see mine?", "D", 5, DSP, product=0, priority="urgent"),
    R("fintech", "Marketing after I opted out", "I opted out of marketing in January and I'm still getting your 'partner offers' emails every week. I'd like to know who you have shared my email address with.", "D", 2, DSP, priority="normal"),
    R("fintech", "Rent bounced because of your error", "Your system error bounced my rent direct debit and my letting agent charged me a £150 late fee. If you don't cover it, I'll leave a review on Trustpilot so people know what happened.", "R", 3, REP),
    R("fintech", "Business account locked at month-end", "Our business account has been locked for 'review' for 4 days. We can't pay suppliers or staff and month-end is tomorrow. Nobody can tell us why.", "I", 3, OPS, product=2, segment="smb", priority="urgent"),

    # -------------------------------------------------------------------------- e-commerce
    H("ecommerce", "Where is my parcel?", "Order {order} was supposed to arrive Tuesday. Tracking still says 'label created'. Has it actually left the warehouse?", product=2,
      follow_ups=(comment(240, "It's been two weeks now. Still nothing and no answer from you. I'm done waiting - this is going on Facebook tonight and in a review so nobody else orders from you.", truth("R", 3, REP)),)),
    H("ecommerce", "Return for a refund", "The jacket is too small. Can I return it for a refund instead of an exchange? It's unworn with the tags on.", product=0, tags=("returns",)),
    H("ecommerce", "Gift wrapping", "Is there a gift-wrap option? I want to send a present straight to my sister's address.", product=0),
    H("ecommerce", "Wrong colour delivered", "I ordered the green kettle and got a cream one. Not a disaster, but I'd like the green if you still have it. Order {order}.", product=2),
    H("ecommerce", "Charged twice for one order?", "My bank app shows two charges of £23.99 for order {order}. Is one of them just a pending authorisation?", product=1, tags=("billing",),
      follow_ups=(comment(60, "One of them has disappeared now, so it was the authorisation. Thanks!", HARMLESS),)),
    H("ecommerce", "Size filter resets", "When I filter by size and then go to page 2 the size filter resets. Makes browsing shoes painful.", product=0, tags=("ui",), priority="low"),
    H("ecommerce", "Share my wishlist", "Could you let me share my wishlist with family? Birthday coming up and everyone keeps asking.", product=0, tags=("feature-request",), priority="low"),
    H("ecommerce", "Remove an old address", "How do I remove an old delivery address from my account? It keeps getting preselected.", product=0),
    H("ecommerce", "Seller payout schedule", "We're a new seller on the marketplace. When do payouts happen - weekly or after each order is delivered?", product=0, segment="smb"),
    H("ecommerce", "My review isn't showing", "I wrote a 5-star review for the blender two days ago and it's still not visible. Is there moderation?", product=0),
    H("ecommerce", "Vase arrived broken", "The vase arrived in pieces. Photos attached. The box looked fine from outside so probably the packing inside.", product=2, tags=("returns",)),
    H("ecommerce", "Leave with a neighbour", "Can the courier leave parcels with my neighbour at number 12 if I'm out?", product=2),
    H("ecommerce", "Discount code not valid", "The code SPRING15 says 'not valid for this item' on a sofa that's in the spring sale. Am I missing something?", product=1),
    H("ecommerce", "Click and collect", "Can I pick up my order from a locker instead of home delivery? I'm never in during the day.", product=2),
    H("ecommerce", "Product question: dishwasher safe?", "Is the cast iron pan in your kitchen range dishwasher safe? The listing doesn't say.", product=0),
    H("ecommerce", "Klarna option missing", "I used to be able to pay in three instalments, now the option isn't there at checkout. Was it removed?", product=1),
    R("ecommerce", "Is this charger certified?", "Does the 65W USB-C charger you sell have CE marking? The listing doesn't say and I'm not buying a charger without it.", "C", 2, COMP, product=0, priority="normal"),
    R("ecommerce", "Charger caught fire", "The 65W charger I bought from you in January caught fire on my desk last night. It melted the cable and scorched the desk. My son was in the room. This could have burned the house down.", "I", 5, SAFE, product=0, priority="urgent",
      follow_ups=(agent_flag(55, truth("I", 5, SAFE), 5, SAFE, "Charger fire reported with photos. Listing paused, product safety team informed."),)),
    R("ecommerce", "Train set wheels come off", "The wooden train set listed for ages 1+ has wheels that come off with a gentle pull. They're small enough to swallow. My 14-month-old had one in her mouth.", "I", 4, SAFE, product=0),
    R("ecommerce", "Heater smells of burning plastic", "The oil heater makes a burning plastic smell and the plug gets too hot to touch after 20 minutes. I've unplugged it. Is this a known fault?", "I", 4, SAFE, product=0),
    R("ecommerce", "I can see someone else's orders", "When I open 'My orders' I see three orders that aren't mine - a different name, a delivery address in Bristol and the last digits of their card. I've logged out and in again and they're still there.", "D", 5, DSP, product=0, priority="urgent"),
    R("ecommerce", "Someone else's invoice in my parcel", "My parcel contained someone else's invoice with their full name, address, phone number and what they bought.", "D", 4, DSP, product=2, priority="normal"),
    R("ecommerce", "Someone ordered phones with my saved card", "Someone got into my Lumen account, changed the delivery address and ordered two phones with my saved card. I only noticed because the confirmation email arrived.", "SD", 4, DSP, product=0, priority="urgent"),
    R("ecommerce", "Fake 'account locked' emails going around", "I got one of those 'your Lumen account was locked' emails with a login link. When I logged in normally everything was fine and nothing was changed, so I assume it was a fake. Thought you'd want to know it's going around.", "S", 3, DSP, priority="normal"),
    R("ecommerce", "Which advertisers get my data?", "Your privacy policy says you share data with 'advertising partners'. Which partners, and can I opt out of that under the CCPA?", "CD", 2, COMP, priority="normal"),
    R("ecommerce", "Refused refund on a faulty item", "You've refused a refund on a faulty item within 30 days. That is against the Consumer Rights Act and I will report you to Trading Standards if this isn't sorted.", "C", 3, COMP),
    R("ecommerce", "Going on Twitter tomorrow", "Six weeks waiting for a refund of £89. I'm putting the whole email chain on Twitter tomorrow and tagging you.", "R", 3, REP),
    R("ecommerce", "All our listings disappeared", "All 1,400 of our listings disappeared from the marketplace overnight with no explanation. It's our busiest week and we're losing about £5,000 a day in sales.", "I", 3, OPS, product=0, segment="smb", priority="urgent",
      follow_ups=(agent_flag(120, truth("I", 3, OPS), 3, OPS, "Seller's catalogue delisted by the moderation job; engineering investigating.", affected=1),)),
    R("ecommerce", "Our trainers sold out to bots", "Our limited-edition trainers (300 pairs) sold out in 11 seconds, to 280 accounts that were all created yesterday with similar names. Genuine customers are furious. Can you check for bots?", "U", 3, OPS, product=0, segment="smb"),
    R("ecommerce", "Gift card balance drained", "My gift card balance went from £200 to £0 this morning through 20 small purchases I didn't make.", "SU", 4, DSP, product=1),
    R("ecommerce", "A consumer TV show is interested", "I've been in touch with the BBC's consumer programme about the faulty fridge you won't take back. They're interested in featuring it. Last chance to sort this out.", "R", 4, REP),
    R("ecommerce", "Phishing copy of your login page", "There's a site at lumen-secure-login dot com that looks exactly like your login page. I almost typed my password into it. Please get it taken down.", "S", 3, DSP, priority="normal"),

    # ---------------------------------------------------------------------------- telecom
    H("telecom", "Roaming in Spain", "Going to Spain for two weeks. Is roaming included in my plan or do I need an add-on?", product=0),
    H("telecom", "Early upgrade", "My contract ends next month. Can I upgrade early and keep my number?", product=0),
    H("telecom", "Router light flashing orange", "The router has a flashing orange light but the internet works fine. Should I worry?", product=1),
    H("telecom", "Sports channel moved?", "Since the weekend I can't find the sports channel in the TV guide, but it's in my package. Did the number change?", product=2),
    H("telecom", "Bill higher than usual", "My bill is £6 higher than last month. Is that the annual price rise? Nobody told me about it.", tags=("billing",),
      follow_ups=(agent_flag(180, truth("A", 2, OPS), 2, OPS, "Price-rise letter not received by this customer either; third such complaint this week. Flagging for the weekly review."),)),
    H("telecom", "PUK code", "My phone is asking for a PUK code after I put the wrong PIN in three times. Where do I find it?", product=0),
    H("telecom", "Moving my fibre", "Moving house on the 28th. How do I move my fibre line and is there a fee?", product=1),
    H("telecom", "eSIM for my watch", "Please support eSIM for the Galaxy Watch. It's the only reason I haven't moved my watch plan to you.", product=0, tags=("feature-request",), priority="low"),
    H("telecom", "Usage bar over 100%", "The app says I've used 112% of my data but I haven't been charged anything extra. Display bug?", product=0, tags=("ui",), priority="low"),
    H("telecom", "App for the Fire Stick", "Is there an Orbitel TV app for the Amazon Fire Stick, or only for your box?", product=2),
    H("telecom", "Your new ad", "Saw your new ad with the dancing dog and loved it. How do I get the free month of TV it mentions?", product=2),
    H("telecom", "Cancel at end of term", "I'd like to cancel my broadband when the minimum term ends in May. What notice do you need?", product=1),
    H("telecom", "Slow in the evenings", "Every evening between 8 and 11 my speed drops from 150 to about 10 Mbps. Daytime is fine. Can you check the line?", product=1,
      follow_ups=(comment(360, "Third engineer no-show. I've had enough - I'm writing to the local newspaper and to your CEO.", truth("R", 4, REP)),)),
    H("telecom", "Voicemail PIN", "How do I reset my voicemail PIN? The old one doesn't work since I changed phones.", product=0),
    H("telecom", "Parental controls", "How do I set up parental controls on the TV box so the kids can't watch 18-rated films?", product=2),
    H("telecom", "Data add-on", "I've run out of data with a week to go. What's the cheapest add-on?", product=0),
    R("telecom", "New SIM activated on my number", "My phone lost signal this afternoon. When I called from my wife's phone your agent said a new SIM had been activated on my number in a store in Croydon. I never asked for that. My bank has now texted me codes I never received.", "SD", 4, DSP, product=0, priority="urgent"),
    R("telecom", "Another customer's call history on my bill", "I received a paper bill addressed to me but the second page shows the call history of a completely different customer - their number and every call they made.", "D", 4, DSP, priority="normal"),
    R("telecom", "Caller claiming to be your fraud team", "A man called saying he was from Orbitel's fraud team and asked for my account PIN to 'stop a SIM swap'. I hung up. Is this something you do?", "S", 3, DSP, priority="normal"),
    R("telecom", "Do you record my calls?", "Do you record calls to customer service, and how long do you keep the recordings? I'd like to know before I call about a sensitive family matter.", "D", 2, DSP, priority="normal"),
    R("telecom", "19 days without a landline", "I've been without a working landline for 19 days. I know you owe automatic compensation under Ofcom rules, and I'll complain to Ofcom and the ombudsman if it isn't paid.", "C", 3, COMP, product=1),
    R("telecom", "Our call centre has no phone lines", "All 40 SIP lines at our call centre dropped at 9:05 and we can't take customer calls. We're an insurance helpline, so this is costing us a lot. Please escalate.", "I", 5, SVC, product=1, segment="enterprise", priority="urgent",
      follow_ups=(agent_flag(20, truth("I", 5, SVC), 5, SVC, "Enterprise customer's SIP trunk down, 40 lines. Network ops engaged."),)),
    R("telecom", "999 gives a busy tone", "Since the firmware update on your home phone hub, dialling 999 gives a busy tone. I tested it twice with the operator. My mother relies on this line - she has a heart condition.", "I", 5, SAFE, product=1, priority="urgent"),
    R("telecom", "Reddit thread about your broadband", "There's a Reddit thread with 2,000 upvotes about your broadband dropping every night, and I'm about to add my story to it.", "R", 3, REP, product=1),
    R("telecom", "Data used while my phone was off", "My data allowance was used up overnight - 18GB between 1am and 5am while my phone was switched off in a drawer. The usage log shows connections to an address I don't recognise.", "US", 4, DSP, product=0),
    R("telecom", "Premium-rate calls on our company SIMs", "Overnight 23 of our company SIMs racked up premium-rate calls to the same international number, £14,600 in total. None of our staff were awake. This looks like fraud.", "USI", 4, DSP, product=0, segment="enterprise", priority="urgent"),
    R("telecom", "3G switch-off and our lift alarms", "We run 300 lift alarms on 3G SIMs. When exactly is the 3G switch-off, and what do we need to do to stay compliant with the lift safety regulations?", "C", 2, COMP, product=0, segment="enterprise", priority="normal"),

    # ------------------------------------------------------------------------- healthcare
    H("healthcare", "Move my physio appointment", "I need to move my physio appointment on Thursday to next week, any time after 4pm.", product=1),
    H("healthcare", "When to order a repeat prescription", "How many days before I run out should I order my repeat prescription so it arrives in time?", product=2),
    H("healthcare", "Add my child to my account", "Can I manage my 9-year-old's appointments from my own app account?", product=0),
    H("healthcare", "Locked out of the patient app", "The app locked me out after I typed my PIN wrong. I'm on {email}. How do I get back in?", product=0, tags=("login",)),
    H("healthcare", "Text too small on results", "The text on the results screen is really small and doesn't get bigger when I change the phone's font size. Hard for older patients.", product=0, tags=("ui",), priority="low"),
    H("healthcare", "Add appointments to my calendar", "Could the app add appointments to my phone calendar automatically?", product=0, tags=("feature-request",), priority="low"),
    H("healthcare", "Test my camera first", "Is there a way to test my camera and microphone before the video appointment?", product=1),
    H("healthcare", "Receipt for my insurer", "My insurer needs an itemised receipt for my dermatology consultation on 3 March. Can you email it?", tags=("billing",)),
    H("healthcare", "Thank you to the nurse", "Please pass on my thanks to the nurse who called me back on Sunday. She was very kind.", priority="low"),
    H("healthcare", "Pharmacy on bank holidays", "Is the pharmacy counter open on bank holidays?", product=2),
    H("healthcare", "Change my practice", "I've moved to a new area. How do I change my registered practice in the app?", product=0),
    H("healthcare", "Not a complaint: location permission", "Not a complaint at all - I just want to know whether the app works without location permission turned on.", product=0),
    R("healthcare", "Another patient's test results", "In 'My results' there's a blood test from 2 March for a woman called A. Haddad, with her date of birth. I'm a man and I've never had that test. This is someone's private medical information.", "D", 5, DSP, product=0, priority="urgent"),
    R("healthcare", "A stranger joined my video consultation", "During my video consultation yesterday another patient joined the call by mistake and heard me discussing my mental health. The doctor seemed as surprised as I was. Isn't this a breach of data protection law?", "DC", 5, DSP, product=1, priority="urgent"),
    R("healthcare", "Wrong dose on my prescription label", "The label on the methotrexate you sent says take daily. My doctor told me weekly. If I'd followed the label I could have been seriously hurt.", "I", 5, SAFE, product=2, priority="urgent",
      follow_ups=(agent_flag(15, truth("I", 5, SAFE), 5, SAFE, "Dispensing label error on a high-risk medicine. Pharmacist lead informed."),)),
    R("healthcare", "Someone else's insulin in my parcel", "The pharmacy parcel had my name on the outside but inside were insulin pens prescribed to another patient, with their name and address on the label.", "DI", 5, SAFE, product=2, priority="urgent"),
    R("healthcare", "Insulin delivery late, one pen left", "My insulin delivery was due Monday and still hasn't come. I have one pen left. The tracking hasn't updated in three days.", "I", 4, SAFE, product=2, priority="urgent"),
    R("healthcare", "Copy of my medical record", "I'd like a copy of my full medical record held by MediSure, including the notes from my video consultations. How do I request it and how long does it take?", "C", 2, COMP, priority="normal"),
    R("healthcare", "Business Associate Agreement", "We're a small clinic thinking of using MediSure Telehealth. Will you sign a Business Associate Agreement under HIPAA, and is the video encrypted end to end?", "C", 2, COMP, product=1, priority="normal", segment="public_sector"),
    R("healthcare", "Writing to the local paper", "I've waited 3 weeks for a callback about my mum's missed prescription. I'm writing to the local paper about MediSure this weekend.", "R", 4, REP, product=2),
    R("healthcare", "Appointments booked in my name", "I got confirmations for three appointments I didn't book and my address in the app was changed to one in Leeds. I think someone has my login.", "SD", 4, DSP, product=0, priority="urgent"),
    R("healthcare", "Same painkiller requested again and again", "I'm a pharmacist at one of your partner pharmacies. In the last two days we've received 14 prescription requests for the same controlled painkiller from accounts with different names but the same delivery address.", "U", 3, OPS, product=2, segment="public_sector"),

    # ----------------------------------------------------------------------------- travel
    H("travel", "Change my flight date", "Can I move my Lisbon flight from 14 to 16 May? Booking {ref}. Happy to pay the difference.", product=0),
    H("travel", "Adding a bag", "How much is it to add a 23kg bag to an existing booking?", product=0),
    H("travel", "Sitting together", "Is it possible to choose seats together for a family of four without paying for each seat?", product=0),
    H("travel", "Loyalty points missing", "My points from the Rome trip in February haven't been added. Booking {ref}.", product=2,
      follow_ups=(comment(420, "Since nobody answers, I've posted the whole story on Reddit and it's on the front page of r/travel now. Maybe that gets a response.", truth("R", 4, REP)),)),
    H("travel", "Surname misspelled", "I misspelled my surname on the booking (Jonhson instead of Johnson). Can that be fixed for free?", product=0),
    H("travel", "Boarding pass cut off", "The boarding pass in the app is cut off on the right side so the QR code is only half visible. I screenshot it and zoom out for now.", product=1, tags=("ui",), priority="low"),
    H("travel", "Price alerts", "Could you add price alerts for specific routes? I keep checking every day.", product=1, tags=("feature-request",), priority="low"),
    H("travel", "Dog in the cabin", "Can I bring my small dog (6kg) in the cabin on flights to Dublin?", product=0),
    H("travel", "Delay compensation", "My flight was delayed 3 hours on Sunday. Am I entitled to compensation, and how do I claim?", product=0),
    H("travel", "Hotel receipt for expenses", "I need a receipt for the hotel part of my package for my expenses claim.", product=0,
      follow_ups=(comment(200, "The receipt you sent me is for a different guest - it has their name, the last four digits of their card and their home address.", truth("D", 4, DSP)),)),
    H("travel", "Lounge closed, no refund needed", "Not asking for a refund or anything, just wanted to let you know the lounge at gate 12 was closed even though the app said it was open.", product=1, priority="low"),
    H("travel", "Travelling with a wheelchair", "My dad uses a wheelchair. How do I book assistance at the airport for both flights?", product=0),
    H("travel", "Upgrade with points", "Can I use loyalty points to upgrade to business class on a booking I've already paid for?", product=2),
    H("travel", "Infant on lap", "Do I need to book a seat for a 10-month-old or can she sit on my lap?", product=0),
    R("travel", "Another passenger's passport on my booking", "When I opened manage booking for {ref} I saw a passport number, nationality and date of birth for a passenger I don't know. My own details aren't there at all.", "D", 5, DSP, product=0, priority="urgent",
      follow_ups=(agent_flag(30, truth("D", 5, DSP), 5, DSP, "Manage-booking page shows another passenger's passport data. Reproduced."),)),
    R("travel", "Boarding passes for strangers", "I received an email with boarding passes for a family of four - names, booking reference, seats. I don't know them. You must have their email wrong or mixed up with mine.", "D", 4, DSP, priority="normal"),
    R("travel", "Loyalty points stolen", "Someone logged into my SkyWay Loyalty account and redeemed 84,000 points for a flight from Lagos I never booked. I have two-factor on my email, so I don't know how.", "SD", 4, DSP, product=2, priority="urgent"),
    R("travel", "Stranded for six days", "Our return flight was cancelled and the app only offers a flight in 6 days. We're two adults and two kids in Tenerife, and the hotel costs €380 a night. We can't afford this.", "I", 3, OPS, product=0, priority="urgent"),
    R("travel", "EU261 claim ignored", "I claimed EU261 compensation four months ago for a cancelled flight and have had no answer. If I don't get a reply in 14 days I'll take it to the national enforcement body and to small claims court.", "C", 3, COMP),
    R("travel", "120k followers will hear about this", "I have 120k followers on Instagram and they're all going to hear about how SkyWay left us at the gate with no help.", "R", 3, REP, channel="social"),
    R("travel", "Nut allergy meal ignored", "I booked a nut-free meal for my son, who has a severe nut allergy, and the crew handed him a peanut snack box. He reacted and we had to use his EpiPen.", "I", 5, SAFE, product=0, priority="urgent"),
    R("travel", "25 bookings we didn't make", "I'm a travel agent. In the last hour 25 bookings were created on our agency account for the same Istanbul flight with different passengers, none of which we made.", "US", 4, DSP, product=0, segment="smb", priority="urgent"),
    R("travel", "Delete my passport details", "How long do you keep passport details after my trip? I'd like you to delete mine once I've flown.", "C", 2, COMP, priority="normal"),

    # ------------------------------------------------ any industry: the same needs, new words
    H("saas", "Login codes by email instead of SMS", "I travel a lot and my SMS codes don't always arrive abroad. Can I get the login codes by email or from an authenticator app instead?", tags=("login",)),
    H("fintech", "Statements in euros", "Can I get my statements in euros rather than pounds? Our accounts are kept in EUR.", product=2, segment="smb"),
    H("ecommerce", "Screen reader can't read buttons", "Some buttons on the checkout page are read out as just 'button' by VoiceOver. Could you add proper labels?", product=1, tags=("ui",)),
    H("telecom", "Profile photo upload fails", "Uploading a profile photo in the app fails with 'file too large' even for a 400KB picture.", product=0, tags=("ui",), priority="low"),
    H("travel", "Too many newsletters", "Love the newsletter but three a week is a lot. Can I get a monthly digest instead?", priority="low"),
    H("healthcare", "Emails in the wrong language", "Your appointment emails arrive in Welsh although my account language is English. Not a problem, just confusing.", product=0),
    H("ecommerce", "Student discount", "Do you offer a student discount? I have a valid student card.", product=0),
    H("saas", "Which email did I sign up with?", "I have two email addresses and I don't remember which one I signed up with. Can you check whether {email} has an account?", tags=("login",)),
    H("travel", "Times shown in UTC", "Notifications show flight times in UTC, not local time. Nearly missed my taxi because of it.", product=1),
    H("fintech", "Referral bonus missing", "I referred a friend two weeks ago and neither of us got the bonus. Her email is {email}.", product=0),
    H("saas", "Printing cuts off a column", "Printing a deal report cuts off the last column. Landscape doesn't help.", product=1, tags=("ui",), priority="low"),
    H("ecommerce", "Search ignores accents?", "Searching 'Muller' doesn't find 'Müller' cookware. Could search ignore accents?", product=0, tags=("feature-request",), priority="low"),
    H("telecom", "App logs me out every time", "The app logs me out every time I close it and I have to log in again each morning. Is there a 'remember me'?", product=0, tags=("login",)),
    H("saas", "Where do invoices go?", "Invoices still go to our old finance inbox. How do we change where they're sent?", tags=("billing",)),
    H("saas", "Planned maintenance this weekend?", "Is there planned maintenance this weekend? We'd like to schedule our data migration around it.", product=1, segment="enterprise"),
    H("telecom", "Notice period in the terms", "What's the notice period to cancel under your terms? I can't find it in the T&Cs.", product=1),
    H("saas", "Logo for our blog post", "Do you have a logo pack we can use? We're writing a blog post about tools we love, including Northwind.", priority="low"),
    H("telecom", "Update is killing my battery", "Since updating, the Orbitel app drains my battery - 30% in an hour. Not the end of the world but noticeable.", product=0),
    H("saas", "Quote versus invoice", "The invoice says €1,250 but the quote said €1,150. Could you check the difference?", tags=("billing",)),
    H("travel", "Card expiring before my trip", "My card expires this month and my holiday balance is due in June. Can I update the card on the booking?", product=0),
    H("saas", "Education discount", "We're a school looking at 120 licences. Is there an education discount?", segment="public_sector"),
    H("ecommerce", "Chat bubble covers the Next button", "On mobile the chat bubble sits right on top of the 'Next' button, I can't tap it.", product=1, tags=("ui",), priority="low"),
    H("fintech", "Email change link invalid", "I changed my email address and the confirmation link says 'invalid token'. The new address is {email}.", tags=("login",)),
    H("healthcare", "Settings page redesign", "Whoever redesigned the settings page - thank you, I can finally find things.", product=0, priority="low"),
    H("travel", "History as JSON?", "Can I download my trip history as a file? I want to put it in my own spreadsheet.", product=2),
    H("telecom", "Your app is on fire lately", "Your app is on fire lately - the new usage charts are great. One question: can I see last year's bills in it too?", product=0, priority="low"),
    H("fintech", "Share my savings goal on Instagram?", "Is there a way to share my savings goal progress as an Instagram story? My friends and I are doing a challenge.", product=0, tags=("feature-request",), priority="low"),
    H("healthcare", "Shared with my carer", "Can my carer see my appointments in her own app without having my password?", product=0),
    R("saas", "Reset emails I didn't request, then locked out", "This morning I got three password reset emails I didn't ask for, and an hour later my password no longer works. My email is {email}. Please lock the account until I can prove who I am.", "SD", 4, DSP, priority="urgent"),
    R("travel", "Why do you need my ID?", "The app wants a photo of my passport before I can continue. I'm not comfortable sending that. Who sees it and how long is it stored?", "D", 2, DSP, product=1, priority="normal"),
    R("ecommerce", "Emails after I deleted my account", "I deleted my account in December and got written confirmation. Today I got a marketing email addressed to me by name. So you kept my data. That's a breach of GDPR.", "DC", 3, DSP, priority="normal"),
    R("telecom", "One-star reviews today", "I'll be leaving one-star reviews on Trustpilot and Google today unless someone calls me back about the engineer who never came.", "R", 3, REP, product=1),
    R("fintech", "Class action over the fee change", "I'm organising the customers affected by last month's fee change into a class action, and we've already spoken to a consumer journalist.", "CR", 4, COMP),
    R("healthcare", "Hundreds of failed logins on my account", "The security page in the app shows sign-in attempts every few minutes from Brazil, Vietnam and Romania over the last day. They all failed, but it's hundreds of attempts.", "US", 3, DSP, product=0),
    R("travel", "Letter before action", "Please find attached a letter before action from our solicitors regarding the unpaid compensation for our group booking. We expect a response within 14 days.", "C", 4, COMP, segment="smb"),
    # ---------------------------------------------------------------- more of every industry
    H("healthcare", "Prescription ready or not?", "Got a text that my prescription is ready but the app still says 'processing'. Which one is right?", product=2),
    H("healthcare", "Appointment link expired", "The link in my appointment email says expired, but the appointment is tomorrow. Should I use the app instead?", product=1),
    H("healthcare", "Two months of tablets for a trip", "I'm away for five weeks over summer. Can I get two months of my repeat prescription at once?", product=2),
    H("healthcare", "Booking a flu jab", "Can I book my flu jab through the app, or only GP appointments?", product=0),
    H("healthcare", "Adding an allergy", "I'm now allergic to penicillin, confirmed last week. How do I add it to my record in the app?", product=0),
    H("healthcare", "Dark mode please", "Please add a dark mode, the white screen is painful when I check results at night.", product=0, tags=("feature-request",), priority="low"),
    R("healthcare", "Results sent to my old email", "My lab results were emailed to an address I stopped using two years ago - my ex-husband still has access to that inbox. I changed it in the app in 2024.", "D", 4, DSP, product=0, priority="urgent"),
    R("healthcare", "Who can read my messages to the doctor?", "Who at MediSure can read the messages I send to my doctor through the app? I've written some very personal things and I'm worried about who has access.", "D", 2, DSP, product=0, priority="normal"),
    R("healthcare", "Does the app send data to Facebook?", "I read that some health apps send data to Facebook for advertising. Does yours? I use it for my therapy appointments.", "D", 2, DSP, product=0, priority="normal"),
    R("healthcare", "Blood pressure cuff won't deflate", "The blood pressure monitor you sell inflates and doesn't release. It left bruises on my arm and I had to pull it off.", "I", 4, SAFE, product=2),
    H("travel", "Is 55 minutes enough?", "Is 55 minutes enough to connect in Amsterdam on a single booking?", product=0),
    H("travel", "Refund to a replaced card", "My cancelled flight refund - will it go back to the card I paid with? That card has since been replaced.", product=0),
    H("travel", "Visa for a layover", "Do I need a visa for a layover in Dubai if I don't leave the airport?", product=0),
    H("travel", "Notification prompt every time", "Every time I open the app it asks to allow notifications, even after I say no.", product=1, tags=("ui",), priority="low"),
    H("travel", "Vegetarian meal", "How do I request a vegetarian meal on my booking?", product=0),
    R("travel", "Charged after cancelling within 24 hours", "I cancelled within 24 hours and you still charged €2,460 for four tickets. That money was for our rent.", "I", 3, OPS, product=0),
    R("travel", "Seatbelt wouldn't latch", "The seatbelt on 14C didn't latch during turbulence and the crew said there was no free seat. My daughter sat there for the whole flight without a working belt.", "I", 4, SAFE, product=0),
    H("fintech", "Savings interest rate", "What's the current interest rate on the easy-access pot?", product=0),
    H("fintech", "Lower contactless limit", "Can I lower my contactless limit to £30?", product=1),
    H("fintech", "Apple Pay says contact your bank", "Adding my card to Apple Pay says 'contact your bank'. What do I need to do?", product=1),
    H("fintech", "New device text was me", "Heads up rather than a complaint: I got a text saying 'new device added' but it was my new phone, nothing's wrong and no money has moved. Just confirming those texts are genuine.", product=0),
    R("fintech", "Why was my loan declined?", "You declined my loan application. I want to know which data you used to decide and whether a human looked at it. I believe I have that right under GDPR.", "C", 2, COMP, priority="normal"),
    R("fintech", "My father is sending money to a scammer", "My 84-year-old father has sent £9,500 over the last month to someone he met online who says he's a soldier abroad. The payments are from his Kestrel account. Can you stop them?", "UI", 4, OPS, product=0, priority="urgent"),
    H("ecommerce", "Every promo email twice", "I get every promo email twice. Can you check whether I have two accounts?", product=0),
    H("ecommerce", "Back in stock alert", "Can I get notified when the walnut desk is back in stock?", product=0),
    H("ecommerce", "Assembly instructions missing", "The wardrobe came without the assembly instructions. Is there a PDF?", product=2),
    R("ecommerce", "Power bank has swollen", "The power bank I bought last month has swollen up like a pillow and the case is splitting. Is it safe to throw away or should I send it back?", "I", 4, SAFE, product=0),
    R("ecommerce", "Seller wants payment outside the site", "A seller messaged me through Lumen asking me to pay by bank transfer outside the site and to send a photo of my ID first. Is that allowed?", "S", 3, DSP, product=0, priority="normal"),
    H("telecom", "Change the Wi-Fi name", "How do I change the Wi-Fi name and password on my Orbitel router?", product=1),
    H("telecom", "Porting my number", "I'm bringing my number from another network. How long does the switch take?", product=0),
    R("telecom", "Someone upgraded my contract pretending to be me", "Someone called your helpline pretending to be me and upgraded my contract to a new iPhone delivered to another address. Your agent let them through with just my date of birth.", "SD", 4, DSP, product=0, priority="urgent"),
    R("telecom", "Engineer left bare wires", "Your engineer left the wall socket open with bare wires showing, at toddler height in our hallway. I've taped it over for now.", "I", 4, SAFE, product=1),
    H("saas", "Prorated upgrade?", "If we upgrade from Starter to Growth mid-month, is the difference prorated?", tags=("billing",)),
    H("saas", "Webhook retries", "How many times do you retry a webhook that returns a 500?", product=0),
    H("saas", "Archived a deal by mistake", "Where do archived deals go? I archived one by mistake.", product=0),
    R("saas", "Accessibility report for a tender", "We're a council preparing a tender. We need your accessibility conformance report and confirmation that Northwind meets the Public Sector Bodies Accessibility Regulations.", "C", 2, COMP, segment="public_sector", priority="normal"),
    R("saas", "Audit trail shows another contract's signer", "When I download a signed contract, the audit trail page lists the name, email and IP address of a signer from a completely different contract.", "D", 5, DSP, product=2, priority="urgent"),
)
# fmt: on


@dataclass(frozen=True)
class Incident:
    """Different customers describing one problem in their own words, close together in time.

    ``truth`` applies to every member (``multiple_similar_reports`` is added when the reports
    make a surge: at least 5 customers within an hour); ``extra`` adds indicators to the
    member whose text carries them.
    """

    key: str
    industry: str
    product: int
    day: int
    start: str  # HH:MM of the first report, UTC
    span_minutes: int  # the last report arrives this long after the first
    truth: Truth
    reports: tuple[tuple[str, str], ...]
    extra: dict[int, str] = field(default_factory=dict)  # report index -> indicator codes
    same_customer: bool = False
    priority: str = "high"


# fmt: off
INCIDENTS: tuple[Incident, ...] = (
    Incident("checkout-payments-failing", "ecommerce", 1, 0, "11:05", 45, truth("M", 5, SVC), (
        ("Can't pay - card keeps getting rejected", "Tried three different cards and every one is rejected at the last step of checkout with 'payment could not be processed'. The cards work everywhere else."),
        ("Checkout broken?", "Is checkout down? I press Pay and it just spins and then says something went wrong."),
        ("Payment error", "Getting 'Error 502' after entering card details. Order won't go through."),
        ("Bank verification page blank", "After I enter my card the bank verification window opens but it's completely blank. Then the order fails."),
        ("order not going through!!", "been trying for 20 mins to buy a pram, payment fails every time, basket keeps emptying"),
        ("No sales since 11am", "We sell on Lumen Marketplace and haven't had a single completed order since about 11:00 - normally we get 40 an hour. Our customers are messaging us saying checkout fails. We're losing thousands."),
        ("PayPal fails too", "Card didn't work so I tried PayPal - it also fails at the final step with an error."),
        ("Payment failed but money reserved?", "Payment failed twice but my bank shows two pending amounts of £64. Will those be released? The order still isn't placed."),
        ("Checkout times out", "The checkout page times out when I click 'Place order'. Tried on my phone and my laptop."),
        ("Customers can't pay - urgent", "Our whole shop on Lumen is effectively closed - no buyer can complete a payment. This is our biggest sale day of the quarter."),
    ), extra={5: "I", 9: "I"}),
    Incident("mobile-network-down", "telecom", 0, 1, "10:04", 52, truth("M", 5, SVC), (
        ("No signal", "No signal at all since about 10am. Phone says 'No service'. Restarted twice."),
        ("SOS only", "My phone only shows 'SOS' in the corner. Can't call or text anyone."),
        ("Mobile data gone in Manchester", "4G has disappeared completely in Manchester city centre, and colleagues on Orbitel have the same problem."),
        ("Calls failing", "Every call I make drops straight away with a beep. Texts aren't sending either."),
        ("Is there an outage?", "Is there a network outage? Nobody in our office who is on Orbitel can make calls."),
        ("Dad's fall alarm has no signal", "My father's fall alarm uses an Orbitel SIM and it has shown no network since this morning. He lives alone. If he falls now, nobody gets the alert."),
        ("can't get online", "mobile internet dead, wifi works fine"),
        ("Lost service during a work call", "Lost service in the middle of a client call at 10:02 and it hasn't come back."),
        ("Zero bars", "Zero bars on my phone, and on my wife's phone on the same contract too."),
        ("No service on two phones", "Both our phones have had no service for an hour. Is something wrong with the network in the north west?"),
        ("Cannot text", "Texts fail with 'not sent' and calls go nowhere. Is Orbitel down?"),
        ("Work phones offline", "All 12 of our company phones lost service this morning. Our drivers can't be reached and deliveries are piling up."),
    ), extra={5: "I", 11: "I"}, priority="urgent"),
    Incident("card-double-debits", "fintech", 1, 1, "14:02", 41, truth("M", 4, OPS), (
        ("Charged twice", "Every card payment I made yesterday has been taken twice."),
        ("Duplicate transactions", "My coffee, my lunch and my train ticket all show up two times in the app, same amounts."),
        ("Now overdrawn", "You've taken my supermarket shop twice and now I'm overdrawn and my rent payment bounced. I need this fixed today."),
        ("Double debits", "Double debits on all my purchases from 8am onwards. Is this a known issue?"),
        ("Payment appeared twice", "Paid £45 at the garage once, the app shows it twice and the balance reflects both."),
        ("balance wrong", "my balance is about £200 lower than it should be, looks like every payment has gone out twice"),
        ("Duplicated card payments", "All my card transactions are duplicated. Please refund the copies."),
        ("Can't buy food", "Because of the duplicate payments I have £3 left until Friday. I can't buy food for my kids."),
    ), extra={2: "I", 7: "I"}),
    Incident("analytics-cross-tenant-data", "saas", 1, 0, "15:01", 38, truth("MD", 5, DSP), (
        ("Seeing another company's dashboard", "Our revenue dashboard is showing numbers and client names that aren't ours."),
        ("Wrong workspace data", "Logged in and the whole reports tab belongs to another company - their deals, their contacts."),
        ("Is our data visible to others?", "We can see another organisation's data in Analytics. I have to assume they can see ours. Our DPO needs to know whether this is a reportable breach under GDPR."),
        ("Data mix-up in reports", "The weekly report email we received contains figures and customer names from a different Northwind customer."),
        ("Someone else's analytics", "pretty sure I'm looking at someone else's analytics right now. big privacy problem"),
        ("Dashboards show foreign data", "Three of our dashboards show data from an account called 'Harbour Logistics'. We are not Harbour Logistics."),
    ), extra={2: "C"}, priority="urgent"),
    Incident("telehealth-video-failing", "healthcare", 1, 2, "10:00", 48, truth("M", 4, SVC), (
        ("Video visit won't connect", "My video appointment just says 'connecting...' forever. The doctor rang me in the end."),
        ("Can't join my appointment", "The join button does nothing since the app updated this morning."),
        ("Black screen in consultation", "Black screen when the consultation starts, I can hear the doctor but she can't hear me."),
        ("Missed appointment because of the app", "Tried for 15 minutes to join my 10:30 video visit. Gave up. Now I have to wait two weeks for another slot."),
        ("Video call crashes", "The app crashes as soon as the video call opens, on my iPad and on my phone."),
        ("Doctor couldn't see me", "My GP said my video kept freezing and then dropped. Happened three times."),
        ("telehealth broken", "app closes every time I press Join visit"),
    )),
    Incident("online-check-in-failing", "travel", 1, 2, "13:31", 47, truth("M", 4, SVC), (
        ("Online check-in error", "Online check-in fails with 'something went wrong' for my flight to Malaga tomorrow."),
        ("Can't check in", "I can't check in on the app or the website. It keeps saying passenger details invalid."),
        ("Airport check-in fee?", "If I can't check in online because of your error, will I be charged the airport check-in fee?"),
        ("Boarding pass won't generate", "Checked in but the boarding pass never appears, just an endless loader."),
        ("check in broken", "check in broken for our family booking, tried all evening"),
        ("Error at passport step", "Check-in stops at the passport details step with an error. Tried two different passports."),
        ("App check-in unavailable", "App says check-in unavailable. Website says the same. Flight is at 6am."),
        ("Web check-in down?", "Is web check-in down? Three of us on different bookings all get an error."),
        ("Can't get boarding passes", "Can't get our boarding passes for tomorrow's flight, online check-in errors out every time."),
    )),
    Incident("fake-billing-texts", "telecom", 1, 1, "17:03", 42, truth("MS", 4, DSP), (
        ("Text saying my bill is unpaid", "Got an SMS from 'Orbitel' saying my bill is unpaid and my line will be cut today unless I pay through a link. I pay by direct debit. Is this real?"),
        ("Scam text?", "Received a text claiming to be from you with a link to orbitel-billing-update dot net. Looks fake."),
        ("I think I've been scammed", "I clicked the link in a text from 'Orbitel' about an overdue bill and entered my card details before I realised. What should I do?"),
        ("Fake Orbitel message", "Just a heads up, people in our street are all getting a fake Orbitel text about a failed payment."),
        ("Suspicious SMS", "Is the text about my 'suspended' broadband from you? It asks me to confirm my bank details."),
        ("Phishing SMS", "Reporting a phishing SMS pretending to be Orbitel. The sender showed as ORBITEL."),
    ), extra={2: "D"}),
    # Near misses: similar reports that are *not* a surge by the protocol's working definition.
    Incident("export-slow-three-customers", "saas", 0, 0, "09:12", 38, HARMLESS, (
        ("Export takes ages", "Exporting contacts to CSV takes over 10 minutes today, usually it's seconds."),
        ("Slow export", "Is export slow for everyone? Mine's been running for ages."),
        ("CSV download stuck", "The CSV download has been stuck at 90% for a while."),
    ), priority="normal"),
    Incident("one-customer-five-messages", "ecommerce", 2, 1, "12:10", 50, HARMLESS, (
        ("Where is my order?", "Order {order} still not here. Tracking hasn't changed since Monday."),
        ("Re: Where is my order?", "Following up - any news on the parcel?"),
        ("Parcel still missing", "Still no parcel and no reply. Can someone look at this please?"),
        ("Order {order}", "Fourth message today. Tracking still says in transit."),
        ("Please reply", "I need the parcel by Saturday, it's a birthday present. Please reply."),
    ), same_customer=True, priority="normal"),
    Incident("seat-map-over-an-afternoon", "travel", 1, 1, "11:20", 330, HARMLESS, (
        ("Seat map not loading", "The seat map on the app is blank when I try to choose seats."),
        ("Can't pick seats", "Choosing seats doesn't work, the plane picture never appears."),
        ("Seat selection blank", "Seat selection page is empty for my Faro flight."),
        ("Seat map error", "Seat map shows an error. Can I choose seats at the airport instead?"),
        ("Seats page spinning", "The seats page spins forever on my laptop."),
        ("No seat map", "No seat map shows up on the website or the app for booking {ref}."),
    ), priority="normal"),
)
# fmt: on

# ---------------------------------------------------------------------------------------------
# People and their personal data (fictional; formats that intake's redaction recognises)
# ---------------------------------------------------------------------------------------------

# fmt: off
FIRST_NAMES = (
    "Amara", "Ben", "Chiara", "Dev", "Elif", "Finn", "Grace", "Hamid", "Isla", "Jonas", "Keiko",
    "Luca", "Maya", "Nikolai", "Orla", "Pablo", "Rania", "Sam", "Tariq", "Una", "Viktor",
    "Wanjiru", "Xavier", "Yara", "Zeynep", "Aled", "Bronwen", "Ciaran", "Delphine", "Emre",
)
LAST_NAMES = (
    "Adeyemi", "Brennan", "Castillo", "Dubois", "Eriksen", "Fraser", "Gallagher", "Hughes",
    "Iqbal", "Jovanovic", "Kaur", "Lindqvist", "Mensah", "Nowak", "Oyelaran", "Parry",
    "Quinn", "Rahman", "Sato", "Thorne", "Uddin", "Varga", "Whitfield", "Yamamoto", "Zielinski",
)
COMPANIES = (
    "Brightwater Studio", "Calder & Finch", "Harbourline Freight", "Mosaic Dental Group",
    "Northgate Insurance", "Pennant Joinery", "Quayside Coffee Co.", "Redfern Analytics",
    "Tallis Recruitment", "Verity Legal Services", "Wildflower Nurseries", "Oakhurst Academy",
)
MAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.co.uk")
# fmt: on


def _luhn_digit(partial: str) -> str:
    total = 0
    for position, char in enumerate(reversed(partial)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return str((10 - total % 10) % 10)


@dataclass
class Person:
    customer_id: str
    first: str
    last: str
    email: str
    phone: str
    segment: str
    company: str | None

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


class People:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._count = 0

    def new(self, tenant: Tenant, segment: str | None) -> Person:
        rng = self._rng
        self._count += 1
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        chosen = segment or _weighted(rng, tenant.segments)
        local = rng.choice((f"{first}.{last}", f"{first[0]}{last}{rng.randrange(10, 99)}"))
        phone = rng.choice(
            (
                f"+44 7700 900{rng.randrange(100, 999)}",
                f"07700 900{rng.randrange(100, 999)}",
                f"+1 202-555-01{rng.randrange(10, 99)}",
            )
        )
        return Person(
            customer_id=f"{tenant.prefix.lower()}cus-{self._count:04d}",
            first=first,
            last=last,
            email=f"{local.lower()}@{rng.choice(MAIL_DOMAINS)}",
            phone=phone,
            segment=chosen,
            company=rng.choice(COMPANIES) if chosen != "consumer" else None,
        )


def _weighted(rng: random.Random, pairs: Sequence[tuple[str, int]]) -> str:
    point = rng.randrange(sum(weight for _, weight in pairs))
    for value, weight in pairs:
        if point < weight:
            return value
        point -= weight
    raise AssertionError("unreachable")


def _fill(text: str, rng: random.Random, person: Person, values: dict[str, str]) -> str:
    """Replace ``{email}``-style slots, drawing each value once per ticket."""

    def value(slot: str) -> str:
        if slot not in values:
            if slot == "email":
                values[slot] = person.email
            elif slot == "order":
                values[slot] = f"#{rng.randrange(4_000_000, 4_999_999)}"
            elif slot == "ref":
                values[slot] = "".join(
                    rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6)
                )
            elif slot == "card4":
                body = "4" + "".join(str(rng.randrange(10)) for _ in range(14))
                values[slot] = (body + _luhn_digit(body))[-4:]
            else:
                raise KeyError(f"unknown slot {{{slot}}}")
        return values[slot]

    out, position = [], 0
    while (start := text.find("{", position)) != -1:
        end = text.index("}", start)
        out.append(text[position:start])
        out.append(value(text[start + 1 : end]))
        position = end + 1
    out.append(text[position:])
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Channels: how each one delivers the same words
# ---------------------------------------------------------------------------------------------

CHANNEL_WEIGHTS = (("email", 40), ("web", 22), ("chat", 18), ("phone", 12), ("social", 8))
# fmt: off
GREETINGS = ("Hello,", "Hi,", "Hi there,", "Dear Support Team,", "Good morning,", "Hi team,", "To whom it may concern,", "")
CLOSINGS = ("Thanks", "Kind regards", "Best", "Many thanks", "Regards", "Cheers", "Thank you", "Best wishes")
FOOTERS = (
    "CONFIDENTIALITY NOTICE: This e-mail and any attachments are confidential and may be privileged. Any unauthorised use, disclosure or copying is prohibited.",
    "If you are not the intended recipient, please notify the sender immediately and delete this message. Unauthorised access to or use of this e-mail is strictly prohibited.",
    "Sent from my iPhone",
    "Get Outlook for Android",
    "You are receiving this email because you are subscribed to our updates. To unsubscribe, click here.",
    "Privacy Policy | Terms of Service | Cookie Settings",
    "We process personal data in accordance with the GDPR. Read how we handle your information in our privacy notice.",
    "Disclaimer: This message is for the named addressee only. Our company accepts no liability for viruses or for loss or damage arising from the use of this e-mail.",
    "Please consider the environment before printing this email.",
    "This message has been scanned for malware and viruses by our security gateway.",
)
CHAT_OPENERS = (
    "Bot: Hi! I'm the virtual assistant. What can I help you with today?",
    "Bot: Welcome to live chat. An agent will be with you shortly.",
    "System: Chat started from the help centre.",
)
PHONE_TEMPLATES = (
    'Call notes: customer rang from {phone}. In their words: "{body}"',
    "Inbound call, caller verified by date of birth. Summary of what they said: {body}",
    "Voicemail transcription ({phone}): {body}",
    "Phone call - customer says: {body} Call back on {phone}.",
)
WEB_TEMPLATES = (
    "Name: {name}\nEmail: {email}\nTopic: {topic}\nMessage:\n{body}",
    "Contact form submission\nFrom: {name} <{email}>\n\n{body}",
    "Full name: {name}\nPhone: {phone}\nHow can we help?\n{body}",
)
SOCIAL_TEMPLATES = ("@{handle} {body}", "DM from Instagram: {body}", "Facebook message: {body}", "{body} @{handle}")
# fmt: on


def dress(rng: random.Random, channel: str, body: str, person: Person, tenant: Tenant) -> str:
    if channel == "email":
        greeting = rng.choice(GREETINGS) if not body.lower().startswith(("hi", "hello")) else ""
        signature = f"{rng.choice(CLOSINGS)},\n{person.name}"
        if person.company:
            signature += f"\n{person.company}"
        if rng.random() < 0.4:
            signature += f"\n{person.phone}"
        parts = [greeting, body, signature]
        if rng.random() < 0.35:
            parts.append(rng.choice(FOOTERS))
        if rng.random() < 0.2:
            return "".join(f"<p>{part.replace(chr(10), '<br>')}</p>" for part in parts if part)
        return "\n\n".join(part for part in parts if part)
    if channel == "web":
        return rng.choice(WEB_TEMPLATES).format(
            name=person.name, email=person.email, phone=person.phone, topic="Support", body=body
        )
    if channel == "phone":
        return rng.choice(PHONE_TEMPLATES).format(phone=person.phone, body=body)
    if channel == "social":
        return rng.choice(SOCIAL_TEMPLATES).format(handle=tenant.handle, body=body)
    opener = rng.choice(CHAT_OPENERS)
    return f"{opener}\nCustomer: {body}\nAgent: Thanks, let me take a look at that for you."


# ---------------------------------------------------------------------------------------------
# Layout: three working days of traffic
# ---------------------------------------------------------------------------------------------


@dataclass
class Planned:
    """One ticket to write: when it opens, who writes it and what it says."""

    at: datetime
    tenant: Tenant
    person: Person
    subject: str
    body: str
    truth: Truth
    product: str
    priority: str
    tags: tuple[str, ...]
    channel: str
    case: str
    follow_ups: tuple[FollowUp, ...] = ()
    ticket_id: str = ""


def _slug(text: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return "-".join(words[:6])


def _single_time(rng: random.Random) -> datetime:
    day = rng.randrange(DAYS)
    if rng.random() < 0.1:  # the odd evening or early-morning ticket
        minute = rng.choice((rng.randrange(0, 7 * 60), rng.randrange(20 * 60, 24 * 60)))
    else:
        minute = rng.randrange(7 * 60 + 30, 19 * 60 + 30)
    return START + timedelta(days=day, minutes=minute, seconds=rng.randrange(60))


def plan(rng: random.Random) -> list[Planned]:
    people = People(rng)
    planned: list[Planned] = []
    for case in SINGLES:
        tenant = TENANTS[case.industry]
        person = people.new(tenant, case.segment)
        values: dict[str, str] = {}
        product_index = case.product if case.product is not None else rng.randrange(3)
        channel = case.channel or _weighted(rng, CHANNEL_WEIGHTS)
        subject = _fill(case.subject, rng, person, values)
        body = _fill(case.body, rng, person, values)
        planned.append(
            Planned(
                at=_single_time(rng),
                tenant=tenant,
                person=person,
                subject=subject,
                body=dress(rng, channel, body, person, tenant),
                truth=case.truth,
                product=tenant.products[product_index],
                priority=case.priority,
                tags=case.tags,
                channel=channel,
                case=f"{case.industry}:{_slug(case.subject)}",
                follow_ups=tuple(
                    FollowUp(
                        f.after_minutes,
                        f.truth,
                        _fill(f.comment, rng, person, values) if f.comment else None,
                        f.author,
                        f.flag_level,
                        f.flag_category,
                        f.flag_note,
                        f.affected,
                    )
                    for f in case.follow_ups
                ),
            )
        )
    for incident in INCIDENTS:
        tenant = TENANTS[incident.industry]
        hour, minute = map(int, incident.start.split(":"))
        first = START + timedelta(days=incident.day, hours=hour, minutes=minute)
        count = len(incident.reports)
        offsets = sorted(rng.randrange(60, incident.span_minutes * 60) for _ in range(count - 2))
        offsets = [0, *offsets, incident.span_minutes * 60]
        shared = people.new(tenant, None) if incident.same_customer else None
        for position, (subject, body) in enumerate(incident.reports):
            person = shared or people.new(tenant, None)
            values = {}
            channel = _weighted(rng, CHANNEL_WEIGHTS)
            result = incident.truth
            if position in incident.extra:
                result = result.adding(incident.extra[position])
            planned.append(
                Planned(
                    at=first + timedelta(seconds=offsets[position] + rng.randrange(60)),
                    tenant=tenant,
                    person=person,
                    subject=_fill(subject, rng, person, values),
                    body=dress(rng, channel, _fill(body, rng, person, values), person, tenant),
                    truth=result,
                    product=tenant.products[incident.product],
                    priority=rng.choice((incident.priority, "normal", incident.priority)),
                    tags=(),
                    channel=channel,
                    case=f"incident:{incident.key}:{position + 1}",
                )
            )
    planned.sort(key=lambda item: item.at)
    numbers = {industry: tenant.first_number for industry, tenant in TENANTS.items()}
    for item in planned:
        numbers[item.tenant.industry] += rng.randrange(1, 5)
        item.ticket_id = f"{item.tenant.prefix}{numbers[item.tenant.industry]}"
    return planned


# ---------------------------------------------------------------------------------------------
# Events and labels
# ---------------------------------------------------------------------------------------------


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _label(event_id: str, item: Planned, result: Truth) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "ticket_id": item.ticket_id,
        "case": item.case,
        "industry": item.tenant.industry,
        "indicators": sorted(result.indicators),
        "level": result.level,
        "category": result.category,
    }


def build(seed: int = SEED) -> list[tuple[TicketEvent, dict[str, Any]]]:
    """Every event of the set with its label, in event-time order."""
    rng = random.Random(seed)
    rows: list[tuple[datetime, int, TicketEvent, dict[str, Any]]] = []
    for item in plan(rng):
        data: dict[str, Any] = {
            "ticket_id": item.ticket_id,
            "subject": item.subject,
            "description": item.body,
            "channel": item.channel,
            "customer": {"id": item.person.customer_id, "segment": item.person.segment},
            "product": item.product,
            "priority": item.priority,
            "tags": list(item.tags),
        }
        created = _envelope(rng, item, "created", item.at, data)
        rows.append((item.at, len(rows), created, _label(created.id, item, item.truth)))
        agent = f"agent-{rng.randrange(1, 40):02d}"
        for follow_up in item.follow_ups:
            at = item.at + timedelta(minutes=follow_up.after_minutes, seconds=rng.randrange(60))
            data = {**data, "agent_id": agent, "comment": None}
            if follow_up.flag_level is not None:
                data["risk_flag"] = {
                    "level": follow_up.flag_level,
                    "category": follow_up.flag_category,
                    "description": follow_up.flag_note,
                    "affected_customers": follow_up.affected,
                }
                event = _envelope(rng, item, "updated", at, data)
            else:
                data["comment"] = {"author_type": follow_up.author, "body": follow_up.comment}
                event = _envelope(rng, item, "commented", at, data)
            rows.append((at, len(rows), event, _label(event.id, item, follow_up.truth)))
    rows.sort(key=lambda row: (row[0], row[1]))
    return [(event, label) for _, _, event, label in rows]


def _envelope(
    rng: random.Random, item: Planned, kind: str, at: datetime, data: dict[str, Any]
) -> TicketEvent:
    return TicketEvent.model_validate(
        {
            "id": _event_id(rng),
            "source": item.tenant.source,
            "type": f"riskrelay.ticket.{kind}.v1",
            "time": at,
            "subject": item.ticket_id,
            "data": data,
        }
    )


def render(rows: Sequence[tuple[TicketEvent, dict[str, Any]]]) -> tuple[bytes, bytes]:
    tickets = b"".join(event.to_json_bytes() + b"\n" for event, _ in rows)
    labels = "".join(json.dumps(label, ensure_ascii=False) + "\n" for _, label in rows)
    return tickets, labels.encode("utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="Directory to write into.")
    parser.add_argument(
        "--check", action="store_true", help="Exit 1 when the files differ from a fresh build."
    )
    args = parser.parse_args(argv)
    tickets, labels = render(build())
    targets = {args.out / "tickets.jsonl": tickets, args.out / "labels.jsonl": labels}
    if args.check:
        stale = [
            str(p) for p, content in targets.items() if not p.is_file() or p.read_bytes() != content
        ]
        if stale:
            print("stale (run eval/build_dataset.py): " + ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    for path, content in targets.items():
        path.write_bytes(content)
    ticket_count = len({json.loads(line)["ticket_id"] for line in labels.decode().splitlines()})
    event_count = len(tickets.splitlines())
    print(f"wrote {event_count} events of {ticket_count} tickets to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
