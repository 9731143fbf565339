"""A report result drawn as SVG on the server (bar, stacked bar, line, pie, funnel, heat map): no script, no CDN,
the same picture in the page and as a file. Chart kinds are a registry, so a template can add one. A report by two
dimensions draws one measure with the second dimension's values as the series (bars side by side, stacked, lines)
or as the rows of a heat map, each category once."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from objectplatform.metadata import Chart

from .run import ReportResult


@dataclass(frozen=True)
class Frame:
    """A chart's drawing box: its size, the margins around the plot (the legend sits in the right one) and its text
    size, all in the SVG's own units."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    font: int
    labels_above: bool = False  # a funnel's stage names over its bars (a narrow box), else beside them



WIDE = Frame(720, 380, 70, 160, 20, 90, 12)  # a report's page on a desktop
COMPACT = Frame(420, 340, 52, 120, 16, 96, 16, labels_above=True)  # a dashboard widget or a phone: fewer, larger words
FUNNEL_MIN = 0.08  # the narrowest funnel bar, a share of the plot's width: an empty or tiny stage stays visible
EMPTY_STAGE = 'fill="#f1f5f9" stroke="#94a3b8" stroke-dasharray="4 3"'  # a funnel stage with nothing in it
SLANT = math.sin(math.radians(40))  # category labels too wide for their column are slanted by 40°
PALETTE = ("#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#f97316", "#64748b")
NONE = {"zh": "(空)", "en": "(none)"}
OTHERS = {"zh": "其他", "en": "Others"}
MAX_SERIES = len(PALETTE)  # more would draw two series in one colour

Series = list[tuple[str, list[float]]]
def value_text(result: ReportResult, key: str, value: Any, lang: str) -> str:
    """A dimension value as people read it: an option's or stage's label, a title, or "(none)"."""
    if value is None or value == "":
        return NONE[lang]
    label = result.value_labels.get(key, {}).get(value)
    return label.get(lang) if label else str(value)


def figure(result: ReportResult, lang: str) -> str:
    """The chart as the pages show it: drawn wide and compact, the page's style showing the one that fits its box."""
    return draw(result, lang, WIDE, ' class="chart-wide"') + draw(result, lang, COMPACT, ' class="chart-compact"')


def draw(result: ReportResult, lang: str = "zh", frame: Frame = WIDE, attributes: str = "") -> str:
    """The report's chart (its template's `chart`, else bars of every measure by the first dimension)."""
    spec = result.chart or Chart("bar")
    kind = spec.type
    dims = [c.key for c in result.dimensions]
    measures = list(spec.measures) or [c.key for c in result.measures]
    dimension = spec.dimension or (dims[0] if dims else None)
    labels = {c.key: c.label.get(lang) for c in result.columns}
    functions = {c.key: c.measure for c in result.measures}
    if len(dims) > 1 and kind in PIVOTED and (len(measures) == 1 or kind in ("stacked_bar", "heatmap")):
        # one measure by two dimensions: the other dimension's values become the series (a heat map's rows)
        other = next(d for d in dims if d != dimension)
        categories = _unique(value_text(result, dimension, r[dimension], lang) for r in result.rows)
        cells: dict[str, dict[str, float | None]] = {}  # None: no row (a heat map leaves it blank, bars draw 0)
        for r in result.rows:
            row = cells.setdefault(value_text(result, other, r[other], lang), dict.fromkeys(categories))
            column = value_text(result, dimension, r[dimension], lang)
            row[column] = (row[column] or 0.0) + _number(r.get(measures[0]))
        empty = None if kind == "heatmap" else 0.0
        series = [(name, [empty if v is None else v for v in values.values()]) for name, values in cells.items()]
        if kind != "heatmap":
            series = _fewest(series, lang)
    elif len(dims) > 1 and kind in PIVOTED and all(functions.get(m) in ADDITIVE for m in measures):
        # several counts or sums by two dimensions: each category once, its rows added up
        categories = _unique(value_text(result, dimension, r[dimension], lang) for r in result.rows)
        sums = {m: dict.fromkeys(categories, 0.0) for m in measures}
        for r in result.rows:
            for m in measures:
                sums[m][value_text(result, dimension, r[dimension], lang)] += _number(r.get(m))
        series = [(labels.get(m, m), list(sums[m].values())) for m in measures]
    elif dimension is None:
        categories = [labels.get(m, m) for m in measures]
        series = [(result.label.get(lang), [_number(result.rows[0].get(m)) if result.rows else 0.0
                                            for m in measures])]
    else:
        categories = [value_text(result, dimension, r[dimension], lang) for r in result.rows]
        series = [(labels.get(m, m), [_number(r.get(m)) for r in result.rows]) for m in measures]
    body = CHARTS[kind](frame, categories, series, lang)
    title = escape(result.label.get(lang))
    f = frame
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {f.width} {f.height}" width="{f.width}" '
            f'height="{f.height}"{attributes} role="img" aria-label="{title}" font-family="sans-serif" '
            f'font-size="{f.font}">'
            f"<title>{title}</title>{body}</svg>")


