"""Importing records from a CSV, XLSX or vCard file: the one implementation the API job and the CLI use.

(How it works: docs/engine.md, "objectplatform/runtime/imports.py".)"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, ObjectDef, VCardImport
from objectplatform.metadata.problems import closest

from . import import_runs
from .behaviors import duplicates
from .errors import BadRequest, Conflict, Message, message_json, said_object
from .jobs import report_progress
from .permissions import access_for
from .records.bulk import IdRuns
from .storage.engine import reading
from .storage.tables import MULTI_TYPES, REFERENCE_TYPES

LOOKUP_CHUNK = 500  # values per query when resolving lookup columns of an import
EXTENSIONS = (".csv", ".xlsx", ".vcf")
CELL = "TEL;TYPE=cell"
VCARD_PROPERTIES = ("FN", "ORG", "TITLE", "TEL", CELL, "EMAIL", "ADR", "NOTE")  # what `imports: vcard:` may map



@dataclass
class Source:
    """A file's header and its data rows as (file row number, cells); `rows()` may be read twice."""

    name: str
    header: list[str]
    count: int
    rows: Callable[[], Iterator[tuple[int, list[str]]]]


@dataclass
class ImportResult:
    created: int = 0  # records created (their ids are not kept: an import may create millions)
    # {"row": file row number, "fields": {name: [English messages]}, "reasons": {name: [errors.message_json]}}
    errors: list[dict] = field(default_factory=list)
    all_or_nothing: bool = False
    # {"row": file row number, "id": the created record, "warnings": [duplicates.Duplicates.warnings' items]}
    warnings: list[dict] = field(default_factory=list)
    committed: list[list[int]] = field(default_factory=list)  # [first file row, last file row] of each batch

    def json(self) -> dict:
        """The job's result; `warned` and `warnings` only when a created row matched a duplicate (warn) rule."""
        out = {"created": self.created, "failed": len(self.errors), "errors": self.errors,
               "all_or_nothing": self.all_or_nothing, "committed": self.committed}
        if self.warnings:
            out.update(warned=len(self.warnings), warnings=self.warnings)
        return out


def hint(word: str, choices) -> str:
    match = closest(word, list(choices))
    return f" (did you mean {match!r}?)" if match else ""


# --- reading files ----------------------------------------------------------------------------


def read_path(path: Path) -> Source:
    """A file on disk (CSV is streamed, never held whole in memory)."""
    extension = _extension(path.name, str(path))
    if extension == ".csv":
        return _csv_source(str(path), lambda: _open_text(path))
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadRequest(Message("import.unreadable", "cannot read {path}: {error}", path=str(path),
                                 error=e.strerror)) from None
    return read_bytes(str(path), data)


def read_bytes(name: str, data: bytes) -> Source:
    """An uploaded file named `name` (its extension decides the format)."""
    extension = _extension(name, name)
    if not data.strip():
        raise BadRequest(Message("import.empty", "{file}: empty file; the first row must name the columns",
                                 file=name))
    if extension == ".csv":
        return _csv_source(name, lambda: io.StringIO(_decode(name, data), newline=""))
    if extension == ".xlsx":
        return _xlsx_source(name, data)
    return _vcard_source(name, _decode(name, data))


def _extension(name: str, shown: str) -> str:
    extension = Path(name).suffix.lower()
    if extension not in EXTENSIONS:
        raise BadRequest(Message("import.file_type", "{file}: unknown file type {extension!r}; import a .csv, .xlsx or "
                                 ".vcf file", file=shown, extension=extension or "(none)"))
    return extension


