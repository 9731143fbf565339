"""Record validation generated from the definitions: one marshmallow schema per object, built at load.

(How it works: docs/engine.md, "objectplatform/runtime/validation.py".)"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields

from objectplatform.metadata import SYSTEM_FIELDS, FieldDef, Metadata, ObjectDef
from objectplatform.metadata.expressions import parse

from .errors import Message, ValidationFailed
from .fieldtypes import type_named
from .fieldtypes.reference import RecordId
from .passwords import policy_errors

REQUIRED = Message("value.required", "is required")
READ_ONLY = Message("value.read_only", "is read-only")
COMPUTED = Message("value.computed", "is computed and cannot be set")
SYSTEM = Message("value.system_set", "is set by the system")
NOT_AN_OBJECT = Message("value.not_an_object", "must be an object of field values")
IMMUTABLE = frozenset({str, int, float, bool, Decimal, date, datetime, time})  # a converted value rows may share


# ---------------------------------------------------------------------------------- validator


def converter(field: fields.Field) -> Callable[[Any], Any]:
    """`field.deserialize` for a present, non-empty value, without its per-call set-up (about 4x cheaper).

    Runs the field's pre_load functions, its conversion, every validator (collecting all their
    messages, as marshmallow does) and its post_load functions.
    """
    convert, checks = field._deserialize, tuple(field.validators)
    before, after = tuple(field.pre_load), tuple(field.post_load)

    if not before and not after:
        def quick(value: Any) -> Any:
            """The common case: no pre/post steps, every check passing (a refusal is run again for all messages)."""
            converted = convert(value, None, None)
            try:
                for check in checks:
                    if check(converted) is False:
                        return run(value)
            except ValidationError:
                return run(value)
            return converted

    def run(value: Any) -> Any:
        for step in before:
            value = step(value)
        value = convert(value, None, None)
        messages: list[str] = []
        for check in checks:
            try:
                if check(value) is False:
                    messages.append(Message("value.invalid", "is not valid"))
            except ValidationError as e:
                messages.extend(e.messages)
        if messages:
            raise ValidationError(messages)
        for step in after:
            value = step(value)
        return value

    return quick if not before and not after else run


class RecordValidator:
    """Validation of one object's records: a schema of the fields a caller may set, plus the rules."""

    def __init__(self, metadata: Metadata, obj: ObjectDef):
        self.object = obj
        declared: dict[str, fields.Field] = {"owner": RecordId()}
        self._refusals = {name: SYSTEM for name in SYSTEM_FIELDS if name != "owner"}
        for f in obj.fields.values():
            if f.typed_override is not None:
                declared[f.name] = type_named(f.result_type).validator(f, metadata)
            elif type_named(f.type).computed:
                self._refusals[f.name] = COMPUTED
            else:
                declared[f.name] = type_named(f.type).validator(f, metadata)
        self.schema: Schema = Schema.from_dict(declared, name=f"{obj.name}_record")()
        self.fields: Mapping[str, fields.Field] = self.schema.load_fields
        self._converters = {name: converter(field) for name, field in self.fields.items()}
        writable = [f for f in obj.fields.values() if f.name in self.fields]
        self._read_only = frozenset(f.name for f in writable if f.read_only or f.system)
        self._unstripped = frozenset(f.name for f in writable if not type_named(f.type).stripped)
        self._passwords = frozenset(f.name for f in writable if f.type == "password")
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
        if close:
            return Message("value.unknown_field_hint", "unknown field (did you mean '{hint}'?)", hint=close[0])
        return Message("value.unknown_field", "unknown field")

    def load(self, data: Mapping[str, Any], *, partial: bool = False, system: bool = False,
             current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Input values -> record-form values of the given fields (and, unless partial, defaults).

        Raises ValidationFailed naming every field in error; `system` lets read-only fields be set and
        passwords skip the policy a user's password is held to (`passwords.policy_errors`, which compares
        it with the username given or the `current` record's).
        """
        if not isinstance(data, Mapping):
            raise ValidationFailed({"__all__": [NOT_AN_OBJECT]})
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
                converted = convert(value)
            except ValidationError as e:
                errors[name] = e.messages
                continue
            if name in self._passwords and not system and (found := policy_errors(value, _username(data, current))):
                errors[name] = found
                continue
            value = converted
            if value == [] and name in required:
                errors[name] = [REQUIRED]
            else:
                values[name] = value
        if not partial:
            values.update(self.defaults(data))
            for name in required:
                if name not in data and name not in self._defaults:
                    errors[name] = [REQUIRED]
        if errors:
            raise ValidationFailed(errors)
        return values

    def load_many(self, rows: list[Mapping[str, Any]], *, system: bool = False) -> list[dict | None]:
        """`load(row, system=system)` of each of a batch's new records, column by column: each column's distinct
        texts converted once (a picklist's few labels, a campaign's name: once a batch, not once a row).
        None for a row that `load` would refuse or that needs it (a password's policy): the caller loads
        that row alone, for its exact messages."""
        if not all(isinstance(row, Mapping) for row in rows):
            return [None] * len(rows)
        required = self._required_system if system else self._required_user
        out: list[dict | None] = [{} for _ in rows]
        names = dict.fromkeys(name for row in rows for name in row)
        for name in names:
            convert = self._converters.get(name)
            refused = convert is None or not system and name in self._read_only or name in self._passwords
            strip = name not in self._unstripped
            done: dict[str, Any] = {}  # text -> converted (immutable results only)
            for i, row in enumerate(rows):
                values = out[i]
                if values is None or name not in row:
                    continue
                if refused:
                    out[i] = None
                    continue
                value = row[name]
                if value.__class__ is str:
                    if strip:
                        value = value.strip()
                    if value in done:
                        values[name] = done[value]
                        continue
                if value is None or value == "":
                    if name in required:
                        out[i] = None
                    else:
                        values[name] = None
                    continue
                try:
                    converted = convert(value)
                except ValidationError:
                    out[i] = None
                    continue
                if converted == [] and name in required:
                    out[i] = None
                    continue
                values[name] = converted
                if value.__class__ is str and converted.__class__ in IMMUTABLE:
                    done[value] = converted
        for i, row in enumerate(rows):
            values = out[i]
            if values is None:
                continue
            if any(name not in row and name not in self._defaults for name in required):
                out[i] = None
                continue
            values.update(self.defaults(row))
        return out

    def defaults(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults of a new record's fields that `data` leaves out."""
        return {name: default.copy() if isinstance(default, list | dict) else default
                for name, default in self._defaults.items() if name not in data}

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
                errors.setdefault(rule.field or "__all__", []).append(Message(
                    "record.rule", "{message[en]}", rule=rule.name,
                    message={"zh": rule.message.get("zh"), "en": rule.message.get("en")}))
        return errors


def _username(data: Mapping[str, Any], current: Mapping[str, Any] | None) -> str | None:
    """The username a password is set beside: the one given with it, else the record's."""
    name = data["username"] if "username" in data else (current or {}).get("username")
    return name if isinstance(name, str) else None


def build_validators(metadata: Metadata) -> dict[str, RecordValidator]:
    """A validator for every object, built once when the platform opens."""
    return {name: RecordValidator(metadata, obj) for name, obj in metadata.objects.items()}
