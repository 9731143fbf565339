"""The pages' words in Chinese and English, from the gettext catalogues (objectplatform/translations), Chinese by
default. Object, field and option labels come from the metadata; runtime messages are said by their reason."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

from babel.dates import format_date
from flask import session

from objectplatform import translations
from objectplatform.translations import LANGUAGES as LANGUAGES

DEFAULT_LANGUAGE = "zh"
LOCALES = {"zh": "zh_CN", "en": "en"}  # the page's language as CLDR's locale (the script's Intl says the same)


def N_(key: str) -> str:
    """Marks a key the pages build at run time (`f"job.{status}"`), so that `pybabel extract` finds it."""
    return key


BUILT_KEYS = (
    N_("anomalies.kind.missed"), N_("anomalies.kind.no_check_out"), N_("anomalies.kind.out_of_range"),
    N_("anomalies.kind.too_short"), N_("anomalies.kind.missing_actions"), N_("anomalies.kind.too_fast"),
    N_("anomalies.kind.poor_accuracy"), N_("anomalies.kind.same_spot"),
    N_("approval.approved"), N_("approval.rejected"), N_("approval.submitted"), N_("approval.withdrawn"),
    N_("approval.decision.approved"), N_("approval.decision.none"), N_("approval.decision.rejected"),
    N_("approval.mode.all"), N_("approval.mode.any"),
    N_("approval.refused.403"), N_("approval.refused.409"), N_("approval.refused.422"),
    N_("approval.status.approved"), N_("approval.status.pending"), N_("approval.status.rejected"),
    N_("approval.status.withdrawn"),
    N_("approval.step.approved"), N_("approval.step.not_reached"), N_("approval.step.pending"),
    N_("approval.step.rejected"), N_("approval.step.skipped"), N_("approval.step.waiting"),
    N_("approval.step.withdrawn"),
    N_("change.approval"), N_("change.approve_stage"), N_("change.create"), N_("change.delete"), N_("change.handover"),
    N_("change.recycle"), N_("change.reject_stage"), N_("change.restore"), N_("change.rule"),
    N_("change.sign_in_failed"), N_("change.update"), N_("change.withdraw_stage"),
    N_("duplicates.action_warn"), N_("duplicates.action_block"),
    N_("error.400"), N_("error.403"), N_("error.404"), N_("error.title"),
    N_("field.created_at"), N_("field.created_by"), N_("field.id"), N_("field.owner"), N_("field.updated_at"),
    N_("field.updated_by"), N_("field.version"),
    N_("job.failed"), N_("job.finished"), N_("job.interrupted"), N_("job.queued"), N_("job.running"),
    N_("job.scheduled"),
    N_("meta.read_only"), N_("meta.required"), N_("meta.unique"),
    N_("pool.assigned"), N_("pool.claimed"),
    N_("reports.bucket.day"), N_("reports.bucket.month"), N_("reports.bucket.quarter"), N_("reports.bucket.week"),
    N_("reports.bucket.year"),
    N_("reports.chart.bar"), N_("reports.chart.funnel"), N_("reports.chart.heatmap"), N_("reports.chart.line"),
    N_("reports.chart.pie"),
    N_("reports.chart.stacked_bar"), N_("reports.chart.table"),
    N_("reports.field.created_at"), N_("reports.field.created_by"), N_("reports.field.id"), N_("reports.field.owner"),
    N_("reports.field.updated_at"), N_("reports.field.updated_by"), N_("reports.field.version"),
    N_("reports.function.avg"), N_("reports.function.count"), N_("reports.function.count_distinct"),
    N_("reports.function.max"), N_("reports.function.min"), N_("reports.function.sum"),
    N_("reports.operator.contains"), N_("reports.operator.empty"), N_("reports.operator.eq"), N_("reports.operator.gt"),
    N_("reports.operator.gte"), N_("reports.operator.in"), N_("reports.operator.lt"), N_("reports.operator.lte"),
    N_("reports.operator.ne"), N_("reports.operator.not_empty"),
    N_("reports.range.last_month"), N_("reports.range.last_quarter"), N_("reports.range.last_year"),
    N_("reports.range.this_month"), N_("reports.range.this_quarter"), N_("reports.range.this_week"),
    N_("reports.range.this_year"), N_("reports.range.today"),
    N_("reports.scene.all"), N_("reports.scene.mine"), N_("reports.scene.subordinates"),
    N_("stage.advance"), N_("stage.invalidate"), N_("stage.lose"), N_("stage.win"),
    N_("todos.kind.approval"), N_("todos.kind.reminder"), N_("todos.kind.task"),
)


def language() -> str:
    """The signed-in (or anonymous) visitor's language, from the session; Chinese by default."""
    lang = session.get("lang")
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def has_text(key: str) -> bool:
    """Whether the catalogues have `key` (for keys built from data, such as a job's status)."""
    return key in translations.catalogue(DEFAULT_LANGUAGE)


def text(key: str, lang: str | None = None, **values) -> str:
    """The catalogue's text for `key` in `lang` (default: the session's), with `{name}` parts filled."""
    return translations.text(key, lang or language(), **values)


def error_text(message: str, lang: str) -> str:
    """A runtime message (a field's or a failure's) in `lang`, said from its reason and params."""
    return translations.message_text(message, lang)


def translator(lang: str) -> Callable[..., str]:
    """`_` for templates: `_("list.total", total=3)`."""
    return lambda key, **values: text(key, lang, **values)


def date_in_words(value: str | None, lang: str) -> str:
    """A form's date ("2026-12-08") or local date-time ("2026-12-08T14:30") in the words of `lang`:
    "2026年12月8日星期二", "Tuesday, December 8, 2026 14:30" (CLDR's full date, as app.js writes it with Intl when the
    input changes), shown under the browser's date picker, which orders a date as the browser's locale does, not
    the page's language; "" for an empty or unreadable value."""
    text = str(value or "").strip()
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return ""
    words = format_date(day, "full", locale=LOCALES[lang])
    time = re.fullmatch(r"T(\d\d:\d\d)(?::\d\d)?", text[10:])
    return f"{words} {time.group(1)}" if time else words