def _decode(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadRequest(Message("import.not_utf8", "{file}: not a UTF-8 file ({error})", file=name,
                                 error=str(e))) from None


def _open_text(path: Path):
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as e:
        raise BadRequest(Message("import.unreadable", "cannot read {path}: {error}", path=str(path),
                                 error=e.strerror)) from None


def _csv_source(name: str, opener: Callable) -> Source:
    """UTF-8 CSV with or without a byte-order mark; a first pass counts the rows (for the progress)."""
    with opener() as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            count = sum(1 for _ in reader)
        except (UnicodeDecodeError, csv.Error) as e:
            raise BadRequest(Message("import.not_utf8_csv", "{file}: not a UTF-8 CSV file ({error})", file=name,
                                     error=str(e))) from None
    if not header or not any(cell.strip() for cell in header):
        raise BadRequest(Message("import.empty", "{file}: empty file; the first row must name the columns",
                                 file=name))

    def rows() -> Iterator[tuple[int, list[str]]]:
        with opener() as f:
            reader = csv.reader(f)
            next(reader)
            yield from enumerate(reader, start=2)

    return Source(name, [cell.strip() for cell in header], count, rows)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat() if value.time() != time() else value.date().isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _xlsx_source(name: str, data: bytes) -> Source:
    """The first worksheet; row 1 names the columns, rows with no value at all are skipped. Read by python-calamine
    when it is installed (the sheet parsed once, its rows made Python values a pass at a time, never all held as
    Python lists), else by openpyxl."""
    cells = _calamine_cells(data) or _openpyxl_cells(name, data)

    def table() -> Iterator[tuple[int, list[str]]]:
        for number, values in cells():
            row = [_cell_text(v) for v in values]
            if any(c.strip() for c in row):
                yield number, row

    first = next(table(), None)
    if first is None or first[0] != 1:
        raise BadRequest(Message("import.empty", "{file}: empty file; the first row must name the columns",
                                 file=name))
    header = [cell.strip() for cell in first[1]]
    while header and not header[-1]:
        header.pop()

    def rows() -> Iterator[tuple[int, list[str]]]:
        body = table()
        next(body)
        for number, row in body:
            yield number, row[: len(header)]

    count = sum(1 for number, values in cells() if number > 1 and any(map(_filled, values)))
    return Source(name, header, count, rows)


def _filled(value) -> bool:
    """Whether a cell holds something (`_cell_text` of it is not blank), told without making its text."""
    return bool(value.strip()) if value.__class__ is str else value is not None


def _calamine_cells(data: bytes) -> Callable[[], Iterator[tuple[int, list]]] | None:
    """A new pass over the first sheet's rows (file row number, cell values from column A) each call, the sheet
    parsed once; None without python-calamine or when it cannot read the file (openpyxl then names what is wrong
    with it)."""
    try:
        import python_calamine
    except ImportError:
        return None
    try:
        sheet = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0)
    except Exception:  # its errors say less than openpyxl's, which the user is shown
        return None
    left = [""] * sheet.start[1] if sheet.start else []  # its rows start at the first column holding a value

    def cells() -> Iterator[tuple[int, list]]:
        for number, values in enumerate(sheet.iter_rows(), start=1):
            yield number, left + values

    return cells


def _openpyxl_cells(name: str, data: bytes) -> Callable[[], Iterator[tuple[int, list]]]:
    """The first sheet's rows read once by openpyxl (a damaged file is a BadRequest naming its error)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises zipfile, KeyError or its own errors for a damaged file
        raise BadRequest(Message("import.not_xlsx", "{file}: not a readable XLSX file ({error})", file=name,
                                 error=type(e).__name__)) from None
    table = [(number, list(values))
             for number, values in enumerate(book.worksheets[0].iter_rows(values_only=True), start=1)]
    book.close()
    return lambda: iter(table)


# --- vCard ------------------------------------------------------------------------------------


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) in "nN" else m.group(1), text)


def _components(value: str) -> list[str]:
    """The ';'-separated parts of a structured value (N, ORG, ADR), unescaped."""
    return [_unescape(part).strip() for part in re.split(r"(?<!\\);", value)]


def _types(params: list[str]) -> set[str]:
    """TYPE parameter values, lower case: TYPE=cell,voice / TYPE="cell,voice" / TYPE=cell;TYPE=work / CELL."""
    found: set[str] = set()
    for param in params:
        key, has_value, value = param.partition("=")
        if not has_value:
            found.add(key.lower())
        elif key.upper() == "TYPE":
            found.update(v.strip().strip('"').lower() for v in value.strip('"').split(","))
    return found


def _cjk(text: str) -> bool:
    return bool(re.search(r"[\u3400-\u9fff]", text))


def _card_properties(properties: list[tuple[str, list[str], str]]) -> dict[str, str]:
    """One card's VCARD_PROPERTIES that it gives (non-empty): the first of each, N standing in for FN."""
    values: dict[str, str] = {}
    mobiles, work_phones, other_phones, emails = [], [], [], []
    for name, params, value in properties:
        if name == "FN":
            values["FN"] = _unescape(value).strip()
        elif name == "N" and "FN" not in values:
            family, given = ([*_components(value), "", ""])[:2]
            values["_n"] = family + given if _cjk(family + given) else " ".join(p for p in (given, family) if p)
        elif name in ("ORG", "TITLE", "NOTE"):
            values[name] = _components(value)[0] if name == "ORG" else _unescape(value).strip()
        elif name == "TEL":
            number = re.sub(r"^tel:", "", _unescape(value).strip(), flags=re.I)
            types = _types(params)
            if "fax" in types or "pager" in types:
                continue
            (mobiles if "cell" in types else work_phones if "work" in types else other_phones).append(number)
        elif name == "EMAIL":
            emails.append(_unescape(value).strip())
        elif name == "ADR":
            values["ADR"] = ", ".join(p for p in _components(value) if p)
    if "_n" in values:
        values.setdefault("FN", values["_n"])
        del values["_n"]
    if mobiles:
        values[CELL] = mobiles[0]
    if work_phones or other_phones:
        values["TEL"] = (work_phones + other_phones)[0]
    if emails:
        values["EMAIL"] = emails[0]
    return {k: v for k, v in values.items() if v}


