"""iCalendar (RFC 5545) text for a list of events, written by hand: a calendar app imports the file a page or the
API serves as text/calendar."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Event:
    uid: str
    start: datetime
    end: datetime
    summary: str
    location: str | None = None
    geo: tuple[float, float] | None = None  # (lat, lng)
    description: str | None = None


def calendar(events: Iterable[Event], stamp: datetime, product: str = "-//objectplatform//routes//EN") -> str:
    """A VCALENDAR holding one VEVENT per event, lines folded at 75 octets and ended by CRLF."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{product}", "CALSCALE:GREGORIAN", "METHOD:PUBLISH"]
    for e in events:
        lines += ["BEGIN:VEVENT", f"UID:{e.uid}", f"DTSTAMP:{_utc(stamp)}", f"DTSTART:{_utc(e.start)}",
                  f"DTEND:{_utc(e.end)}", f"SUMMARY:{_text(e.summary)}"]
        if e.location:
            lines.append(f"LOCATION:{_text(e.location)}")
        if e.geo:
            lines.append(f"GEO:{e.geo[0]:.6f};{e.geo[1]:.6f}")
        if e.description:
            lines.append(f"DESCRIPTION:{_text(e.description)}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(f"{_fold(line)}\r\n" for line in lines)


def _utc(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _text(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\r\n", "\\n") \
        .replace("\n", "\\n")


def _fold(line: str) -> str:
    """The line cut into pieces of at most 75 octets (never inside a character), each after the first indented."""
    pieces, current = [], b""
    for char in line:
        encoded = char.encode()
        if len(current) + len(encoded) > (75 if not pieces else 74):
            pieces.append(current.decode())
            current = b""
        current += encoded
    pieces.append(current.decode())
    return "\r\n ".join(pieces)
