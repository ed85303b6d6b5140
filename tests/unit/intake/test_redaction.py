"""Personal-data redaction: typed placeholders, kinds reported, and no raw identifier survives."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban
from stdnum import luhn

from riskrelay.intake.redaction import Redactor, redact
from riskrelay.shared.events import PersonalDataKind

pytestmark = pytest.mark.unit

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# --- examples --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        (
            "write to jane.doe+tickets@example.co.uk now",
            "write to [EMAIL] now",
            PersonalDataKind.EMAIL,
        ),
        ("call 415-555-2671 today", "call [PHONE] today", PersonalDataKind.PHONE),
        ("call +44 20 7946 0958 today", "call [PHONE] today", PersonalDataKind.PHONE),
        ("call (020) 7946 0958", "call [PHONE]", PersonalDataKind.PHONE),
        ("call +1 555 0100 1234 5", "call [PHONE]", PersonalDataKind.PHONE),
        ("card 4111 1111 1111 1111 declined", "card [CARD] declined", PersonalDataKind.CARD),
        ("card 4111-1111-1111-1111", "card [CARD]", PersonalDataKind.CARD),
        ("card 378282246310005.", "card [CARD].", PersonalDataKind.CARD),
        ("iban GB82 WEST 1234 5698 7654 32 ok", "iban [IBAN] ok", PersonalDataKind.IBAN),
        ("iban DE89370400440532013000.", "iban [IBAN].", PersonalDataKind.IBAN),
        ("from 192.168.10.1 again", "from [IP] again", PersonalDataKind.IP_ADDRESS),
        ("from 2001:db8::8a2e:370:7334 again", "from [IP] again", PersonalDataKind.IP_ADDRESS),
        ("from ::ffff:192.0.2.128", "from [IP]", PersonalDataKind.IP_ADDRESS),
        ("ssn 123-45-6789 here", "ssn [NATIONAL_ID] here", PersonalDataKind.NATIONAL_ID),
        ("NI AB 12 34 56 C here", "NI [NATIONAL_ID] here", PersonalDataKind.NATIONAL_ID),
        ("NI JG103759A", "NI [NATIONAL_ID]", PersonalDataKind.NATIONAL_ID),
        ("QQ123456C", "QQ123456C", None),  # HMRC never issues the QQ prefix
        ("Steuer-ID 86095742719", "Steuer-ID [NATIONAL_ID]", PersonalDataKind.NATIONAL_ID),
    ],
)
def test_each_kind_is_replaced_by_its_placeholder(
    text: str, expected: str, kind: PersonalDataKind | None
) -> None:
    result = redact(text)
    assert result.text == expected
    assert result.kinds == ({kind} if kind else set())


@pytest.mark.parametrize(
    "text",
    [
        "order 12345 shipped on 2025-03-01 at 10:30",
        "error 500 after version 2.1 update",
        "card 4111 1111 1111 1112 fails Luhn",  # not a valid card number
        "ssn-like 000-12-3456 is not issued",
        "time 10:30:00 and ratio 3:4",
        "not an ip 999.1.1.1",
        "I paid $25,000 and 25.000 EUR",
        "v1.2.3.4 is a version",
    ],
)
def test_non_personal_numbers_are_kept(text: str) -> None:
    result = redact(text)
    assert result.text == text
    assert result.kinds == frozenset()


def test_several_kinds_in_one_text_are_all_reported() -> None:
    result = redact("Me: a@b.io, +49 30 1234567, card 5555555555554444, ip 10.0.0.1")
    assert result.text == "Me: [EMAIL], [PHONE], card [CARD], ip [IP]"
    assert result.kinds == {
        PersonalDataKind.EMAIL,
        PersonalDataKind.PHONE,
        PersonalDataKind.CARD,
        PersonalDataKind.IP_ADDRESS,
    }


def test_card_inside_a_longer_digit_run_is_found() -> None:
    assert redact("ref 1234 4111 1111 1111 1111").text == "ref 1234 [CARD]"


def test_redacted_text_is_stable_under_a_second_pass() -> None:
    once = redact("a@b.io 4111111111111111 +44 20 7946 0958").text
    assert redact(once).text == once


def test_unknown_phone_region_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown phone regions"):
        Redactor(phone_regions=("XX",))


def test_national_format_depends_on_configured_regions() -> None:
    japanese = "03-3224-5000 please"
    assert "[PHONE]" not in Redactor(phone_regions=("US",)).redact(japanese).text
    assert Redactor(phone_regions=("JP",)).redact(japanese).text == "[PHONE] please"


# --- properties --------------------------------------------------------------------------------

SEPARATORS = st.sampled_from([" ", "\n", ", ", ": ", " (", ") ", "\t", " - "])
# Surrounding prose without digits: then not even the digits of a number may survive.
PROSE = st.text(
    alphabet=st.characters(
        categories=("Lu", "Ll", "Zs", "Po"), exclude_characters="@", max_codepoint=0x2FF
    ),
    max_size=40,
)
ANY_TEXT = st.text(max_size=40)


def embed(value: str, before: str, after: str, sep1: str, sep2: str) -> str:
    return f"{before}{sep1}{value}{sep2}{after}"


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@st.composite
def card_numbers(draw: st.DrawFn) -> tuple[str, str]:
    prefix = draw(st.sampled_from(["4", "51", "52", "55", "2221", "34", "37", "6011", "35"]))
    length = draw(st.sampled_from([15, 16]) if prefix in {"34", "37"} else st.sampled_from([16]))
    body = prefix + "".join(
        draw(
            st.lists(
                st.sampled_from("0123456789"),
                min_size=length - len(prefix) - 1,
                max_size=length - len(prefix) - 1,
            )
        )
    )
    number = body + luhn.calc_check_digit(body)
    style = draw(st.sampled_from(["plain", "space", "dash"]))
    if style == "plain":
        return number, number
    sep = " " if style == "space" else "-"
    return number, sep.join(number[i : i + 4] for i in range(0, len(number), 4))


_PHONE_TYPES = [
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
]
_PHONE_REGIONS = ["US", "GB", "DE", "FR", "JP", "BR", "IN", "AU", "ES", "IT", "NL", "CH"]
_DEFAULT_REGIONS = {"US", "GB", "DE", "FR"}


@st.composite
def phone_numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(_PHONE_REGIONS))
    example = phonenumbers.example_number_for_type(region, draw(st.sampled_from(_PHONE_TYPES)))
    assume(example is not None)
    assert example is not None
    national = str(example.national_number)
    tail = "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=3, max_size=3)))
    candidate = phonenumbers.PhoneNumber(
        country_code=example.country_code, national_number=int(national[:-3] + tail)
    )
    assume(phonenumbers.is_valid_number(candidate))
    formats = [phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164]
    if region in _DEFAULT_REGIONS:
        formats.append(phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(candidate, draw(st.sampled_from(formats)))


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country, length = draw(st.sampled_from([("DE", 18), ("NL", None), ("FR", 23)]))
    if country == "NL":
        bank = draw(st.sampled_from(["ABNA", "INGB", "RABO"]))
        bban = bank + "".join(
            draw(st.lists(st.sampled_from("0123456789"), min_size=10, max_size=10))
        )
    else:
        assert length is not None
        bban = "".join(
            draw(st.lists(st.sampled_from("0123456789"), min_size=length, max_size=length))
        )
    number = country + stdnum_iban.calc_check_digits(country + "00" + bban) + bban
    assume(stdnum_iban.is_valid(number))
    return stdnum_iban.format(number) if draw(st.booleans()) else number


@PROPERTY_SETTINGS
@given(st.emails(), PROSE, PROSE, SEPARATORS, SEPARATORS)
def test_no_email_survives(email: str, before: str, after: str, sep1: str, sep2: str) -> None:
    result = redact(embed(email, before, after, sep1, sep2))
    assert email not in result.text
    assert "@" not in result.text
    assert PersonalDataKind.EMAIL in result.kinds


@PROPERTY_SETTINGS
@given(st.emails(), ANY_TEXT, ANY_TEXT, SEPARATORS, SEPARATORS)
def test_no_email_survives_in_arbitrary_text(
    email: str, before: str, after: str, sep1: str, sep2: str
) -> None:
    assert email not in redact(embed(email, before, after, sep1, sep2)).text


@PROPERTY_SETTINGS
@given(card_numbers(), PROSE, PROSE, SEPARATORS, SEPARATORS)
def test_no_card_number_survives(
    card: tuple[str, str], before: str, after: str, sep1: str, sep2: str
) -> None:
    number, written = card
    result = redact(embed(written, before, after, sep1, sep2))
    assert written not in result.text
    assert number not in digits(result.text)
    # Prose ending in an identity-document cue ("DL number") makes the digits a licence number.
    assert result.kinds & {PersonalDataKind.CARD, PersonalDataKind.NATIONAL_ID}


@PROPERTY_SETTINGS
@given(card_numbers(), ANY_TEXT, ANY_TEXT, SEPARATORS, SEPARATORS)
def test_no_card_number_survives_in_arbitrary_text(
    card: tuple[str, str], before: str, after: str, sep1: str, sep2: str
) -> None:
    _, written = card
    assert written not in redact(embed(written, before, after, sep1, sep2)).text


@PROPERTY_SETTINGS
@given(phone_numbers(), PROSE, PROSE, SEPARATORS, SEPARATORS)
def test_no_phone_number_survives(
    phone: str, before: str, after: str, sep1: str, sep2: str
) -> None:
    result = redact(embed(phone, before, after, sep1, sep2))
    assert phone not in result.text
    assert digits(phone) not in digits(result.text)
    assert PersonalDataKind.PHONE in result.kinds


@PROPERTY_SETTINGS
@given(ibans(), PROSE, PROSE, SEPARATORS, SEPARATORS)
def test_no_iban_survives(iban: str, before: str, after: str, sep1: str, sep2: str) -> None:
    result = redact(embed(iban, before, after, sep1, sep2))
    assert iban not in result.text
    assert result.kinds == {PersonalDataKind.IBAN}


@PROPERTY_SETTINGS
@given(st.ip_addresses(), PROSE, PROSE, SEPARATORS, SEPARATORS)
def test_no_ip_address_survives(
    address: object, before: str, after: str, sep1: str, sep2: str
) -> None:
    written = str(address)
    result = redact(embed(written, before, after, sep1, sep2))
    assert written not in result.text
    assert PersonalDataKind.IP_ADDRESS in result.kinds