def card_values(vcard: VCardImport, properties: Mapping[str, str]) -> dict[str, str]:
    """The field values of one card's `properties` as the object's `imports: vcard:` maps them."""
    values = {name: properties[prop] for prop, name in vcard.fields.items() if prop in properties}
    return values | {name: str(value) for name, value in vcard.set.items()}


def parse_vcards(text: str) -> list[tuple[int, dict[str, str]]]:
    """Each card as (line number of its BEGIN:VCARD, {vCard property: value})."""
    lines: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] = (lines[-1][0], lines[-1][1] + line[1:])  # folded line
        elif line.strip():
            lines.append((number, line))
    cards: list[tuple[int, dict[str, str]]] = []
    start, properties = None, []
    for number, line in lines:
        head, _, value = line.partition(":")
        name, *params = head.split(";")
        name = name.rsplit(".", 1)[-1].upper()  # drop a group prefix ("item1.TEL")
        if name == "BEGIN" and value.strip().upper() == "VCARD":
            start, properties = number, []
        elif name == "END" and value.strip().upper() == "VCARD" and start is not None:
            cards.append((start, _card_properties(properties)))
            start = None
        elif start is not None:
            properties.append((name, params, value))
    return cards


def _vcard_source(name: str, text: str) -> Source:
    """The cards as rows under the header VCARD_PROPERTIES (`prepare` maps them to the object's fields)."""
    cards = parse_vcards(text)
    if not cards:
        raise BadRequest(Message("import.no_vcard", "{file}: no vCard (BEGIN:VCARD ... END:VCARD) in the file",
                                 file=name))
    header = list(VCARD_PROPERTIES)
    body = [(number, [values.get(p, "") for p in header]) for number, values in cards]
    return Source(name, header, len(body), lambda: iter(body))


def _vcard_fields(obj: ObjectDef, source: Source) -> Source:
    """A vCard source with the object's fields as header: its `imports: vcard:` mapping applied to each card."""
    vcard = obj.vcard_import
    if vcard is None:
        raise BadRequest(Message("import.vcard_not_declared", "{file}: {object} imports no vCards (its object declares "
                                 "no imports: vcard:)", file=source.name, object=said_object(obj)))
    header = list(dict.fromkeys([*vcard.fields.values(), *vcard.set]))

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, cells in source.rows():
            values = card_values(vcard, {p: cell for p, cell in zip(source.header, cells, strict=True) if cell})
            yield number, [values.get(f, "") for f in header]

    return Source(source.name, header, source.count, rows)


# --- columns and values -----------------------------------------------------------------------


@dataclass
class Prepared:
    """A source checked against an object: the field of each column."""

    object: ObjectDef
    source: Source
    columns: list[str]  # the field of each column


