"""Reports in four formats from one report object: JSON, HTML, Markdown and CSV.

JSON is the report model's serialization. HTML (self-contained: inline CSS with print rules,
inline SVG charts, no scripts) and Markdown come from the jinja2 templates in ``templates/``.
CSV is long-format (``section, item, field, value``), one row per number, so every figure of
the report is in it and a spreadsheet can pivot it.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from pydantic import BaseModel

from riskrelay.reporting.charts import Bar, Ratio, Series, bar_chart, grouped_bars, ratio_chart
from riskrelay.reporting.model import MonthlyReport, WeeklyReport
from riskrelay.reporting.reports import category_label

Report = WeeklyReport | MonthlyReport


class ReportFormat(StrEnum):
    JSON = "json"
    HTML = "html"
    MARKDOWN = "md"
    CSV = "csv"

    @property
    def media_type(self) -> str:
        return {
            ReportFormat.JSON: "application/json",
            ReportFormat.HTML: "text/html; charset=utf-8",
            ReportFormat.MARKDOWN: "text/markdown; charset=utf-8",
            ReportFormat.CSV: "text/csv; charset=utf-8",
        }[self]

    @property
    def extension(self) -> str:
        return self.value


def _num(value: float | None, digits: int = 1, missing: str = "–") -> str:
    if value is None:
        return missing
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _signed_pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}%"


def _when(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _day(value: datetime) -> str:
    return value.strftime("%a %d %b %Y")


def _day_before(value: datetime) -> str:
    return _day(value - timedelta(days=1))


def _markdown_cell(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("riskrelay.reporting", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )
    env.filters.update(
        num=_num,
        pct=_pct,
        signed_pct=_signed_pct,
        when=_when,
        day=_day,
        day_before=_day_before,
        md=_markdown_cell,
        category=category_label,
        count=_count,
        coverage_text=_coverage_text,
    )
    return env


def weekly_charts(report: WeeklyReport) -> dict[str, Markup]:
    bars = [Bar(i.key, i.label, i.tickets) for i in report.flagged_tickets.by_level]
    return {"levels": bar_chart("Risk-flagged tickets by level", bars)}


COVERAGE_TEXT = {"future": "not begun", "no_data": "no data"}


def _coverage_text(coverage: str) -> str:
    """How a period or week without figures is shown: never as a zero."""
    return COVERAGE_TEXT.get(coverage, "")


def _count(value: int | None, missing: str = "no data") -> str:
    return missing if value is None else str(value)


def monthly_charts(report: MonthlyReport) -> dict[str, Markup]:
    weeks = [w.week for w in report.weekly_trend.weeks]
    blanks = [COVERAGE_TEXT.get(w.coverage) for w in report.weekly_trend.weeks]
    series = [
        Series(
            s.key,
            s.label,
            [p.tickets for p in s.weeks],
            [p.ci_low for p in s.weeks],
            [p.ci_high for p in s.weeks],
        )
        for s in report.weekly_trend.by_level
    ]
    change = report.month_over_month
    ratios = [
        Ratio(c.label, c.rate_ratio, c.ci_low, c.ci_high)
        for c in [change.total, *change.by_level, *change.by_category]
        if c.tested and (c.current or c.previous)
    ]
    return {
        "trend_levels": grouped_bars(
            "Weekly risk-flagged tickets by level", weeks, series, blanks=blanks
        ),
        "ratios": ratio_chart("Month-over-month rate ratios", ratios),
    }


def _template_stem(report: Report) -> str:
    return "weekly" if isinstance(report, WeeklyReport) else "monthly"


def render_html(report: Report) -> str:
    charts = weekly_charts(report) if isinstance(report, WeeklyReport) else monthly_charts(report)
    template = environment().get_template(f"{_template_stem(report)}.html.j2")
    return template.render(report=report, charts=charts)


def render_markdown(report: Report) -> str:
    template = environment().get_template(f"{_template_stem(report)}.md.j2")
    return template.render(report=report)


def _item_id(item: dict[str, Any], index: int) -> str:
    for name in ("key", "risk_id", "week", "level"):
        if item.get(name) is not None:
            return str(item[name])
    return "all" if "level" in item else str(index)


def _flatten(section: str, item: str, value: Any, rows: list[list[str]]) -> None:
    if isinstance(value, dict):
        scalars = {k: v for k, v in value.items() if not isinstance(v, dict | list)}
        for name, inner in scalars.items():
            rows.append([section, item, name, "" if inner is None else str(inner)])
        prefix = f"{section}[{item}]" if item else section
        for name, inner in value.items():
            if isinstance(inner, dict | list):
                _flatten(f"{prefix}.{name}" if prefix else name, "", inner, rows)
    elif isinstance(value, list):
        for index, element in enumerate(value):
            if isinstance(element, dict):
                _flatten(section, _item_id(element, index), element, rows)
            else:
                rows.append([section, item, str(index), str(element)])


def render_csv(report: BaseModel) -> str:
    rows: list[list[str]] = []
    _flatten("", "", report.model_dump(mode="json"), rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", "item", "field", "value"])
    writer.writerows(rows)
    return buffer.getvalue()


def render_json(report: BaseModel) -> str:
    return report.model_dump_json(indent=2) + "\n"


def render(report: Report, fmt: ReportFormat) -> str:
    if fmt is ReportFormat.JSON:
        return render_json(report)
    if fmt is ReportFormat.HTML:
        return render_html(report)
    if fmt is ReportFormat.MARKDOWN:
        return render_markdown(report)
    return render_csv(report)