def _fewest(series: Series, lang: str) -> Series:
    """At most one series a colour: beyond MAX_SERIES (a salesperson's fifty customers), the largest (by their sum)
    in their order, then the rest added up as "others", so that the legend names each colour once and fits."""
    if len(series) <= MAX_SERIES:
        return series
    kept = {name for name, _ in sorted(series, key=lambda s: -sum(s[1]))[:MAX_SERIES - 1]}
    rest = [values for name, values in series if name not in kept]
    return [s for s in series if s[0] in kept] + [(OTHERS[lang], [sum(column) for column in zip(*rest, strict=True)])]


def _unique(values) -> list[str]:
    return list(dict.fromkeys(values))


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    return float(value) if isinstance(value, int | float | Decimal) else 0.0


def _format(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _legend(f: Frame, series: Series) -> str:
    parts, line, box = [], f.font * 1.35, f.font * 0.8
    for i, (name, _) in enumerate(series):
        y = f.top + line * i
        parts.append(f'<rect x="{f.width - f.right + 12}" y="{y:.1f}" width="{box:.1f}" height="{box:.1f}" '
                     f'fill="{PALETTE[i % 8]}"/>')
        parts.append(_text(f.width - f.right + 16 + box, y + box, _clip(name, f.right - 20 - box, f), "start"))
    return "".join(parts)


def nice_step(highest: float, ticks: int = 4, whole: bool = False) -> float:
    """The step of an axis from 0 past `highest` in about `ticks` steps, a round number a reader counts in: 1, 2,
    2.5 or 5 times a power of ten (20 for 19 in four steps: 0, 5, 10, 15, 20); for `whole` numbers (counts) a whole
    step of 1, 2 or 5 times a power of ten (0, 1, 2, 3 for 3, never 0.75)."""
    raw = (highest or 1.0) / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in ((1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)) if m * power >= raw - 1e-12)
    return max(step, 1) if whole else step


def _whole(series: Series) -> bool:
    return all(float(v).is_integer() for _, values in series for v in values)


def _width(char: str, f: Frame) -> float:
    """About how wide a character is drawn: a wide (Chinese) one a font size, others 0.6 of it."""
    return f.font * (1.0 if ord(char) > 0x2E7F else 0.6)


def _clip(text: str, room: float, f: Frame) -> str:
    """As much of `text` as fits in `room` units, with "…" where it is cut."""
    used = 0.0
    for i, char in enumerate(text):
        used += _width(char, f)
        if used > room:
            return text[:max(i - 1, 1)] + "…"
    return text


def _category_labels(f: Frame, categories: list[str], left: float, band: float, y0: float) -> str:
    """The categories' names under their columns: upright when each fits its column, else all slanted (so that
    neighbours do not overlap), each cut to the room below the plot."""
    if all(sum(_width(c, f) for c in name) <= band - 4 for name in categories):
        return "".join(_text(left + band * (i + 0.5), y0, name) for i, name in enumerate(categories))
    room = (f.height - y0 + 2) / SLANT
    parts = []
    for i, name in enumerate(categories):
        x = left + band * (i + 0.5)
        parts.append(_text(x, y0 - 4, _clip(name, room, f), "end", f' transform="rotate(-40 {x:.1f} {y0 - 4:.1f})"'))
    return "".join(parts)