def prepare(obj: ObjectDef, source: Source) -> Prepared:
    """Resolve the header to fields; BadRequest naming every unknown or repeated column."""
    if source.name.lower().endswith(".vcf"):
        mapped = _vcard_fields(obj, source)
        return Prepared(obj, mapped, list(mapped.header))
    names = {name: name for name in obj.fields} | {"owner": "owner"}
    by_label = {"负责人": "owner"}
    for f in obj.fields.values():
        by_label.setdefault(f.label.zh, f.name)
        by_label.setdefault(f.label.en.lower(), f.name)
    columns: list[str] = []
    problems = []
    for cell in source.header:
        found = names.get(cell) or by_label.get(cell) or by_label.get(cell.lower())
        if found is None:
            problems.append(f"unknown column {cell!r}{hint(cell, [*names, *by_label])}")
        elif found in columns:
            problems.append(f"column {cell!r} names {found!r} a second time")
        columns.append(found)
    if problems:
        raise BadRequest(Message("import.bad_header", "{file}: {problems} (the fields of {object}: {fields})",
                                 file=source.name, problems="; ".join(problems), object=obj.name,
                                 fields=", ".join(names)))
    return Prepared(obj, source, columns)


def _reference_types(obj: ObjectDef) -> dict[str, str]:
    """Reference field -> target object, `owner` included."""
    refs = {"owner": "user"}
    refs.update({f.name: f.to for f in obj.fields.values() if f.type in REFERENCE_TYPES | MULTI_TYPES and f.to})
    return refs


def _option_values(f: FieldDef) -> dict[str, str]:
    """Picklist cell text -> option value: the value itself, or its Chinese or English label."""
    known = {o.label.en: o.value for o in f.options} | {o.label.zh: o.value for o in f.options}
    return known | {o.value: o.value for o in f.options}


def _reference_ids(platform, prepared: Prepared) -> dict[str, dict[str, str]]:
    """For each referenced object: cell text -> id, for the values that are an id or one record's title.

    A cell may hold the target's id, its title (a campaign's name) or, for users, the username.
    Values matching nothing pass through unchanged, so the validation reports them on their row.
    """
    targets = _reference_types(prepared.object)
    wanted: dict[str, set[str]] = {}
    indexes = [(i, targets[c]) for i, c in enumerate(prepared.columns) if c in targets]
    if indexes:
        for _, row in prepared.source.rows():
            for i, target in indexes:
                if i < len(row) and row[i].strip():
                    wanted.setdefault(target, set()).add(row[i].strip())
    return {target: _lookup(platform, target, values) for target, values in wanted.items()}


def _lookup(platform, target: str, values: set[str]) -> dict[str, str]:
    """Cell text -> id of the one `target` record whose id, text title (or username) it is."""
    ot = platform.schema[target]
    keys = [
        name
        for name in (ot.object.title_field, "username" if target == "user" else None)
        if name and len(ot.columns.get(name, ())) == 1 and isinstance(ot.column(name).type, sa.String)
    ]
    matches: dict[str, set[str]] = {}
    ordered = sorted(values)
    with reading(platform.engine) as conn:
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            chunk = ordered[start : start + LOOKUP_CHUNK]
            numbers = [int(v) for v in chunk if v.isdigit() and len(v) < 19]
            condition = sa.or_(ot.table.c.id.in_(numbers), *(ot.column(k).in_(chunk) for k in keys))
            query = sa.select(ot.table.c.id, *(ot.column(k) for k in keys)).where(condition)
            for row in conn.execute(query):
                record_id = str(row[0])
                for text in {record_id, *(str(v) for v in row[1:] if v is not None)} & set(chunk):
                    matches.setdefault(text, set()).add(record_id)
    return {text: ids.pop() for text, ids in matches.items() if len(ids) == 1}


