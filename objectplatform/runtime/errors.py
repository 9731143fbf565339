"""Runtime errors: each carries the API error code and status, so every face renders it the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class RuntimeFailure(Exception):
    """Base of the errors a runtime service raises for bad input or a refused operation."""

    code = "bad_request"
    status = 400

    def __init__(self, message: str, fields: Mapping[str, Sequence[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = {name: list(msgs) for name, msgs in (fields or {}).items()}

    def as_dict(self) -> dict:
        """The API error body: {"error": {"code", "message", "fields"?}}."""
        body: dict = {"code": self.code, "message": self.message}
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
        super().__init__(message or f"{count} field error{'s' if count != 1 else ''}", fields)
