"""Record validation generated from the definitions: one marshmallow schema per object, built at load.

`RecordValidator.load` turns input values (JSON-ish: numbers, dates and booleans may come as text,
ids as text or numbers) into record form (see `storage/convert.py`) and raises `ValidationFailed`
listing every field error at once; `rule_errors` evaluates the object's validation rules on a full
record. Each field type's marshmallow field comes from a registry (`register_validator`) that the
built-in types use too, so an industry template adds a type the same way.

Conventions: surrounding whitespace is stripped from every text input except passwords, and empty
text means no value (None) for every type; a datetime without a time zone is taken as UTC.
The hot path runs each bound field's conversion and validators directly (`converter`): `Schema.load`
and even `Field.deserialize` cost several times more per row.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from objectplatform.metadata import FIELD_TYPES, SYSTEM_FIELDS, FieldDef, Metadata, ObjectDef
from objectplatform.metadata.expressions import parse

from .errors import ValidationFailed
from .passwords import hash_password

FieldFactory = Callable[[FieldDef, Metadata], fields.Field]
FIELD_VALIDATORS: dict[str, FieldFactory] = {}

REQUIRED = "is required"
READ_ONLY = "is read-only"
COMPUTED = "is computed and cannot be set"
SYSTEM = "is set by the system"
UNSTRIPPED_TYPES = frozenset({"password"})
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_ID = 2**63 - 1


def register_validator(*type_names: str) -> Callable[[FieldFactory], FieldFactory]:
    """Register the function that makes the marshmallow field validating a field type."""

    def decorate(factory: FieldFactory) -> FieldFactory:
        for name in type_names:
            FIELD_VALIDATORS[name] = factory
        return factory

    return decorate


# ------------------------------------------------------------------------------------ helpers


def _plain(bound: float) -> int | Decimal:
    """A bound from the metadata as written: 100 rather than 100.0."""
    number = Decimal(str(bound))
    return int(number) if number == number.to_integral_value() else number


def _bounds(low: float | None, high: float | None) -> list[validate.Validator]:
    """A range check with a message saying which bounds exist."""
    if low is None and high is None:
        return []
    if low is not None and high is not None:
        error = "must be between {min} and {max}"
    else:
        error = "must be at least {min}" if low is not None else "must be at most {max}"
    return [validate.Range(None if low is None else _plain(low), None if high is None else _plain(high), error=error)]


def _items(value: Any) -> list[Any] | None:
    """A list input, or a comma-separated text as its stripped items (None when it is neither)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        return [item.strip() if isinstance(item, str) else item for item in value]
    return None


def _record_id(value: Any) -> str | None:
    """A positive integer id (text or number) as text, or None when it is not one."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return str(value)
    return None


def _coordinate(value: Any) -> float | None:
    """A finite number (or its text) as a float, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number - number == 0 else None  # rejects nan and inf


# ----------------------------------------------------------------------------- field classes


class WholeNumber(fields.Field):
    """An integer: ints, integral floats and decimals, and digit texts such as "-12"."""

    default_error_messages = {"invalid": "must be a whole number", "too_large": "must have at most 18 digits"}
    TEXT = re.compile(r"[+-]?[0-9]+")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and self.TEXT.fullmatch(value):
            number = int(value)
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
            number = int(value)
        else:
            raise self.make_error("invalid")
        if abs(number) >= 10**18:
            raise self.make_error("too_large")
        return number


class DecimalNumber(fields.Decimal):
    """A decimal rounded half up to the field's scale."""

    default_error_messages = {
        "invalid": "must be a number",
        "special": "must be a number",
        "too_large": "must be a number",
    }


def _integer_digits(limit: int) -> Callable[[Decimal], None]:
    """A check that a decimal has at most `limit` digits before the point."""

    def check(value: Decimal) -> None:
        if value and value.adjusted() >= limit:
            raise ValidationError(f"must have at most {limit} digits before the decimal point")

    return check