def _axes(f: Frame, categories: list[str], highest: float,
          whole: bool = False) -> tuple[str, Callable[[float], float], float, Frame]:
    """The value axis (0 up to a round number past `highest`, in round steps), the category labels (slanted when
    they would overlap); returns (svg, y of a value, band width, the frame, its left margin widened to hold the
    axis's longest label: 1,000,000 in a phone's larger type)."""
    step = nice_step(highest, whole=whole)
    steps = max(math.ceil((highest or 1.0) / step - 1e-9), 1)
    top = step * steps
    f = replace(f, left=max(f.left, math.ceil(sum(_width(c, f) for c in _format(top)) + 10)))
    plot_h, plot_w = f.height - f.top - f.bottom, f.width - f.left - f.right

    def y(value: float) -> float:
        return f.top + plot_h - plot_h * value / top

    parts = [f'<line x1="{f.left}" y1="{f.top + plot_h}" x2="{f.left + plot_w}" y2="{f.top + plot_h}" '
             f'stroke="#94a3b8"/>']
    for i in range(steps + 1):
        value = step * i
        parts.append(f'<line x1="{f.left}" y1="{y(value):.1f}" x2="{f.left + plot_w}" y2="{y(value):.1f}" '
                     f'stroke="#e2e8f0"/>')
        parts.append(_text(f.left - 6, y(value) + f.font / 3, _format(value), "end"))
    band = plot_w / max(len(categories), 1)
    parts.append(_category_labels(f, categories, f.left, band, f.top + plot_h + f.font * 1.35))
    return "".join(parts), y, band, f


def _bar(f: Frame, categories: list[str], series: Series, lang: str) -> str:
    axes, y, band, f = _axes(f, categories, max((v for _, values in series for v in values), default=0),
                             _whole(series))
    width = band * 0.8 / max(len(series), 1)
    bars = []
    for s, (name, values) in enumerate(series):
        for i, value in enumerate(values):
            x = f.left + band * i + band * 0.1 + width * s
            bars.append(f'<rect x="{x:.1f}" y="{y(value):.1f}" width="{width:.1f}" height="{y(0) - y(value):.1f}" '
                        f'fill="{PALETTE[s % 8]}"><title>{escape(categories[i])} · {escape(name)}: '
                        f'{_format(value)}</title></rect>')
    return axes + "".join(bars) + _legend(f, series)


def _stacked_bar(f: Frame, categories: list[str], series: Series, lang: str) -> str:
    totals = [sum(values[i] for _, values in series) for i in range(len(categories))]
    axes, y, band, f = _axes(f, categories, max(totals, default=0), _whole(series))
    bars, base = [], [0.0] * len(categories)
    for s, (name, values) in enumerate(series):
        for i, value in enumerate(values):
            x = f.left + band * i + band * 0.15
            bars.append(f'<rect x="{x:.1f}" y="{y(base[i] + value):.1f}" width="{band * 0.7:.1f}" '
                        f'height="{y(base[i]) - y(base[i] + value):.1f}" fill="{PALETTE[s % 8]}">'
                        f'<title>{escape(categories[i])} · {escape(name)}: {_format(value)}</title></rect>')
            base[i] += value
    return axes + "".join(bars) + _legend(f, series)


def _line(f: Frame, categories: list[str], series: Series, lang: str) -> str:
    axes, y, band, f = _axes(f, categories, max((v for _, values in series for v in values), default=0),
                             _whole(series))
    lines = []
    for s, (_, values) in enumerate(series):
        points = " ".join(f"{f.left + band * (i + 0.5):.1f},{y(v):.1f}" for i, v in enumerate(values))
        lines.append(f'<polyline points="{points}" fill="none" stroke="{PALETTE[s % 8]}" stroke-width="2"/>')
    return axes + "".join(lines) + _legend(f, series)


def _pie(f: Frame, categories: list[str], series: Series, lang: str) -> str:
    values = series[0][1] if series else []
    total = sum(values)
    cx, cy, r = (f.width - f.right) / 2, f.height / 2, min(f.width - f.right, f.height) / 2 - 20
    parts, angle = [], -math.pi / 2
    for i, value in enumerate(values):
        if total <= 0 or value <= 0:
            continue
        sweep = 2 * math.pi * value / total
        if sweep >= 2 * math.pi - 1e-9:
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{PALETTE[i % 8]}"/>')
            continue
        x1, y1 = cx + r * math.cos(angle), cy + r * math.sin(angle)
        angle += sweep
        x2, y2 = cx + r * math.cos(angle), cy + r * math.sin(angle)
        large = 1 if sweep > math.pi else 0
        arc = f"M{cx:.1f},{cy:.1f} L{x1:.1f},{y1:.1f} A{r:.1f},{r:.1f} 0 {large} 1 {x2:.1f},{y2:.1f} Z"
        parts.append(f'<path d="{arc}" fill="{PALETTE[i % 8]}">'
                     f"<title>{escape(categories[i])}: {_format(value)}</title></path>")
    return "".join(parts) + _legend(f, [(c, []) for c in categories])