def _values(prepared: Prepared, ids: Mapping[str, Mapping[str, str]], numbers: list[int],
            after: int = 0) -> Iterator[dict]:
    """Each data row after file row `after` as field values: empty cells left out, lists split on ';', options and
    references resolved. The file row number of each yielded row is appended to `numbers`."""
    obj = prepared.object
    targets = _reference_types(obj)
    multi = {f.name for f in obj.fields.values() if f.type in MULTI_TYPES}
    options = {f.name: _option_values(f) for f in obj.fields.values() if f.options}
    # each column's field, the texts it resolves (None: taken as they are) and whether it holds a list: once
    plan = [(name, options.get(name) or ids.get(targets.get(name, ""), {}) or None, name in multi)
            for name in prepared.columns]
    for number, row in prepared.source.rows():
        if number <= after:
            continue
        values: dict = {}
        for (name, known, listed), cell in zip(plan, row, strict=False):
            text = cell.strip()
            if not text:
                continue
            if listed:
                items = [item.strip() for item in re.split(r"[;；]", text) if item.strip()]
                values[name] = items if known is None else [known.get(item, item) for item in items]
            else:
                values[name] = text if known is None else known.get(text, text)
        numbers.append(number)
        yield values


Checkpoint = Callable[[sa.Connection, dict, int], None]  # (the batch's transaction, the batch, rows done)


def run_import(platform, prepared: Prepared, *, user: str | None, all_or_nothing: bool = False,
               progress: Callable[[int, int | None], None] | None = None,
               caller=None, defaults: Mapping[str, str] | None = None, after: int = 0, done: int = 0,
               checkpoint: Checkpoint | None = None) -> ImportResult:
    """Create the rows through `create_many` (owned by `user` unless a row names an owner), as `caller` (an
    Access: references within their data scope, no field their roles let them only read); `defaults`
    fill the fields a row leaves empty (the campaign of an import started from the campaign's page).

    A resumed job passes `after`, the last file row committed, and `done`, the rows before it; `checkpoint`
    records each batch in the batch's own transaction."""
    ids = _reference_ids(platform, prepared)
    numbers: list[int] = []  # the file row numbers of the rows read from index `read_from` on (earlier: let go)
    read_from = 0
    records = platform.records.within(caller) if caller is not None else platform.records
    rows = _values(prepared, ids, numbers, after)
    if defaults:
        rows = ({**defaults, **row} for row in rows)
    result = ImportResult(all_or_nothing=all_or_nothing)
    known = IdRuns()  # record created by this run -> its file row

    with duplicates.collecting(prepared.object.name) as collector:
        def on_batch(conn: sa.Connection, start: int, size: int, created: list[str], errors: list) -> None:
            nonlocal read_from
            del numbers[: start - read_from]  # the earlier batches' rows: memory stays flat as the file grows
            read_from = start
            batch = _batch(numbers, start, size, created, errors, known, collector.warnings)
            collector.warnings.clear()
            if checkpoint is not None:
                checkpoint(conn, batch, done + start + size)
            result.created += batch["created"]
            result.errors += batch["errors"]
            result.warnings += batch["warnings"]
            result.committed.append([batch["first_row"], batch["last_row"]])

        def moved(count: int, total: int | None) -> None:
            if progress is not None:
                progress(done + count, total)

        bulk = records.create_many(prepared.object.name, rows, user=user, all_or_nothing=all_or_nothing,
                                   progress=moved, total=prepared.source.count, on_batch=on_batch,
                                   batch_size=platform.settings.import_batch_size, keep_ids=False)
    if all_or_nothing and bulk.errors:
        return ImportResult(0, result.errors, all_or_nothing)
    return result


def _batch(numbers: list[int], start: int, size: int, created: list[str], errors: list,
           known: IdRuns, found: Mapping[str, list[dict]]) -> dict:
    """One committed batch as its checkpoint keeps it: its file rows, counts, row errors and warnings. `numbers`
    holds the file row numbers of the rows from index `start` on."""
    failed = {e.index for e in errors}
    created_rows = dict(zip(created, (numbers[i - start] for i in range(start, start + size) if i not in failed),
                            strict=True))
    known.add(map(int, created_rows), created_rows.values())
    return {"first_row": numbers[0], "last_row": numbers[size - 1], "rows": size,
            "created": len(created),
            "errors": [{"row": numbers[e.index - start], "fields": {k: list(v) for k, v in e.fields.items()},
                        "reasons": {k: [message_json(m) for m in v] for k, v in e.fields.items()}} for e in errors],
            "warnings": _row_warnings(created_rows, known, found)}


