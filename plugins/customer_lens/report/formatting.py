"""How the report writes numbers, dates, KPIs and the codes of the marts (pure functions, standard library only)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

# Headline KPIs of analytics.baseline_kpis: label, kind of value, and which direction is good.
KPI_INFO: dict[str, tuple[str, str, int]] = {
    "customers": ("Customers", "count", 1),
    "active_customers": ("Active customers", "count", 1),
    "revenue": ("Revenue, lifetime", "money", 1),
    "gross_margin": ("Gross margin, lifetime", "money", 1),
    "nps": ("NPS, last 12 months", "score", 1),
    "complaint_rate": ("Complaints per 100 customers, 90 days", "rate", -1),
    "lost_customers": ("Lost customers", "count", -1),
}


def as_float(value: Any) -> float | None:
    """A number of the warehouse (Decimal, int or float) as a float; anything else (None) as None."""
    return float(value) if isinstance(value, Decimal | int | float) else None


def count(value: Any) -> str:
    return "–" if value is None else f"{round(float(value)):,}"


def money(value: Any) -> str:
    if value is None:
        return "–"
    v = float(value)
    for limit, suffix in ((1e9, " bn"), (1e6, " M"), (1e3, " k")):
        if abs(v) >= limit:
            return f"{v / limit:,.{1 if abs(v) < limit * 100 else 0}f}{suffix}"
    return f"{v:,.0f}"


def pct(value: Any, *, signed: bool = False, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{float(value):{'+' if signed else ''},.{digits}f} %"


def number(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{float(value):,.{digits}f}"


def delta(value: Any, good_direction: int) -> str:
    """CSS class of a change: good, bad or flat, given which direction is good."""
    v = as_float(value)
    if v is None or abs(v) < 0.05:
        return "flat"
    return "good" if (v > 0) == (good_direction > 0) else "bad"


def change(value: Any, good_direction: int) -> tuple[str, str]:
    """A table cell (text, css class) of a change in per cent: ``+3.2 %`` coloured good, bad or flat."""
    return pct(value, signed=True), delta(value, good_direction)


def label(code: Any) -> str:
    """``potential_loyalist`` → ``Potential loyalist`` (codes of the marts shown to people)."""
    if code is None:
        return "Not stated"
    text = str(code).replace("_", " ")
    return {"cant lose": "Can't lose", "none": "Not segmented", "all": "All customers"}.get(
        text, text[:1].upper() + text[1:]
    )


def date(value: dt.date | dt.datetime | None) -> str:
    return "–" if value is None else f"{value:%-d %b %Y}"


def last_day(interval_end: dt.datetime | None) -> str:
    """The last day a data interval ``[start, end)`` covers."""
    return "–" if interval_end is None else date((interval_end - dt.timedelta(microseconds=1)).date())


def quarter(value: dt.date) -> str:
    return f"{value.year} Q{(value.month - 1) // 3 + 1}"


def tenure(days: int | None) -> str:
    """How long a customer stayed: years from a year on, months below."""
    if days is None:
        return "–"
    return f"{days / 365.25:.1f} y" if days >= 365 else f"{days // 30} mo"


def kpi_info(kpi: str) -> tuple[str, str, int]:
    """Label, kind of value and good direction of a KPI (an unknown one: its code as label, a number, up)."""
    return KPI_INFO.get(kpi, (label(kpi), "number", 1))


def kpi_rank(kpi: str) -> tuple[int, str]:
    """Sort key of KPIs: the order of :data:`KPI_INFO`, unknown ones after them by name."""
    order = list(KPI_INFO)
    return (order.index(kpi) if kpi in order else 99, kpi)


def kpi_value(kind: str, value: Any) -> str:
    if kind == "money":
        return money(value)
    if kind == "count":
        return count(value)
    return number(value, 1)
