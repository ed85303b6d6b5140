"""The largest money amount a ticket mentions: a cheap, explainable impact signal.

Only numbers tied to a currency (symbol, ISO code or word, before or after) count, so order
numbers and dates do not. Both thousands conventions are understood: ``25,000.50`` and
``25.000,50``; a single separator followed by exactly three digits is a thousands separator
(``25.000 EUR`` is twenty-five thousand), otherwise a decimal point (``£1.2m``). Scale words
and suffixes (k, m, bn, thousand, million, billion, Mio, Mrd) multiply. Currencies are not
converted: the figure is an order of magnitude for the severe-impact rule, not accounting.
"""

from __future__ import annotations

import re

_NUMBER = r"\d{1,3}(?:[,. ']\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d+)?"
_SCALE = (
    r"(?:\s?(?P<scale{n}>k|m|mm|mn|bn|b|thousand|million|mil|billion|mio\.?|mrd\.?|tsd\.?)"
    r"(?![a-z]))?"
)
_SYMBOL = r"[$€£¥₹]|US\$|CA\$|A\$|C\$|R\$"
_CODE = r"USD|EUR|GBP|CHF|JPY|CAD|AUD|NZD|INR|SEK|NOK|DKK|PLN|CZK|HUF|BRL|MXN|ZAR|SGD|HKD"
_WORD = r"dollars?|euros?|pounds?(?: sterling)?|francs?|bucks|quid"

_AMOUNT = re.compile(
    rf"(?:(?<![\w$€£¥₹])(?:{_SYMBOL}|(?:{_CODE})\b)\s?(?P<before>{_NUMBER}){_SCALE.format(n=1)})"
    rf"|(?:(?<![\w.,])(?P<after>{_NUMBER}){_SCALE.format(n=2)}\s?(?:{_SYMBOL}|\b(?:{_CODE}|{_WORD})\b))",
    re.IGNORECASE,
)

_DIGIT = re.compile(r"\d")
# Cheap gate before the full amount regex, which is slow on long text: no currency, no amount.
_CURRENCY_HINT = re.compile(rf"[$€£¥₹]|\b(?:{_CODE}|{_WORD})\b", re.IGNORECASE)

_MULTIPLIERS = {
    "k": 1e3,
    "thousand": 1e3,
    "tsd": 1e3,
    "m": 1e6,
    "mm": 1e6,
    "mn": 1e6,
    "mil": 1e6,
    "million": 1e6,
    "mio": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
    "mrd": 1e9,
}


def parse_number(text: str, *, scaled: bool = False) -> float:
    """Parse ``25,000`` / ``25.000`` / ``1.2`` / ``25.000,50`` / ``1 234 567`` to a float."""
    compact = text.replace(" ", "").replace("'", "")
    if "," in compact and "." in compact:
        decimal = "," if compact.rfind(",") > compact.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        return float(compact.replace(thousands, "").replace(decimal, "."))
    for separator in (",", "."):
        if separator in compact:
            parts = compact.split(separator)
            is_thousands = len(parts) > 2 or (len(parts[1]) == 3 and not scaled)
            if is_thousands:
                return float("".join(parts))
            return float(".".join(parts))
    return float(compact)


def largest_amount(text: str) -> float | None:
    """The largest currency amount in ``text``, or ``None`` when there is none."""
    if _DIGIT.search(text) is None or _CURRENCY_HINT.search(text) is None:
        return None
    largest: float | None = None
    for match in _AMOUNT.finditer(text):
        number = match.group("before") or match.group("after")
        scale = (match.group("scale1") or match.group("scale2") or "").lower().rstrip(".")
        try:
            value = parse_number(number, scaled=bool(scale)) * _MULTIPLIERS.get(scale, 1.0)
        except ValueError:
            continue
        if largest is None or value > largest:
            largest = value
    return largest