class Flag(fields.Field):
    """A boolean: true/false, 1/0, and the texts true/false, 1/0, yes/no in any case."""

    default_error_messages = {"invalid": "must be true or false"}
    WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and (flag := self.WORDS.get(value.lower())) is not None:
            return flag
        raise self.make_error("invalid")


class Day(fields.Field):
    """A date: a date object or "YYYY-MM-DD"."""

    default_error_messages = {"invalid": "not a valid date (use YYYY-MM-DD)"}
    TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str) and self.TEXT.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.make_error("invalid")


class Moment(fields.Field):
    """A datetime in ISO 8601 (or a datetime object) as an aware UTC datetime; naive ones are UTC."""

    default_error_messages = {"invalid": "not a valid date and time (use ISO 8601, e.g. 2024-05-01T09:30:00+08:00)"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                pass
        if not isinstance(value, datetime):
            raise self.make_error("invalid")
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            raise self.make_error("invalid") from None


class Choice(fields.Field):
    """One of the active option values of a picklist."""

    default_error_messages = {"invalid": "'{input}' is not one of: {allowed}"}

    def __init__(self, values: tuple[str, ...], **kwargs: Any):
        super().__init__(**kwargs)
        self.values, self.allowed = frozenset(values), ", ".join(values) or "(no active options)"

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str) and value in self.values:
            return value
        raise self.make_error("invalid", input=value, allowed=self.allowed)


