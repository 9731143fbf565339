"""Runtime errors: each carries its API code and status, a stable reason and its params, so every face (API, pages,
CLI) says it the same way, in its own language."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from objectplatform.metadata import Label, ObjectDef


class _KeepMissing(dict):
    """Format values that leave a name not yet given as `{name}`, so a sentence short of params stays a template."""

    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


class Message(str):
    """An English sentence (the API's words) carrying its stable dotted reason and its params, from which the pages
    and the CLI say it in their language: `Message("pool.daily_limit", "... is {limit}", limit=3)`.

    It is the English text wherever a string goes (comparisons, JSON, joins). A sentence short of params stays a
    template, and `format` fills it as str.format would (marshmallow fills its error templates that way), ignoring
    names the sentence does not use.
    """

    reason: str
    template: str
    params: dict[str, Any]

    def __new__(cls, reason: str, template: str, /, **params: Any) -> Message:
        self = super().__new__(cls, template.format_map(_KeepMissing(params)))
        self.reason, self.template, self.params = reason, template, params
        return self

    def format(self, *args: Any, **params: Any) -> Message:
        named = {name for _, name, _, _ in string.Formatter().parse(self.template) if name}
        used = {name: value for name, value in params.items() if name.partition("[")[0] in named}
        return Message(self.reason, self.template, **{**self.params, **used})

    def __getnewargs_ex__(self) -> tuple[tuple[str, str], dict[str, Any]]:
        return (self.reason, self.template), self.params


class RuntimeFailure(Exception):
    """Base of the errors a runtime service raises for bad input or a refused operation. `message` is a Message (a
    plain string only where no reason was given yet); `fields` maps a field name to its messages."""

    code = "bad_request"
    status = 400

    def __init__(self, message: str, fields: Mapping[str, Sequence[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = {name: list(msgs) for name, msgs in (fields or {}).items()}

    def __str__(self) -> str:
        return self.message

    @property
    def reason(self) -> str | None:
        return self.message.reason if isinstance(self.message, Message) else None

    @property
    def params(self) -> dict[str, Any]:
        return self.message.params if isinstance(self.message, Message) else {}

    def as_dict(self) -> dict:
        """The API error body: {"error": {"code", "message", "reason"?, "params"?, "fields"?}}."""
        body: dict = {"code": self.code, "message": self.message}
        if self.reason:
            body["reason"], body["params"] = self.reason, coded_params(self.message)
        if self.fields:
            body["fields"] = self.fields
        return {"error": body}


class BadRequest(RuntimeFailure):
    code, status = "bad_request", 400


class Unauthenticated(RuntimeFailure):
    code, status = "unauthenticated", 401


class Forbidden(RuntimeFailure):
    code, status = "forbidden", 403


class NotFound(RuntimeFailure):
    code, status = "not_found", 404


class Conflict(RuntimeFailure):
    code, status = "conflict", 409


class Locked(Conflict):
    """A field locked in the record's current state (or by a pending approval) was changed."""

    code, status = "locked", 409


class ValidationFailed(RuntimeFailure):
    """Field or rule errors, every one of them: `fields` maps a field name (or "__all__") to messages."""

    code, status = "validation_failed", 422

    def __init__(self, fields: Mapping[str, Sequence[str]], message: str | None = None):
        count = sum(len(m) for m in fields.values())
        errors = (Message("validation.field_error", "field error") if count == 1
                  else Message("validation.field_errors", "field errors"))
        super().__init__(message or Message("validation.failed", "{count} {errors}", count=count, errors=errors),
                         fields)


def message_json(message: str) -> dict | str:
    """A message as a JSON document keeps it (a job's result): {"reason", "template", "params"}, its params that are
    messages likewise; a plain string stays itself. `message_from_json` reads it back."""
    if not isinstance(message, Message):
        return str(message)
    params = {name: message_json(value) if isinstance(value, str) else value for name, value in message.params.items()}
    return {"reason": message.reason, "template": message.template, "params": params}


def message_from_json(data: dict | str) -> str:
    """The message `message_json` wrote."""
    if isinstance(data, str):
        return data
    params = {name: message_from_json(value) if isinstance(value, str) or isinstance(value, dict) and "reason" in value
              else value for name, value in data["params"].items()}
    return Message(data["reason"], data["template"], **params)


def said_label(zh: str, en: str) -> Message:
    """A name the metadata gives in both languages (an object's label) as a param that each face says in its own."""
    return Message("object.label", "{label[en]}", label={"zh": zh, "en": en})


def said_name(name: str, label) -> Message:
    """A code the metadata labels (an object, a transition, a state, a role, a field) as a param: its label in each
    face's language, the English one in the API's message; the API's params give the code (`coded_params`)."""
    return Message("name.label", "{label[en]}", name=name, label={"zh": label.zh, "en": label.en})


def said_object(obj: ObjectDef, *, lower: bool = False) -> str:
    """The object by its label (`Sales order`; in lower case within an English sentence: `a new sales order`)."""
    return said_name(obj.name, Label(obj.label.zh, obj.label.en.lower()) if lower else obj.label)


def said_records(obj: ObjectDef) -> str:
    """The object's records as a sentence names them (`payments`): its plural label in lower case in English."""
    plural = obj.plural_label or Label(obj.label.zh, f"{obj.label.en}s")
    return said_name(obj.name, Label(plural.zh, plural.en.lower()))


def coded(value: Any) -> Any:
    """A param as the API's params give it: a name `said_name` labels as its code, a message of such names (a list of
    states) with their codes in its English; any other value as it is."""
    if not isinstance(value, Message):
        return value
    if value.reason == "name.label":
        return value.params["name"]
    return value.template.format_map(_KeepMissing(coded_params(value)))


def coded_params(message: Message) -> dict[str, Any]:
    """A message's params as the API answers them beside it: codes where the message says labels."""
    return {name: coded(value) for name, value in message.params.items()}


def said_list(items: Sequence[str]) -> str:
    """Several messages (at least one) as one, joined by each language's separator ("、" in Chinese)."""
    if len(items) == 1:
        return items[0]
    return Message("list.and", "{first}, {rest}", first=items[0], rest=said_list(items[1:]))


def no_record(obj: ObjectDef | Message, record_id: Any) -> Message:
    """The message of an id that names no record of `obj` (or none the caller may see), by the object's label
    (`no sales order with id 9`); what is no object (a to-do) comes as the Message that names it."""
    said = said_object(obj, lower=True) if isinstance(obj, ObjectDef) else obj
    return Message("record.not_found", "no {object} with id {id}", object=said, id=record_id)


def bulk_result(ids: list[str], refused: Mapping[str, RuntimeFailure]) -> dict:
    """A set-based bulk run's answer: the ids that succeeded, in the order given, and each refused one with why."""
    return {"succeeded": [one for one in ids if one not in refused],
            "failed": [{"id": one, "error": refused[one].as_dict()["error"]} for one in ids if one in refused]}
