"""Template shortcodes (P1, M1): ``[[code]]`` placeholders filled per recipient.

Syntax: a code between double square brackets, e.g. ``Dear [[contact.first_name]],``;
spaces inside the brackets are ignored. Anything else between ``[[`` and ``]]`` is an unknown
shortcode and the template is refused when saved (:func:`unknown_shortcodes`). Values are
substituted as text, never as markup: in rich text (the message) each value is
HTML-escaped, in plain text (subject, client tasks) it is inserted as it is. A value the
recipient lacks renders as the code's documented fallback, never as the raw code.

Several addressed contacts: ``contact.first_name`` and ``contact.full_name`` list every
addressed contact in the order addressed, joined with ", " (e.g. "Ann, Ben").
Dates are the sending day in UTC, English month names.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Final

__all__ = [
    "MAX_SHORTCODE_CHARS",
    "SHORTCODES",
    "Recipient",
    "Shortcode",
    "render_html",
    "render_text",
    "unknown_shortcodes",
]

MAX_SHORTCODE_CHARS: Final = 80
"""Longest text between the brackets looked at (an unknown code is named up to this)."""

_PATTERN: Final = re.compile(rf"\[\[([^\[\]]{{0,{MAX_SHORTCODE_CHARS}}}?)\]\]")
_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


@dataclass(frozen=True)
class Recipient:
    """What one recipient's shortcodes are filled from (``None`` / empty = unknown)."""

    account_name: str | None
    contact_names: tuple[str, ...]
    firm_name: str | None
    sender_name: str | None
    today: date


@dataclass(frozen=True)
class Shortcode:
    code: str
    description: str
    fallback: str
    value: Callable[[Recipient], str | None]


def _first_names(recipient: Recipient) -> str | None:
    names = [name.split()[0] for name in recipient.contact_names if name.split()]
    return ", ".join(names) or None


def _full_names(recipient: Recipient) -> str | None:
    names = [" ".join(name.split()) for name in recipient.contact_names if name.split()]
    return ", ".join(names) or None


SHORTCODES: Final[tuple[Shortcode, ...]] = (
    Shortcode("account.name", "The client account's name.", "Client", lambda r: r.account_name),
    Shortcode(
        "contact.first_name",
        'First name of the addressed contact; several: comma-joined ("Ann, Ben").',
        "Client",
        _first_names,
    ),
    Shortcode(
        "contact.full_name",
        'Full name of the addressed contact; several: comma-joined ("Ann Lee, Ben Lee").',
        "Client",
        _full_names,
    ),
    Shortcode("firm.name", "Your firm's name.", "our firm", lambda r: r.firm_name),
    Shortcode(
        "sender.name", "Name of the staff member sending.", "our team", lambda r: r.sender_name
    ),
    Shortcode(
        "date.today",
        'The sending date (UTC), e.g. "December 2, 2026".',
        "",
        lambda r: f"{_MONTHS[r.today.month - 1]} {r.today.day}, {r.today.year}",
    ),
    Shortcode("date.year", 'The current year, e.g. "2026".', "", lambda r: str(r.today.year)),
    Shortcode("date.last_year", 'Last year, e.g. "2025".', "", lambda r: str(r.today.year - 1)),
    Shortcode(
        "date.month",
        'The current month, e.g. "December".',
        "",
        lambda r: _MONTHS[r.today.month - 1],
    ),
)
_BY_CODE: Final = {shortcode.code: shortcode for shortcode in SHORTCODES}


def _code_of(match: re.Match[str]) -> str:
    return match.group(1).strip()


def unknown_shortcodes(texts: Iterable[str]) -> list[str]:
    """The distinct unknown codes used in ``texts``, in order of first use."""
    unknown: dict[str, None] = {}
    for text in texts:
        for match in _PATTERN.finditer(text):
            if _code_of(match) not in _BY_CODE:
                unknown[_code_of(match)] = None
    return list(unknown)


def _values(recipient: Recipient) -> dict[str, str]:
    values = {}
    for shortcode in SHORTCODES:
        value = shortcode.value(recipient)
        values[shortcode.code] = value if value else shortcode.fallback
    return values


def _substitute(text: str, values: dict[str, str], escape: Callable[[str], str]) -> str:
    def replace(match: re.Match[str]) -> str:
        code = _code_of(match)
        if code not in values:  # refused at save; a stray one still never shows raw
            return ""
        return escape(values[code])

    return _PATTERN.sub(replace, text)


def render_text(text: str, recipient: Recipient) -> str:
    """Fill the shortcodes of a plain-text field (subject, client task): values as text."""
    return _substitute(text, _values(recipient), lambda value: value)


def render_html(sanitised_html: str, recipient: Recipient) -> str:
    """Fill the shortcodes of sanitised rich text: every value HTML-escaped (quotes too, so
    a code inside an attribute stays inside it). The caller sanitises the result again,
    as every message body is on its way in."""
    return _substitute(
        sanitised_html, _values(recipient), lambda value: html.escape(value, quote=True)
    )