class Choices(Choice):
    """A list of active option values (or a comma-separated text of them), without repeats."""

    default_error_messages = {"type": "must be a list of values"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        items = _items(value)
        if items is None:
            raise self.make_error("type")
        wrong = [item for item in items if not (isinstance(item, str) and item in self.values)]
        if wrong:
            template = self.error_messages["invalid"]
            raise ValidationError([template.format(input=item, allowed=self.allowed) for item in wrong])
        return list(dict.fromkeys(items))


class RecordId(fields.Field):
    """The id of a record (existence is the records service's to check), as text."""

    default_error_messages = {"invalid": "must be a record id (a positive whole number)"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if (record_id := _record_id(value)) is None:
            raise self.make_error("invalid")
        return record_id


class RecordIds(fields.Field):
    """A list of record ids (or a comma-separated text of them), as texts without repeats."""

    default_error_messages = {"type": "must be a list of record ids", "invalid": "'{input}' is not a record id"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        items = _items(value)
        if items is None:
            raise self.make_error("type")
        ids = [_record_id(item) for item in items]
        if None in ids:
            template = self.error_messages["invalid"]
            wrong = [item for item, record_id in zip(items, ids, strict=True) if record_id is None]
            raise ValidationError([template.format(input=item) for item in wrong])
        return list(dict.fromkeys(ids))


class Location(fields.Field):
    """A geolocation: {"lat", "lng"} or "lat,lng", within the valid ranges, as floats."""

    default_error_messages = {
        "invalid": 'must be {{"lat": ..., "lng": ...}} or "lat,lng"',
        "lat": "latitude must be between -90 and 90",
        "lng": "longitude must be between -180 and 180",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, float]:
        if isinstance(value, str) and value.count(",") == 1:
            lat, lng = (_coordinate(part.strip()) for part in value.split(","))
        elif isinstance(value, Mapping) and set(value) == {"lat", "lng"}:
            lat, lng = _coordinate(value["lat"]), _coordinate(value["lng"])
        else:
            lat = lng = None
        if lat is None or lng is None:
            raise self.make_error("invalid")
        problems = [
            self.error_messages[key]
            for key, number, limit in (("lat", lat, 90), ("lng", lng, 180))
            if abs(number) > limit
        ]
        if problems:
            raise ValidationError(problems)
        return {"lat": lat, "lng": lng}


class File(fields.Field):
    """An attachment: a stored file {name, path, size, content_type}, or an upload for the service to save.

    An upload is {filename, content_base64, content_type?}; it is returned as given once its content
    is known to be base64 of at most 20 MB.
    """

    default_error_messages = {
        "invalid": "must be a stored file {{name, path, size, content_type}} "
        "or an upload {{filename, content_base64, content_type}}",
        "path": "path must be a relative path inside the file store",
        "base64": "content_base64 is not valid base64",
        "too_large": "must be at most 20 MB",
    }
    STORED = frozenset({"name", "path", "size", "content_type"})
    UPLOAD = frozenset({"filename", "content_base64"})

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        keys = set(value) if isinstance(value, Mapping) else set()
        if keys == self.STORED and self._stored_shape(value):
            return self._stored(value)
        if keys in (self.UPLOAD, self.UPLOAD | {"content_type"}) and self._upload_shape(value):
            return self._upload(value)
        raise self.make_error("invalid")

    @staticmethod
    def _stored_shape(value: Mapping[str, Any]) -> bool:
        size = value["size"]
        texts = (value["name"], value["path"], value["content_type"])
        return (
            all(isinstance(t, str) and t for t in texts)
            and isinstance(size, int)
            and not isinstance(size, bool)
            and size >= 0
        )

    @staticmethod
    def _upload_shape(value: Mapping[str, Any]) -> bool:
        texts = (value["filename"], value.get("content_type", "-"))
        return all(isinstance(t, str) and t for t in texts) and isinstance(value["content_base64"], str)

    def _stored(self, value: Mapping[str, Any]) -> dict[str, Any]:
        path = value["path"]
        if path.startswith(("/", "\\")) or ":" in path or ".." in re.split(r"[/\\]", path):
            raise self.make_error("path")
        return {key: value[key] for key in ("name", "path", "size", "content_type")}

    def _upload(self, value: Mapping[str, Any]) -> dict[str, Any]:
        content = value["content_base64"]
        if len(content) > (MAX_UPLOAD_BYTES + 2) // 3 * 4:
            raise self.make_error("too_large")
        try:
            decoded = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):  # ValueError: text that is not ASCII
            raise self.make_error("base64") from None
        if len(decoded) > MAX_UPLOAD_BYTES:
            raise self.make_error("too_large")
        return dict(value)


# --------------------------------------------------------------------------- built-in types


def _no_nul(value: str) -> None:
    """NUL cannot be stored (PostgreSQL refuses it in text) and never belongs in a field."""
    if "\x00" in value:
        raise ValidationError("must not contain NUL characters")


def _text(validate: Any = (), **kwargs: Any) -> fields.String:
    checks = list(validate) if isinstance(validate, list | tuple) else [validate]
    return fields.String(error_messages={"invalid": "must be text"}, validate=[_no_nul, *checks], **kwargs)


def _at_most(length: int | None) -> list[validate.Validator]:
    return [] if length is None else [validate.Length(max=length, error="must be at most {max} characters")]


@register_validator("text", "long_text")
def _text_field(f: FieldDef, md: Metadata) -> fields.Field:
    return _text(validate=_at_most(f.max_length or (255 if f.type == "text" else None)))


@register_validator("email")
def _email_field(f: FieldDef, md: Metadata) -> fields.Field:
    return _text(validate=[*_at_most(254), validate.Email(error="not a valid email address")])


@register_validator("url")
def _url_field(f: FieldDef, md: Metadata) -> fields.Field:
    check = validate.URL(
        schemes={"http", "https"}, require_tld=False, error="not a valid URL (use http:// or https://)"
    )
    return _text(validate=[*_at_most(2048), check])


PHONE = re.compile(r"[0-9+\-() ]+")


def _phone_number(value: str) -> None:
    """Digits, spaces, +, - and parentheses with 5 to 20 digits (an 11-digit Chinese mobile fits)."""
    if not (PHONE.fullmatch(value) and 5 <= sum(map(str.isdigit, value)) <= 20 and len(value) <= 40):
        raise ValidationError("not a valid phone number")


@register_validator("phone")
def _phone_field(f: FieldDef, md: Metadata) -> fields.Field:
    return _text(validate=_phone_number)


@register_validator("password")
def _password_field(f: FieldDef, md: Metadata) -> fields.Field:
    """At least 8 characters, returned hashed: the plain text never reaches a record."""
    length = validate.Length(min=8, max=1024, error="must be between {min} and {max} characters")
    return _text(validate=length, post_load=hash_password)


@register_validator("integer")
def _integer_field(f: FieldDef, md: Metadata) -> fields.Field:
    return WholeNumber(validate=_bounds(f.min, f.max))


@register_validator("number", "currency", "percent")
def _number_field(f: FieldDef, md: Metadata) -> fields.Field:
    scale = 2 if f.scale is None else f.scale
    low, high = f.min, f.max
    if f.type == "percent" and low is None and high is None:
        low, high = 0, 100
    checks = [_integer_digits((f.precision or 18) - scale), *_bounds(low, high)]
    return DecimalNumber(places=scale, rounding=ROUND_HALF_UP, validate=checks)


@register_validator("boolean")
def _boolean_field(f: FieldDef, md: Metadata) -> fields.Field:
    return Flag()


@register_validator("date")
def _date_field(f: FieldDef, md: Metadata) -> fields.Field:
    return Day()


@register_validator("datetime")
def _datetime_field(f: FieldDef, md: Metadata) -> fields.Field:
    return Moment()


@register_validator("picklist", "multi_picklist")
def _picklist_field(f: FieldDef, md: Metadata) -> fields.Field:
    values = tuple(o.value for o in f.options if o.active)
    return Choices(values) if f.type == "multi_picklist" else Choice(values)


@register_validator("lookup", "master_detail", "user", "department")
def _reference_field(f: FieldDef, md: Metadata) -> fields.Field:
    return RecordId()


@register_validator("multi_user", "multi_department")
def _references_field(f: FieldDef, md: Metadata) -> fields.Field:
    return RecordIds()


@register_validator("geolocation")
def _geolocation_field(f: FieldDef, md: Metadata) -> fields.Field:
    return Location()


@register_validator("attachment")
def _attachment_field(f: FieldDef, md: Metadata) -> fields.Field:
    return File()


# ---------------------------------------------------------------------------------- validator


def converter(field: fields.Field) -> Callable[[Any], Any]:
    """`field.deserialize` for a present, non-empty value, without its per-call set-up (about 4x cheaper).

    Runs the field's pre_load functions, its conversion, every validator (collecting all their
    messages, as marshmallow does) and its post_load functions.
    """
    convert, checks = field._deserialize, tuple(field.validators)
    before, after = tuple(field.pre_load), tuple(field.post_load)

    def run(value: Any) -> Any:
        for step in before:
            value = step(value)
        value = convert(value, None, None)
        messages: list[str] = []
        for check in checks:
            try:
                if check(value) is False:
                    messages.append("is not valid")
            except ValidationError as e:
                messages.extend(e.messages)
        if messages:
            raise ValidationError(messages)
        for step in after:
            value = step(value)
        return value

    return run


class RecordValidator:
    """Validation of one object's records: a schema of the fields a caller may set, plus the rules."""

    def __init__(self, metadata: Metadata, obj: ObjectDef):
        self.object = obj
        declared: dict[str, fields.Field] = {"owner": RecordId()}
        self._refusals = {name: SYSTEM for name in SYSTEM_FIELDS if name != "owner"}
        for f in obj.fields.values():
            if FIELD_TYPES[f.type].computed:
                self._refusals[f.name] = COMPUTED
            elif f.type not in FIELD_VALIDATORS:
                raise LookupError(f"{obj.name}.{f.name}: no validator is registered for field type {f.type!r}")
            else:
                declared[f.name] = FIELD_VALIDATORS[f.type](f, metadata)
        self.schema: Schema = Schema.from_dict(declared, name=f"{obj.name}_record")()
        self.fields: Mapping[str, fields.Field] = self.schema.load_fields
        self._converters = {name: converter(field) for name, field in self.fields.items()}
        writable = [f for f in obj.fields.values() if f.name in self.fields]
        self._read_only = frozenset(f.name for f in writable if f.read_only or f.system)
        self._unstripped = frozenset(f.name for f in writable if f.type in UNSTRIPPED_TYPES)
        self._required_system = tuple(f.name for f in writable if f.required)
        self._required_user = tuple(name for name in self._required_system if name not in self._read_only)
        self._defaults = {f.name: self._default(f) for f in writable if f.default is not None}
        self._rules = tuple((rule, parse(rule.condition)) for rule in obj.validation_rules)

    def _default(self, f: FieldDef) -> Any:
        """The field's default in record form; a default its own field refuses is a definition error."""
        try:
            return self._converters[f.name](f.default)
        except ValidationError as e:
            raise ValueError(f"{self.object.name}.{f.name}: default {f.default!r}: {'; '.join(e.messages)}") from None

    def _refusal(self, name: str) -> str:
        """Why `name` may not be set: a system, computed or read-only field, or no field at all."""
        if name in self._refusals:
            return self._refusals[name]
        if name in self._read_only:
            return READ_ONLY
        close = difflib.get_close_matches(name, list(self.fields), n=1)
        return f"unknown field (did you mean '{close[0]}'?)" if close else "unknown field"

    def load(self, data: Mapping[str, Any], *, partial: bool = False, system: bool = False) -> dict[str, Any]:
        """Input values -> record-form values of the given fields (and, unless partial, defaults).

        Raises ValidationFailed naming every field in error; `system` lets read-only fields be set.
        """
        if not isinstance(data, Mapping):
            raise ValidationFailed({"__all__": ["must be an object of field values"]})
        converters, values, errors = self._converters, {}, {}
        required = self._required_system if system else self._required_user
        for name, value in data.items():
            convert = converters.get(name)
            if convert is None or not system and name in self._read_only:
                errors[name] = [self._refusal(name)]
                continue
            if value.__class__ is str and name not in self._unstripped:
                value = value.strip()
            if value is None or value == "":
                if name in required:
                    errors[name] = [REQUIRED]
                else:
                    values[name] = None
                continue
            try:
                value = convert(value)
            except ValidationError as e:
                errors[name] = e.messages
                continue
            if value == [] and name in required:
                errors[name] = [REQUIRED]
            else:
                values[name] = value
        if not partial:
            for name, default in self._defaults.items():
                if name not in data:
                    values[name] = default.copy() if isinstance(default, list | dict) else default
            for name in required:
                if name not in data and name not in self._defaults:
                    errors[name] = [REQUIRED]
        if errors:
            raise ValidationFailed(errors)
        return values

    def changed(self, data: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
        """The names in `data` whose value, converted, differs from `current`'s (a value that does not
        convert, or names no field, counts as a change): a value sent back as it is stored is no change."""
        found = []
        for name, value in data.items():
            convert = self._converters.get(name)
            if convert is None:
                found.append(name)
                continue
            if value.__class__ is str and name not in self._unstripped:
                value = value.strip()
            try:
                value = None if value is None or value == "" else convert(value)
            except ValidationError:
                found.append(name)
                continue
            stored = current.get(name)
            if value != stored and not (value in (None, []) and stored in (None, [])):
                found.append(name)
        return found

    def rule_errors(self, record: Mapping[str, Any], now: datetime | None = None) -> dict[str, list[str]]:
        """The messages of the validation rules whose condition holds for the full record, by field.

        `now` (for today(), now() and days_since()) defaults to the current time; a naive one is UTC.
        """
        now = now or datetime.now(UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        errors: dict[str, list[str]] = {}
        for rule, condition in self._rules:
            if condition.evaluate(record, now):
                errors.setdefault(rule.field or "__all__", []).append(rule.message.get("en"))
        return errors


def build_validators(metadata: Metadata) -> dict[str, RecordValidator]:
    """A validator for every object, built once when the platform opens."""
    return {name: RecordValidator(metadata, obj) for name, obj in metadata.objects.items()}
