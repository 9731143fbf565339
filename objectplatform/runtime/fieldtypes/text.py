"""Text field types: text, long_text, email, phone, url, time_zone and the write-only password."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa
from marshmallow import ValidationError, fields, validate

from objectplatform.metadata import FieldDef, Metadata

from ..errors import Message
from ..passwords import hash_password
from .base import FieldType, no_nul

PHONE = re.compile(r"[0-9+\-() ]+")


def text_field(checks: list[Any] | tuple[Any, ...] = (), **kwargs: Any) -> fields.String:
    """A marshmallow text field refusing NUL, with the given validators."""
    return fields.String(error_messages={"invalid": Message("value.not_text", "must be text")},
                         validate=[no_nul, *checks], **kwargs)


def at_most(length: int | None) -> list[validate.Validator]:
    if length is None:
        return []
    return [validate.Length(max=length, error=Message("value.too_long", "must be at most {max} characters"))]


def phone_number(value: str) -> None:
    """Digits, spaces, +, - and parentheses with 5 to 20 digits (an 11-digit Chinese mobile fits)."""
    if not (PHONE.fullmatch(value) and 5 <= sum(map(str.isdigit, value)) <= 20 and len(value) <= 40):
        raise ValidationError(Message("value.not_a_phone", "not a valid phone number"))


class Text(FieldType):
    """One line of text, at most `max_length` characters (255 unless given)."""

    caseless = True

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.String(f.max_length or 255)

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return text_field(at_most(f.max_length or 255))


class LongText(FieldType):
    """Text of any length (up to `max_length` when given), shown as a text area."""

    widget = "textarea"

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.Text()

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return text_field(at_most(f.max_length))


class EmailAddress(validate.Email):
    """marshmallow's check of an address, its message made only when refusing one (it formats it for every value)."""

    def __call__(self, value: str) -> str:
        if value and "@" in value:
            user, domain = value.rsplit("@", 1)
            if self.USER_REGEX.match(user) and (domain in self.DOMAIN_WHITELIST or self.DOMAIN_REGEX.match(domain)):
                return value
        raise ValidationError(self._format_error(value))


class Email(FieldType):
    widget = "email"
    caseless = True

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.String(254)

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        email = EmailAddress(error=Message("value.not_an_email", "not a valid email address"))
        return text_field([*at_most(254), email])


class Phone(FieldType):
    widget = "tel"

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.String(40)

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return text_field([phone_number])


class Url(FieldType):
    widget = "url"
    caseless = True

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.String(2048)

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        check = validate.URL(
            schemes={"http", "https"}, require_tld=False,
            error=Message("value.not_a_url", "not a valid URL (use http:// or https://)")
        )
        return text_field([*at_most(2048), check])


@cache
def time_zones() -> tuple[str, ...]:
    """The IANA time zone names this system knows, sorted (the legacy aliases such as PRC left out)."""
    return tuple(sorted(n for n in available_timezones() if "/" in n and not n.startswith(("Etc/", "SystemV/")))
                 ) + ("UTC",)


def time_zone_name(value: str) -> None:
    """Refuse a value that is not a time zone name of `time_zones()`."""
    if value not in time_zones():
        raise ValidationError(Message("value.not_a_time_zone", "not a time zone (an IANA name, e.g. Asia/Shanghai)"))


class TimeZone(FieldType):
    """An IANA time zone name, chosen from a list showing each zone's current UTC offset."""

    widget = "select"

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.String(64)

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return text_field([time_zone_name])

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"enum": list(time_zones())}

    def choices(self, f: FieldDef, value: Any, lang: str) -> list[tuple[str, str]]:
        """Every zone as "(UTC+08:00) Asia/Shanghai", west to east, as the zones stand today."""
        now = datetime.now(UTC)
        offsets = {name: now.astimezone(ZoneInfo(name)).utcoffset() for name in time_zones()}
        ordered = sorted(offsets, key=lambda name: (offsets[name], name))
        return [(name, f"(UTC{_offset(offsets[name])}) {name}") for name in ordered]


def _offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    return f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class Password(FieldType):
    """Write-only: at least 8 characters, kept as they are typed and stored as a salted hash that never
    leaves the table (no filter, sort, export or API value)."""

    widget = "password"
    stripped = False
    readable = False

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.String(255)

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        length = validate.Length(min=8, max=1024, error=Message("value.length_between",
                                                                "must be between {min} and {max} characters"))
        return text_field([length], post_load=hash_password)

    def input_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"type": "string", "minLength": 8, "writeOnly": True}

    def display(self, f: FieldDef, value: Any) -> str | None:
        return ""


LENGTH = frozenset({"max_length"})
TEXT = Text("text", "text", LENGTH, defaults={"max_length": 255}, searchable=True, comparable=True)
LONG_TEXT = LongText("long_text", "text", LENGTH, searchable=True)
EMAIL = Email("email", "text", searchable=True, comparable=True)
PHONE_TYPE = Phone("phone", "text", searchable=True, comparable=True)
URL = Url("url", "text", searchable=True, comparable=True)
TIME_ZONE = TimeZone("time_zone", "text", comparable=True)
PASSWORD = Password("password", "text")
TYPES = (TEXT, LONG_TEXT, EMAIL, PHONE_TYPE, URL, TIME_ZONE, PASSWORD)