def _funnel(f: Frame, categories: list[str], series: Series, lang: str) -> str:
    """Centred bars, one per stage, as wide as its value against the largest (a small one never narrower than
    FUNNEL_MIN of the box, an empty stage a faint dashed placeholder of that width); each stage's name and value
    beside its bar, or, in a narrow box (`labels_above`), over it on the box's whole width, so that a phone reads
    them whole."""
    values = series[0][1] if series else []
    top = max(values, default=0) or 1.0
    step = (f.height - f.top - 20) / max(len(values), 1)
    left, right = (8, 8) if f.labels_above else (f.left, f.right)
    plot_w = f.width - left - right
    centre, parts = left + plot_w / 2, []
    for i, value in enumerate(values):
        width = max(plot_w * value / top, plot_w * FUNNEL_MIN)
        paint = f'fill="{PALETTE[i % 8]}"' if value else EMPTY_STAGE
        y, height = f.top + step * i, step * 0.85
        if f.labels_above:  # "name · value" on a line of its own, the bar under it
            caption = _clip(categories[i], plot_w - _width("0", f) * (len(_format(value)) + 3), f)
            parts.append(f'<text x="{centre:.1f}" y="{y + f.font:.1f}" text-anchor="middle">{escape(caption)}'
                         f'<tspan fill="#52606d"> · {_format(value)}</tspan></text>')
            y, height = y + f.font * 1.3, height - f.font * 1.3
        parts.append(f'<rect x="{centre - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
                     f'{paint}><title>{escape(categories[i])}: {_format(value)}</title></rect>')
        if not f.labels_above:
            parts.append(_text(f.width - f.right + 8, y + step * 0.5, _clip(categories[i], f.right - 8, f), "start"))
            parts.append(_text(f.width - f.right + 8, y + step * 0.5 + f.font * 1.2, _format(value), "start",
                               ' fill="#52606d"'))
    return "".join(parts)


def _heatmap(f: Frame, categories: list[str], series: Series, lang: str) -> str:
    """A matrix: a row per series (the second dimension's values), a column per category, each cell shaded by its
    value against the largest and labelled with it (0 the palest); a pair with no row is a blank cell."""
    rows = max(len(series), 1)
    left, top, bottom = f.font * 7, f.top + 4, f.bottom - 16  # the rows' names at the left, the columns' below
    cell_w, cell_h = (f.width - left - 20) / max(len(categories), 1), (f.height - top - bottom) / rows
    highest = max((v for _, values in series for v in values if v is not None), default=0) or 1.0
    parts = []
    for r, (name, values) in enumerate(series):
        y = top + cell_h * r
        parts.append(_text(left - 8, y + cell_h / 2 + f.font / 3, _clip(name, left - 8, f), "end"))
        for c, value in enumerate(values):
            x = left + cell_w * c
            if value is None:  # no row for the pair: a blank cell
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell_w:.1f}" height="{cell_h:.1f}" '
                             f'fill="#f8fafc" stroke="#e2e8f0"/>')
                continue
            share = value / highest
            shade = _blend("#eff6ff", "#1d4ed8", share)
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell_w:.1f}" height="{cell_h:.1f}" fill="{shade}" '
                         f'stroke="#e2e8f0"><title>{escape(name)} · {escape(categories[c])}: {_format(value)}</title>'
                         f"</rect>")
            if cell_w >= f.font * 2.4 and cell_h >= f.font * 1.2:
                ink = "#ffffff" if share > 0.55 else "#1f2933"
                parts.append(_text(x + cell_w / 2, y + cell_h / 2 + f.font / 3, _format(value),
                                   extra=f' fill="{ink}"'))
    parts.append(_category_labels(f, categories, left, cell_w, top + cell_h * rows + f.font * 1.35))
    return "".join(parts)


def _blend(light: str, dark: str, share: float) -> str:
    """The colour `share` (0..1) of the way from `light` to `dark` (#rrggbb)."""
    a, b = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in (light, dark))
    return "#" + "".join(f"{round(x + (y - x) * min(max(share, 0), 1)):02x}" for x, y in zip(a, b, strict=True))


# the chart kinds a report template's `chart.type` names: (frame, category labels, [(series name, values)], lang)
# -> the SVG's body
CHARTS: dict[str, Callable[[Frame, list[str], Series, str], str]] = {
    "bar": _bar, "stacked_bar": _stacked_bar, "line": _line, "pie": _pie, "funnel": _funnel, "heatmap": _heatmap,
}
PIVOTED = {"bar", "stacked_bar", "line", "heatmap"}  # drawn by two dimensions without repeating a category
ADDITIVE = {"count", "sum"}  # measures whose rows add up to their category's figure