def _row_warnings(created_rows: Mapping[str, int], known: IdRuns, found: Mapping[str, list[dict]]) -> list[dict]:
    """The duplicate warnings of a batch's created rows by file row number; a match that this import created
    names its row too."""
    out = []
    for record_id, row in created_rows.items():
        if record_id not in found:
            continue
        for warning in found[record_id]:
            for match in warning["matches"]:
                if (earlier := known.get(int(match["id"]))) is not None:
                    match["row"] = earlier
            first = warning["matches"][0]
            if "row" in first:
                warning["message"] = warning["message"].replace("an earlier row", f"row {first['row']}", 1)
        out.append({"row": row, "id": record_id, "warnings": found[record_id]})
    return out


# --- the job ----------------------------------------------------------------------------------


def start_import(platform, obj: ObjectDef, name: str, data: bytes, user: str, all_or_nothing: bool,
                 job_id: str, defaults: Mapping[str, str] | None = None, force: bool = False) -> str:
    """Check the upload (BadRequest before any job starts; Conflict when the same file was imported before,
    unless `force`), keep it with the job, then run `import_job` in the background; return the job id."""
    prepared = prepare(obj, read_bytes(name, data))
    if not force and (before := import_runs.earlier(platform, obj.name, data)):
        raise Conflict(Message("import.same_file", "{file} was already imported into {object} by job {job_id} "
                               "({created} records, started {at}); send force=true to import it again",
                               file=name, object=obj.name, job_id=before["id"], created=before["created"],
                               at=before["created_at"].isoformat(timespec="seconds") + "Z"))
    import_runs.create(platform, job_id, obj.name, user, name, data, all_or_nothing, defaults,
                       prepared.source.count)
    return platform.enqueue(import_job, job_id, 1, job_id=job_id, background=True)


def import_job(platform, job_id: str, attempt: int) -> dict | None:
    """The background job: attempt `attempt` of the import kept under `job_id`, continuing after its last committed
    batch, as its user within the user's data scope; the result as JSON (None when a later attempt took over)."""
    return resume_run(platform, job_id, attempt, report_progress)


def resume_run(platform, job_id: str, attempt: int, progress: Callable[[int, int | None], None]) -> dict | None:
    """Run (or continue) the import `job_id` as attempt `attempt`, reporting `progress` after each batch."""
    run = import_runs.claim(platform, job_id, attempt)
    if run is None:
        return None
    try:
        with reading(platform.engine) as conn:
            before = import_runs.committed(conn, platform, job_id)
        after = before[-1]["last_row"] if before else 0
        done = sum(b["rows"] for b in before)
        prepared = prepare(platform.metadata.objects[run["object"]], read_bytes(run["file_name"], run["data"]))
        progress(done, prepared.source.count)

        def checkpoint(conn: sa.Connection, batch: dict, done: int) -> None:
            import_runs.checkpoint(conn, platform, run, batch, done)

        outcome = run_import(platform, prepared, user=str(run["user_id"]), all_or_nothing=run["all_or_nothing"],
                             progress=progress, caller=access_for(platform, str(run["user_id"])),
                             defaults=json.loads(run["defaults"]) or None, after=after, done=done,
                             checkpoint=checkpoint)
    except import_runs.Superseded:
        return None
    except Exception as e:
        import_runs.end(platform, run, "failed", error=f"{type(e).__name__}: {e}")
        raise
    with reading(platform.engine) as conn:
        result = import_runs.result(import_runs.committed(conn, platform, job_id), run["all_or_nothing"])
    if run["all_or_nothing"] and outcome.errors:
        result = outcome.json()
    import_runs.end(platform, run, "finished", done=prepared.source.count, outcome=result)
    return result


def row_report(fields: Mapping[str, Sequence[str]]) -> str:
    """`phone: message; email: message` ("__all__" errors without a field name)."""
    return "; ".join(
        message if name == "__all__" else f"{name}: {message}"
        for name, messages in fields.items()
        for message in messages
    )


def warning_report(warnings: Sequence[Mapping]) -> str:
    """`possible duplicate of lead 12 (王伟's): same phone; ...` (the messages of a row's warnings)."""
    return "; ".join(w["message"] for w in warnings)
