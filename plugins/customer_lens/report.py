"""The Customer Lens report: one self-contained HTML file drawn from the current baseline.

``lens report`` (and the end of ``lens run``) calls :func:`render`. The report reads only what BI reads —
the ``analytics`` views of the current baseline (no PII columns: customers appear by ``customer_id``),
``analytics.baseline_kpis`` and the ``lens_audit`` tables — and shows:

1. segment sizes and value (RFM segments, value tiers, segment sizes over time);
2. segment migrations between the last two snapshots;
3. complaint trends per category, month over month and year over year;
4. the five guerrilla metrics per customer group over time, and why customers renew;
5. NPS and CSAT by segment;
6. the lost-customer review: the ten most valuable customers lost in the last complete month;
7. baseline history: every KPI against the previous and the first baseline;
8. the latest validation result.

Every figure is aggregated in PostgreSQL; Python only reshapes a few hundred rows at most. A section whose
views are missing or empty says "no data yet" instead of failing, and a report written before the first
baseline says so at the top. Charts are Plotly figures; plotly.js is inlined once, so the file opens
offline (no CDN, no request leaves the file). Plotly and Jinja are imported inside :func:`render`:
Airflow DAG files import this package.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from customer_lens.config import settings as settings_mod
from customer_lens.local import warehouse

log = logging.getLogger(__name__)

REPORT_NAME = "customer_lens.html"
TEMPLATES_DIR = Path(__file__).with_name("report_templates")

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
INK, MUTED, GRID = "#1f2937", "#6b7280", "#eceff3"

# Best to worst, so every chart lists segments in the same order and colour.
SEGMENT_COLORS = {
    "champions": "#1b7f3b",
    "loyal": "#3fa34d",
    "potential_loyalist": "#8cc084",
    "new": "#3b82c4",
    "promising": "#7fb3e0",
    "needs_attention": "#e0b43a",
    "about_to_sleep": "#f08c3a",
    "at_risk": "#d9542b",
    "cant_lose": "#a51d2d",
    "hibernating": "#8d7f9e",
    "lost": "#5b5b66",
    "unsegmented": "#b8bec7",
    "unmatched": "#d5d9df",
    "none": "#d5d9df",
}
TIER_COLORS = {
    "power_player": "#5b2a86",
    "core": "#3b82c4",
    "low_margin": "#e0b43a",
    "long_tail": "#9bb7cf",
    "inactive": "#b8bec7",
    "unsegmented": "#d5d9df",
    "unknown": "#e5e7eb",
    "none": "#d5d9df",
}
PALETTE = ["#3b82c4", "#e07b39", "#3fa34d", "#a51d2d", "#7c5cbf", "#2a9d8f", "#d4a017", "#8d6e63", "#e377c2", "#6b7280"]

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

LOSS_TYPES = {"no_purchase": "No purchase", "contract_expired": "Expired", "contract_cancelled": "Cancelled"}

# Groups of the attribute dimension (default region) beyond this many are folded into "other".
ATTRIBUTE_TOP_GROUPS = 8
# NPS/CSAT figures from fewer answers than this are drawn pale (too few to trust).
MIN_RESPONSES = 30
FIXED_GROUP_TYPES = ("all", "value_tier", "segment")


class ReportError(RuntimeError):
    """The report could not be written; the message says what failed and where to look."""


class _NoData(Exception):
    """A section has nothing to show yet (its message says why)."""


# --- what a section is made of ----------------------------------------------------------------------


@dataclass
class Chart:
    name: str
    html: str
    kind: str = "chart"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]  # a cell is a string, or (text, css class), or (text, css class, small note)
    numeric: frozenset[int] = frozenset()  # right-aligned columns
    caption: str | None = None
    kind: str = "table"


@dataclass
class Note:
    text: str
    tone: str = "info"  # info | ok | warn | bad
    link: str | None = None  # a local file (file:// URI) shown after the text
    kind: str = "note"


@dataclass
class Section:
    key: str
    nav: str
    title: str
    intro: str
    blocks: list[Chart | Table | Note] = field(default_factory=list)
    empty: str | None = None
    error: str | None = None
    not_applicable: str | None = None  # no source gives what the section shows (it is not missing data)


# Sections that show one source's data: without that input configured they are "not applicable".
SECTION_INPUTS = {"complaints": "service.tickets", "nps": "survey.responses"}


@dataclass
class KpiCard:
    label: str
    value: str
    vs_previous: tuple[str, str] | None  # (text, css class)
    vs_first: tuple[str, str] | None


@dataclass
class Header:
    generated_at: dt.datetime
    baseline: dict[str, Any] | None
    as_of: dt.date | None
    cards: list[KpiCard]
    quarantined: dict[str, Any] | None = None  # the latest validation, when it failed


# --- formatting -------------------------------------------------------------------------------------


def _f(value: Any) -> float | None:
    return float(value) if isinstance(value, Decimal | int | float) else None


def _count(value: Any) -> str:
    return "–" if value is None else f"{round(float(value)):,}"


def _money(value: Any) -> str:
    if value is None:
        return "–"
    v = float(value)
    for limit, suffix in ((1e9, " bn"), (1e6, " M"), (1e3, " k")):
        if abs(v) >= limit:
            return f"{v / limit:,.{1 if abs(v) < limit * 100 else 0}f}{suffix}"
    return f"{v:,.0f}"


def _pct(value: Any, *, signed: bool = False, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{float(value):{'+' if signed else ''},.{digits}f} %"


def _number(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{float(value):,.{digits}f}"


def _kpi_value(kind: str, value: Any) -> str:
    if kind == "money":
        return _money(value)
    if kind == "count":
        return _count(value)
    return _number(value, 1)


def _delta(value: Any, good_direction: int) -> str:
    """CSS class of a change: good, bad or flat, given which direction is good."""
    v = _f(value)
    if v is None or abs(v) < 0.05:
        return "flat"
    return "good" if (v > 0) == (good_direction > 0) else "bad"


def _label(code: Any) -> str:
    """``potential_loyalist`` → ``Potential loyalist`` (codes of the marts shown to people)."""
    if code is None:
        return "Not stated"
    text = str(code).replace("_", " ")
    return {"cant lose": "Can't lose", "none": "Not segmented", "all": "All customers"}.get(
        text, text[:1].upper() + text[1:]
    )


def _date(value: dt.date | dt.datetime | None) -> str:
    return "–" if value is None else f"{value:%-d %b %Y}"


def _last_day(interval_end: dt.datetime | None) -> str:
    """The last day a data interval ``[start, end)`` covers."""
    return "–" if interval_end is None else _date((interval_end - dt.timedelta(microseconds=1)).date())


def _quarter(value: dt.date) -> str:
    return f"{value.year} Q{(value.month - 1) // 3 + 1}"


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _ordered(values: Iterable[str], order: Iterable[str]) -> list[str]:
    rank = {v: i for i, v in enumerate(order)}
    return sorted(set(values), key=lambda v: (rank.get(v, len(rank)), v))


# --- the warehouse side -----------------------------------------------------------------------------


class _Db:
    """Queries of the report, all in one read-only transaction (see :func:`render`)."""

    def __init__(self, conn, base: Path | None = None):
        self.conn = conn
        self.base = base  # the report's folder: links to other files are relative to it

    def missing(self, *relations: str) -> list[str]:
        return [r for r in relations if self.conn.execute("select to_regclass(%s)", (r,)).fetchone()[0] is None]

    def require(self, *relations: str) -> None:
        gone = self.missing(*relations)
        if gone:
            raise _NoData(f"{', '.join(gone)} not there yet (it appears with the first baseline).")

    def rows(self, query: str, params: tuple = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()

    def one(self, query: str, params: tuple = ()) -> dict[str, Any] | None:
        found = self.rows(query, params)
        return found[0] if found else None


def _connect(cfg: settings_mod.Settings):
    import psycopg

    url = warehouse.url(cfg=cfg)
    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        where = "LENS_WAREHOUSE_URL" if cfg.warehouse_url else "`lens warehouse status`"
        raise ReportError(f"cannot reach the warehouse ({_first_line(exc)}); check {where}") from exc
    conn.read_only = True
    return conn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _lock_analytics(conn) -> None:
    """Hold the ``analytics`` views (ACCESS SHARE) for the whole report: one baseline, never a mix.

    A promotion replaces every view in one transaction and takes its locks without waiting (and retries),
    so it simply happens after the report has read; the snapshot tables under the views never change.
    """
    from psycopg import sql

    views = [
        r[0]
        for r in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'analytics' and c.relkind in ('v', 'r', 'm') order by 1"
        ).fetchall()
    ]
    if views:
        conn.execute("set local lock_timeout = '60s'")
        conn.execute(
            sql.SQL("lock table {} in access share mode").format(
                sql.SQL(", ").join(sql.Identifier("analytics", v) for v in views)
            )
        )


# --- charts -----------------------------------------------------------------------------------------

_PLOTLY_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}


def _template():
    import plotly.graph_objects as go

    axis = {"gridcolor": GRID, "linecolor": "#d1d5db", "zerolinecolor": "#d1d5db", "automargin": True}
    return go.layout.Template(
        layout={
            "font": {"family": FONT, "size": 12, "color": INK},
            "paper_bgcolor": "white",
            "plot_bgcolor": "white",
            "colorway": PALETTE,
            "xaxis": axis,
            "yaxis": axis,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "font": {"size": 11}},
            "hoverlabel": {"font": {"family": FONT}},
            "hovermode": "closest",
            "bargap": 0.25,
        }
    )


def _chart(fig, name: str, *, height: int = 420) -> Chart:
    from markupsafe import Markup

    fig.update_layout(template=_template(), height=height)
    for annotation in fig.layout.annotations or ():  # subplot titles: small and muted, like the notes
        annotation.font = {"size": 12, "color": MUTED}
    html = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"chart-{name}",
        config=_PLOTLY_CONFIG,
        default_height=f"{height}px",
    )
    return Chart(name, Markup(html))  # plotly's own markup for our figure


# --- header -----------------------------------------------------------------------------------------


def _current_baseline(db: _Db) -> dict[str, Any] | None:
    """The baseline the ``analytics`` views show (``analytics.baseline_info``), or None before the first."""
    columns = "baseline_no, snapshot_id, promoted_at, promoted_by, reason, data_interval_end"
    if not db.missing("analytics.baseline_info"):
        return db.one(f"select {columns} from analytics.baseline_info")
    if not db.missing("lens_audit.baselines"):
        return db.one(f"select {columns} from lens_audit.baselines where status = 'current'")
    return None


def _header(db: _Db) -> Header:
    now = dt.datetime.now(dt.UTC)
    baseline = _current_baseline(db)
    as_of = None
    if not db.missing("analytics.customers"):
        as_of = db.one("select max(as_of_date) as as_of from analytics.customers")["as_of"]
    cards = []
    if baseline and not db.missing("analytics.baseline_kpis"):
        rows = db.rows(
            "select kpi, value, change_pct_vs_previous, change_pct_vs_first, previous_value "
            "from analytics.baseline_kpis where baseline_no = %s",
            (baseline["baseline_no"],),
        )
        order = list(KPI_INFO)
        for row in sorted(rows, key=lambda r: (order.index(r["kpi"]) if r["kpi"] in order else 99, r["kpi"])):
            label, kind, good = KPI_INFO.get(row["kpi"], (_label(row["kpi"]), "number", 1))
            previous = row["change_pct_vs_previous"] if row["previous_value"] is not None else None
            cards.append(
                KpiCard(
                    label,
                    _kpi_value(kind, row["value"]),
                    None if previous is None else (_pct(previous, signed=True), _delta(previous, good)),
                    None
                    if baseline["baseline_no"] == 1 or row["change_pct_vs_first"] is None
                    else (_pct(row["change_pct_vs_first"], signed=True), _delta(row["change_pct_vs_first"], good)),
                )
            )
    quarantined = None
    if not db.missing("lens_audit.validation_runs", "lens_audit.snapshots"):
        latest = db.one(
            "select r.snapshot_id, r.finished_at, r.passed, r.expectations_failed, s.status "
            "from lens_audit.validation_runs r join lens_audit.snapshots s using (snapshot_id) "
            "order by r.finished_at desc limit 1"
        )
        quarantined = latest if latest and not latest["passed"] and latest["status"] == "quarantined" else None
    return Header(now, baseline, as_of, cards, quarantined)


# --- 1. segments ------------------------------------------------------------------------------------


def _segments(db: _Db) -> list:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    db.require("analytics.customer_segments")
    by_segment = db.rows(
        "select rfm_segment as segment, count(*) as customers, sum(trailing_revenue) as revenue, "
        "sum(trailing_gross_margin) as gross_margin, max(snapshot_date) as snapshot_date "
        "from analytics.customer_segments where is_latest_snapshot group by rfm_segment"
    )
    if not by_segment:
        raise _NoData("No customer has a segment yet (no completed order).")
    by_tier = db.rows(
        "select coalesce(value_tier, 'unknown') as tier, count(*) as customers, sum(trailing_revenue) as revenue, "
        "sum(greatest(trailing_gross_margin, 0)) as gross_margin "
        "from analytics.customer_segments where is_latest_snapshot group by 1"
    )
    history = db.rows(
        "select snapshot_date, rfm_segment as segment, count(*) as customers "
        "from analytics.customer_segments group by 1, 2 order by 1"
    )
    blocks: list = []
    snapshot = max(r["snapshot_date"] for r in by_segment)
    total = sum(r["customers"] for r in by_segment)
    blocks.append(
        Note(
            f"{total:,} customers with at least one purchase, segmented on {_date(snapshot)}; "
            "value is that of the trailing 12 months."
        )
    )

    # Segments: customers, revenue and margin side by side, best segment on top.
    rows = {r["segment"]: r for r in by_segment}
    order = list(reversed(_ordered(rows, SEGMENT_COLORS)))
    fig = make_subplots(
        rows=1,
        cols=3,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=("Customers", "Revenue, 12 months", "Gross margin, 12 months"),
    )
    for col, (key, fmt) in enumerate((("customers", _count), ("revenue", _money), ("gross_margin", _money)), start=1):
        values = [_f(rows[s][key]) or 0.0 for s in order]
        fig.add_trace(
            go.Bar(
                y=[_label(s) for s in order],
                x=values,
                orientation="h",
                marker_color=[SEGMENT_COLORS.get(s, "#9ca3af") for s in order],
                text=[fmt(v) for v in values],
                textposition="auto",
                cliponaxis=False,
                hovertemplate="%{y}: %{text}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(showticklabels=False, showgrid=False)
    fig.update_layout(margin={"t": 30})
    blocks.append(_chart(fig, "segments", height=420))

    # Value tiers: share of customers against share of revenue and margin ("the few power players").
    tiers = {r["tier"]: r for r in by_tier}
    tier_order = _ordered(tiers, TIER_COLORS)
    totals = {k: sum(_f(r[k]) or 0.0 for r in by_tier) for k in ("customers", "revenue", "gross_margin")}
    fig = go.Figure()
    for key, label, color in (
        ("customers", "Share of customers", "#b8c4d6"),
        ("revenue", "Share of revenue", "#3b82c4"),
        ("gross_margin", "Share of gross margin", "#5b2a86"),
    ):
        shares = [100 * (_f(tiers[t][key]) or 0.0) / totals[key] if totals[key] else 0.0 for t in tier_order]
        fig.add_trace(
            go.Bar(
                x=[_label(t) for t in tier_order],
                y=shares,
                name=label,
                marker_color=color,
                text=[f"{s:.0f} %" for s in shares],
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{x}: %{y:.1f} %<extra>" + label + "</extra>",
            )
        )
    fig.update_yaxes(ticksuffix=" %", rangemode="tozero")
    fig.update_layout(barmode="group", margin={"t": 60})
    power = tiers.get("power_player")
    if power and totals["customers"] and totals["gross_margin"]:
        blocks.append(
            Note(
                f"{power['customers']:,} power players ({100 * power['customers'] / totals['customers']:.1f} % of "
                f"customers) carry {100 * (_f(power['gross_margin']) or 0) / totals['gross_margin']:.0f} % of the "
                "gross margin of the last 12 months."
            )
        )
    blocks.append(_chart(fig, "value-tiers", height=360))

    # Segment sizes over time (snapshots are month ends; the last one is the as-of date).
    series: dict[str, dict[dt.date, int]] = {}
    for r in history:
        series.setdefault(r["segment"], {})[r["snapshot_date"]] = r["customers"]
    dates = sorted({r["snapshot_date"] for r in history})
    fig = go.Figure()
    for segment in _ordered(series, SEGMENT_COLORS):
        fig.add_trace(
            go.Scatter(
                x=dates,
                y=[series[segment].get(d, 0) for d in dates],
                name=_label(segment),
                stackgroup="segments",
                mode="lines",
                line={"width": 0.6, "color": SEGMENT_COLORS.get(segment, "#9ca3af")},
                fillcolor=_rgba(SEGMENT_COLORS.get(segment, "#9ca3af"), 0.82),
                hovertemplate="%{x|%b %Y}: %{y:,} customers<extra>" + _label(segment) + "</extra>",
            )
        )
    fig.update_yaxes(title_text="customers")
    fig.update_layout(hovermode="x unified", margin={"t": 70})
    blocks.append(_chart(fig, "segment-history", height=400))
    return blocks


# --- 2. migrations ----------------------------------------------------------------------------------


def _migrations(db: _Db) -> list:
    import plotly.graph_objects as go

    db.require("analytics.segment_migrations")
    rows = db.rows(
        "select segment_type, from_segment, to_segment, customers, previous_snapshot_date, snapshot_date "
        "from analytics.segment_migrations "
        "where snapshot_date = (select max(snapshot_date) from analytics.segment_migrations)"
    )
    if not rows:
        raise _NoData("No segment snapshots yet.")
    blocks: list = []
    for segment_type, title, colors in (
        ("rfm_segment", "RFM segment", SEGMENT_COLORS),
        ("value_tier", "Value tier", TIER_COLORS),
    ):
        moves = [r for r in rows if r["segment_type"] == segment_type and r["customers"]]
        if not moves:
            continue
        froms = [s for s in _ordered({r["from_segment"] for r in moves}, colors) if s != "none"]
        if any(r["from_segment"] == "none" for r in moves):
            froms.append("none")
        tos = _ordered({r["to_segment"] for r in moves}, colors)
        counts = {(r["from_segment"], r["to_segment"]): r["customers"] for r in moves}
        row_totals = {f: sum(counts.get((f, t), 0) for t in tos) for f in froms}
        share = [[100 * counts.get((f, t), 0) / row_totals[f] if row_totals[f] else 0 for t in tos] for f in froms]
        text = [[f"{counts[(f, t)]:,}" if counts.get((f, t)) else "" for t in tos] for f in froms]
        fig = go.Figure(
            go.Heatmap(
                z=share,
                x=[_label(t) for t in tos],
                y=[_label(f) for f in froms],
                text=text,
                texttemplate="%{text}",
                textfont={"size": 11},
                colorscale=[[0, "#f7fafd"], [0.15, "#cfe0f1"], [0.5, "#6aa2d6"], [1, "#1d4f91"]],
                zmin=0,
                zmax=100,
                xgap=2,
                ygap=2,
                colorbar={"title": {"text": "% of row", "side": "right"}, "ticksuffix": " %", "thickness": 12},
                hovertemplate="from %{y} to %{x}: %{text} customers (%{z:.1f} % of %{y})<extra></extra>",
            )
        )
        fig.update_yaxes(autorange="reversed", title_text="previous snapshot", showgrid=False)
        fig.update_xaxes(side="top", title_text=f"{title} now", showgrid=False)
        fig.update_layout(margin={"t": 10})
        total = sum(counts.values())
        stayed = sum(v for (f, t), v in counts.items() if f == t)
        new = sum(v for (f, _), v in counts.items() if f == "none")
        previous = max((r["previous_snapshot_date"] for r in moves if r["previous_snapshot_date"]), default=None)
        blocks.append(
            Note(
                f"{title}s from {_date(previous)} to {_date(moves[0]['snapshot_date'])}: "
                f"{stayed:,} of {total:,} customers stayed ({100 * stayed / total:.0f} %), "
                f"{total - stayed - new:,} moved, {new:,} were segmented for the first time."
            )
        )
        blocks.append(_chart(fig, f"migrations-{segment_type.replace('_', '-')}", height=120 + 34 * len(froms)))
    if not blocks:
        raise _NoData("No customer in the latest segment snapshot.")
    return blocks


# --- 3. complaints ----------------------------------------------------------------------------------


def _complaints(db: _Db) -> list:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    db.require("analytics.complaint_trends")
    rows = db.rows(
        "select month_start_date, ticket_category as category, complaints, "
        "complaints_per_100_active_customers as per_100, complaints_mom_pct_change as mom, "
        "complaints_yoy_pct_change as yoy, complaints_rolling_3m_avg as avg_3m, trend_direction, "
        "is_complete_month from analytics.complaint_trends "
        "where ticket_channel = 'all' and rfm_segment = 'all' order by month_start_date, ticket_category"
    )
    complete = [r for r in rows if r["is_complete_month"]]
    if not complete:
        raise _NoData("No complete month of complaints yet.")
    months = sorted({r["month_start_date"] for r in complete})
    by_key = {(r["month_start_date"], r["category"]): r for r in complete}
    volume: dict[str, int] = {}
    for r in complete:
        if r["category"] != "all":
            volume[r["category"]] = volume.get(r["category"], 0) + r["complaints"]
    categories = sorted(volume, key=lambda c: -volume[c])
    colors = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(categories)}

    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.68, 0.32],
        subplot_titles=("Complaints per month, by category", "Complaints per 100 active customers"),
    )
    for category in categories:
        fig.add_trace(
            go.Bar(
                x=months,
                y=[by_key[(m, category)]["complaints"] if (m, category) in by_key else 0 for m in months],
                name=_label(category),
                marker_color=colors[category],
                hovertemplate="%{x|%b %Y}: %{y:,}<extra>" + _label(category) + "</extra>",
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=months,
            y=[_f(by_key[(m, "all")]["per_100"]) if (m, "all") in by_key else None for m in months],
            name="per 100 active customers",
            mode="lines+markers",
            line={"color": INK, "width": 2},
            marker={"size": 4},
            showlegend=False,
            hovertemplate="%{x|%b %Y}: %{y:.2f} per 100 active customers<extra></extra>",
        ),
        row=2,
        col=1,
    )
    fig.update_layout(barmode="stack", hovermode="x unified", legend_traceorder="normal", margin={"t": 70})
    fig.update_xaxes(dtick="M3", tickformat="%b %Y")
    blocks: list = [_chart(fig, "complaints", height=520)]

    latest = months[-1]
    detail = [by_key[(latest, c)] for c in ["all", *categories] if (latest, c) in by_key]
    trend_class = {"rising": "bad", "falling": "good", "stable": "flat", "insufficient_data": "flat"}
    table_rows = []
    for r in detail:
        table_rows.append(
            [
                (_label(r["category"]), "strong" if r["category"] == "all" else ""),
                _count(r["complaints"]),
                _number(r["per_100"], 2),
                (_pct(r["mom"], signed=True), _delta(r["mom"], -1)),
                (_pct(r["yoy"], signed=True), _delta(r["yoy"], -1)),
                _number(r["avg_3m"], 1),
                (_label(r["trend_direction"]), "badge " + trend_class.get(r["trend_direction"], "flat")),
            ]
        )
    partial = [m for m in {r["month_start_date"] for r in rows} if m > latest]
    caption = f"{latest:%B %Y}, the last complete month."
    if partial:
        caption += f" The running month ({max(partial):%B %Y}) is left out of the charts and the table."
    blocks.append(
        Table(
            ["Category", "Complaints", "Per 100 active", "MoM", "YoY", "3-month avg", "Trend (3 vs 3 months)"],
            table_rows,
            numeric=frozenset({1, 2, 3, 4, 5}),
            caption=caption,
        )
    )
    return blocks


# --- 4. guerrilla metrics ---------------------------------------------------------------------------

GUERRILLA_PANELS = (
    ("new_customers", "1 · New customers", _count),
    ("new_customer_revenue", "1 · Value of new customers", _money),
    ("lost_customers", "2 · Lost customers", _count),
    ("lost_customer_value", "2 · Value of lost customers (12 months before the loss)", _money),
    ("renewals", "3 · Contract renewals", _count),
    ("referrals", "5 · Referrals from the group", _count),
    ("revenue", "4 · Revenue", _money),
    ("gross_margin_pct", "4 · Gross margin %", _pct),
)


def _guerrilla(db: _Db) -> list:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    db.require("analytics.guerrilla_metrics")
    rows = db.rows(
        """
        with quarters as (
            select * from analytics.guerrilla_metrics where period_type = 'quarter' and is_complete_period
        ),
        attribute_rank as (
            select group_type, group_value, rank() over (partition by group_type order by sum(revenue) desc) as rnk
            from quarters group by group_type, group_value
        )
        select q.period_start_date, q.group_type,
               case when q.group_type = any(%s) or r.rnk <= %s then q.group_value else 'other' end as group_value,
               sum(q.new_customers) as new_customers, sum(q.new_customer_revenue) as new_customer_revenue,
               sum(q.lost_customers) as lost_customers, sum(q.lost_customer_value) as lost_customer_value,
               sum(q.renewals) as renewals, sum(q.referrals) as referrals, sum(q.revenue) as revenue,
               round(100 * sum(q.gross_margin) / nullif(sum(q.revenue), 0), 2) as gross_margin_pct
        from quarters q join attribute_rank r using (group_type, group_value)
        group by 1, 2, 3 order by 1
        """,
        (list(FIXED_GROUP_TYPES), ATTRIBUTE_TOP_GROUPS),
    )
    if not rows:
        raise _NoData("No complete quarter yet.")
    quarters = sorted({r["period_start_date"] for r in rows})
    labels = [_quarter(q) for q in quarters]
    group_types = [g for g in ("value_tier", "segment", "all") if any(r["group_type"] == g for r in rows)]
    group_types += sorted({r["group_type"] for r in rows} - set(FIXED_GROUP_TYPES))
    data: dict[str, dict[str, dict[dt.date, dict]]] = {}
    for r in rows:
        data.setdefault(r["group_type"], {}).setdefault(r["group_value"], {})[r["period_start_date"]] = r

    fig = make_subplots(
        rows=4,
        cols=2,
        shared_xaxes=True,
        vertical_spacing=0.07,
        horizontal_spacing=0.08,
        subplot_titles=[title for _, title, _ in GUERRILLA_PANELS],
    )
    visibility: dict[str, list[bool]] = {g: [] for g in group_types}
    default = group_types[0]
    for group_type in group_types:
        colors = {"segment": SEGMENT_COLORS, "value_tier": TIER_COLORS}.get(group_type, {})
        groups = data[group_type]
        if group_type in ("segment", "value_tier"):
            order = _ordered(groups, colors)
        else:
            order = sorted(groups, key=lambda g: (g == "other", g == "unmatched", g))
        for i, group in enumerate(order):
            color = colors.get(group) or (INK if group_type == "all" else PALETTE[i % len(PALETTE)])
            for p, (key, _, fmt) in enumerate(GUERRILLA_PANELS):
                values = [_f(groups[group].get(q, {}).get(key)) for q in quarters]
                fig.add_trace(
                    go.Scatter(
                        x=labels,
                        y=values,
                        name=_label(group) if group_type != "all" else "Whole company",
                        legendgroup=f"{group_type}:{group}",
                        showlegend=p == 0,
                        visible=group_type == default,
                        mode="lines+markers",
                        line={"color": color, "width": 2},
                        marker={"size": 5},
                        text=[fmt(v) for v in values],
                        hovertemplate="%{x}: %{text}<extra>" + _label(group) + "</extra>",
                    ),
                    row=p // 2 + 1,
                    col=p % 2 + 1,
                )
                for g in group_types:
                    visibility[g].append(g == group_type)
    names = {"all": "Whole company", "segment": "RFM segment", "value_tier": "Value tier"}
    buttons = [
        {
            "label": names.get(g, f"{_label(g)} (top {ATTRIBUTE_TOP_GROUPS})"),
            "method": "restyle",
            "args": [{"visible": visibility[g]}],
        }
        for g in group_types
    ]
    fig.update_layout(
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "buttons": buttons,
                "x": 0,
                "xanchor": "left",
                "y": 1.13,
                "yanchor": "bottom",
                "showactive": True,
                "bgcolor": "#f3f4f6",
                "bordercolor": "#d1d5db",
                "font": {"size": 11},
                "pad": {"r": 4, "t": 0, "b": 0, "l": 0},
            }
        ],
        legend={"y": 1.045, "yanchor": "bottom"},
        margin={"t": 130},
    )
    fig.update_yaxes(rangemode="tozero")
    blocks: list = [
        Note(
            "Per complete quarter and customer group; switch the grouping with the buttons. A customer counts in the "
            "group they were in that quarter. Numbers 1-5 are the five guerrilla metrics."
        ),
        _chart(fig, "guerrilla", height=1020),
    ]

    # The whole company, last complete quarters, exact figures.
    company = db.rows(
        "select period_start_date, active_customers, new_customers, new_customer_revenue, lost_customers, "
        "lost_customer_value, reactivated_customers, renewals, renewal_value, revenue, gross_margin_pct, "
        "net_margin_pct, referrals, promoter_share_pct from analytics.guerrilla_metrics "
        "where period_type = 'quarter' and group_type = 'all' and is_complete_period "
        "order by period_start_date desc limit 5"
    )
    blocks.append(
        Table(
            [
                "Quarter",
                "Active",
                "New",
                "New value",
                "Lost",
                "Lost value",
                "Won back",
                "Renewals",
                "Revenue",
                "Gross margin",
                "Net margin",
                "Referrals",
                "Promoters",
            ],
            [
                [
                    _quarter(r["period_start_date"]),
                    _count(r["active_customers"]),
                    _count(r["new_customers"]),
                    _money(r["new_customer_revenue"]),
                    _count(r["lost_customers"]),
                    _money(r["lost_customer_value"]),
                    _count(r["reactivated_customers"]),
                    _count(r["renewals"]),
                    _money(r["revenue"]),
                    _pct(r["gross_margin_pct"]),
                    _pct(r["net_margin_pct"]),
                    _count(r["referrals"]),
                    _pct(r["promoter_share_pct"]),
                ]
                for r in company
            ],
            numeric=frozenset(range(1, 13)),
            caption="The whole company, last complete quarters. Net margin = gross margin minus the cost to serve "
            "(tickets x cost per ticket); promoters = share of NPS answers scoring 9-10.",
        )
    )

    if not db.missing("analytics.renewals_by_reason"):
        reasons = db.rows(
            "select period_start_date, renewal_reason, sum(renewals) as renewals, sum(renewal_value) as value "
            "from analytics.renewals_by_reason "
            "where period_type = 'quarter' and group_type = 'all' and is_complete_period group by 1, 2 order by 1"
        )
        if reasons:
            by_reason: dict[str, dict[dt.date, dict]] = {}
            for r in reasons:
                by_reason.setdefault(r["renewal_reason"], {})[r["period_start_date"]] = r
            order = sorted(
                by_reason, key=lambda k: (k == "not_stated", -sum(v["renewals"] for v in by_reason[k].values()))
            )
            fig = go.Figure()
            for i, reason in enumerate(order):
                fig.add_trace(
                    go.Bar(
                        x=labels,
                        y=[by_reason[reason].get(q, {}).get("renewals", 0) for q in quarters],
                        name=_label(reason),
                        marker_color="#c7ccd4" if reason == "not_stated" else PALETTE[i % len(PALETTE)],
                        hovertemplate="%{x}: %{y:,} renewals<extra>" + _label(reason) + "</extra>",
                    )
                )
            fig.update_layout(barmode="stack", hovermode="x unified", legend_traceorder="normal", margin={"t": 70})
            fig.update_yaxes(title_text="renewals")
            blocks.append(Note("3 · Why customers renew: contract renewals per quarter by the reason they gave."))
            blocks.append(_chart(fig, "renewal-reasons", height=380))
    return blocks


# --- 5. NPS and CSAT --------------------------------------------------------------------------------


def _nps(db: _Db) -> list:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    db.require("analytics.nps_by_segment")
    by_segment = db.rows(
        """
        with last_12 as (
            select * from analytics.nps_by_segment
            where is_complete_month and month_start_date > (
                select max(month_start_date) from analytics.nps_by_segment where is_complete_month
            ) - interval '12 months'
        )
        select rfm_segment as segment, min(month_start_date) as first_month, max(month_start_date) as last_month,
               sum(nps_responses) as nps_responses,
               round(100.0 * (sum(promoters) - sum(detractors)) / nullif(sum(nps_responses), 0), 1) as nps,
               sum(csat_responses) as csat_responses,
               round(100.0 * sum(csat_satisfied_responses) / nullif(sum(csat_responses), 0), 1) as csat
        from last_12 group by rfm_segment
        """
    )
    if not by_segment or not any(r["nps_responses"] or r["csat_responses"] for r in by_segment):
        raise _NoData("No survey answers in a complete month yet.")
    rows = {r["segment"]: r for r in by_segment}
    order = list(reversed([s for s in _ordered(rows, ["all", *SEGMENT_COLORS])]))
    first = min(r["first_month"] for r in by_segment)
    last = max(r["last_month"] for r in by_segment)
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.05,
        subplot_titles=("NPS (−100 to 100)", "CSAT (% satisfied, 4-5 of 5)"),
    )
    for col, (key, count_key) in enumerate((("nps", "nps_responses"), ("csat", "csat_responses")), start=1):
        values = [_f(rows[s][key]) for s in order]
        answers = [rows[s][count_key] for s in order]
        fig.add_trace(
            go.Bar(
                y=[_label(s) for s in order],
                x=values,
                orientation="h",
                marker_color=[INK if s == "all" else SEGMENT_COLORS.get(s, "#9ca3af") for s in order],
                marker_opacity=[1.0 if n >= MIN_RESPONSES else 0.35 for n in answers],
                text=[_number(v, 0) if v is not None else "" for v in values],
                textposition="outside",
                cliponaxis=False,
                customdata=answers,
                hovertemplate="%{y}: %{x:.1f} from %{customdata:,} answers<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(range=[-100, 100], row=1, col=1)
    fig.update_xaxes(range=[0, 100], ticksuffix=" %", row=1, col=2)
    fig.update_layout(margin={"t": 30})
    blocks: list = [
        Note(
            f"Answers from {first:%b %Y} to {last:%b %Y} (12 complete months), in the segment each customer was in "
            f"when answering. Pale bars rest on fewer than {MIN_RESPONSES} answers."
        ),
        _chart(fig, "nps-segments", height=460),
    ]

    trend = db.rows(
        "select date_trunc('quarter', month_start_date)::date as quarter, sum(nps_responses) as nps_responses, "
        "round(100.0 * (sum(promoters) - sum(detractors)) / nullif(sum(nps_responses), 0), 1) as nps, "
        "round(100.0 * sum(csat_satisfied_responses) / nullif(sum(csat_responses), 0), 1) as csat "
        "from analytics.nps_by_segment where rfm_segment = 'all' "
        "group by 1 having bool_and(is_complete_month) order by 1"
    )
    if trend:
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        x = [_quarter(r["quarter"]) for r in trend]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[_f(r["nps"]) for r in trend],
                name="NPS",
                mode="lines+markers",
                line={"color": "#3b82c4", "width": 2.5},
                cliponaxis=False,
                customdata=[r["nps_responses"] for r in trend],
                hovertemplate="%{x}: NPS %{y:.1f} (%{customdata:,} answers)<extra></extra>",
            ),
            secondary_y=False,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[_f(r["csat"]) for r in trend],
                name="CSAT %",
                mode="lines+markers",
                line={"color": "#e07b39", "width": 2.5, "dash": "dot"},
                cliponaxis=False,
                hovertemplate="%{x}: CSAT %{y:.1f} %<extra></extra>",
            ),
            secondary_y=True,
        )
        fig.update_yaxes(title_text="NPS", secondary_y=False)
        fig.update_yaxes(
            title_text="CSAT",
            range=[0, 100],
            tickmode="linear",
            tick0=0,
            dtick=20,
            ticksuffix=" %",
            showgrid=False,
            secondary_y=True,
        )
        fig.update_layout(hovermode="x unified", margin={"t": 50})
        blocks.append(Note("All customers, per complete quarter."))
        blocks.append(_chart(fig, "nps-trend", height=340))
    return blocks


# --- 6. lost-customer review ------------------------------------------------------------------------


def _lost(db: _Db) -> list:
    import plotly.graph_objects as go

    db.require("analytics.lost_customer_review")
    period = db.one(
        "select period_start_date, count(*) as losses, sum(revenue_12m_before_loss) as value "
        "from analytics.lost_customer_review where period_type = 'month' and period_start_date = ("
        "select max(period_start_date) from analytics.lost_customer_review "
        "where period_type = 'month' and is_complete_period) group by 1"
    )
    if not period:
        raise _NoData("No customer lost in a complete month yet.")
    top = db.rows(
        "select value_rank, customer_id, region, country_code, industry, company_size, lost_date, loss_type, "
        "revenue_12m_before_loss, share_of_period_lost_value_pct, tenure_days, episode_number, "
        "complaints_before_loss, last_nps_score, stated_reason, stated_reason_source, exit_comment "
        "from analytics.lost_customer_review where period_type = 'month' and period_start_date = %s "
        "order by value_rank, customer_id limit 10",
        (period["period_start_date"],),
    )
    top_value = sum(_f(r["revenue_12m_before_loss"]) or 0 for r in top)
    share = 100 * top_value / float(period["value"]) if period["value"] else 0.0
    listed = (
        "all of them are listed below"
        if period["losses"] <= len(top)
        else f"the {len(top)} below carry {share:.0f} % of it"
    )
    blocks: list = [
        Note(
            f"{period['losses']:,} customer{'s' if period['losses'] != 1 else ''} lost in "
            f"{period['period_start_date']:%B %Y}, worth {_money(period['value'])} in the 12 months before they "
            f"left; {listed}.",
            tone="warn",
        )
    ]

    def tenure(days: int | None) -> str:
        if days is None:
            return "–"
        return f"{days / 365.25:.1f} y" if days >= 365 else f"{days // 30} mo"

    def reason(r: dict) -> tuple[str, str, str]:
        if not r["stated_reason"]:
            return ("Not stated", "muted", "")
        comment = (r["exit_comment"] or "").strip()
        if len(comment) > 80:
            comment = comment[:77] + "..."
        source = {"contract": "cancellation", "exit_survey": "exit survey"}.get(r["stated_reason_source"], "")
        return (_label(r["stated_reason"]), "", f"via {source}" + (f" · “{comment}”" if comment else ""))

    blocks.append(
        Table(
            [
                "#",
                "Customer",
                "Region",
                "Industry",
                "Size",
                "Lost on",
                "How",
                "Value, 12 m",
                "Share",
                "Tenure",
                "Complaints",
                "Last NPS",
                "Reason",
            ],
            [
                [
                    str(r["value_rank"]),
                    (f"#{r['customer_id']}", "mono"),
                    f"{r['region'] or '–'}, {r['country_code'] or '–'}",
                    _label(r["industry"]) if r["industry"] else "–",
                    _label(r["company_size"]) if r["company_size"] else "–",
                    (_date(r["lost_date"]), "nowrap"),
                    LOSS_TYPES.get(r["loss_type"], _label(r["loss_type"])),
                    _money(r["revenue_12m_before_loss"]),
                    _pct(r["share_of_period_lost_value_pct"]),
                    tenure(r["tenure_days"]),
                    (_count(r["complaints_before_loss"]), "bad" if r["complaints_before_loss"] else ""),
                    (
                        "–" if r["last_nps_score"] is None else str(r["last_nps_score"]),
                        "" if r["last_nps_score"] is None else ("bad" if r["last_nps_score"] <= 6 else "good"),
                    ),
                    reason(r),
                ]
                for r in top
            ],
            numeric=frozenset({0, 7, 8, 9, 10, 11}),
            caption="Customers by id (names stay out of the report). Complaints = complaints from 90 days before "
            "the last purchase up to the loss.",
        )
    )

    reasons = db.rows(
        "select period_start_date, coalesce(stated_reason, 'not_stated') as reason, count(*) as losses, "
        "sum(revenue_12m_before_loss) as value from analytics.lost_customer_review "
        "where period_type = 'quarter' and is_complete_period and period_start_date >= ("
        "select max(period_start_date) from analytics.lost_customer_review "
        "where period_type = 'quarter' and is_complete_period) - interval '9 months' group by 1, 2 order by 1"
    )
    if reasons:
        quarters = sorted({r["period_start_date"] for r in reasons})
        by_reason: dict[str, dict[dt.date, dict]] = {}
        for r in reasons:
            by_reason.setdefault(r["reason"], {})[r["period_start_date"]] = r
        order = sorted(
            by_reason, key=lambda k: (k == "not_stated", -sum(_f(v["value"]) or 0 for v in by_reason[k].values()))
        )
        fig = go.Figure()
        for i, key in enumerate(order):
            values = [_f(by_reason[key].get(q, {}).get("value")) or 0 for q in quarters]
            fig.add_trace(
                go.Bar(
                    x=[_quarter(q) for q in quarters],
                    y=values,
                    name=_label(key),
                    marker_color="#c7ccd4" if key == "not_stated" else PALETTE[i % len(PALETTE)],
                    customdata=[
                        [by_reason[key].get(q, {}).get("losses", 0), _money(v)]
                        for q, v in zip(quarters, values, strict=True)
                    ],
                    hovertemplate="%{x}: %{customdata[1]} from %{customdata[0]} customers<extra>"
                    + _label(key)
                    + "</extra>",
                )
            )
        fig.update_layout(barmode="stack", hovermode="x unified", legend_traceorder="normal", margin={"t": 70})
        fig.update_yaxes(title_text="value lost (12 months before the loss)")
        blocks.append(Note("Why they left: value lost per complete quarter, by the reason the customers gave."))
        blocks.append(_chart(fig, "lost-reasons", height=380))
    return blocks


# --- 7. baseline history ----------------------------------------------------------------------------


def _history(db: _Db) -> list:
    import plotly.graph_objects as go

    db.require("analytics.baseline_kpis")
    rows = db.rows(
        "select baseline_no, promoted_at, kpi, value, previous_value, change_vs_previous, change_pct_vs_previous, "
        "first_value, change_vs_first, change_pct_vs_first from analytics.baseline_kpis order by baseline_no, kpi"
    )
    if not rows:
        raise _NoData("No baseline promoted yet.")
    order = list(KPI_INFO)
    kpis = sorted({r["kpi"] for r in rows}, key=lambda k: (order.index(k) if k in order else 99, k))
    baselines = sorted({(r["baseline_no"], r["promoted_at"]) for r in rows})
    x = [f"#{no} · {at:%-d %b %Y}" for no, at in baselines]
    by_key = {(r["baseline_no"], r["kpi"]): r for r in rows}
    fig = go.Figure()
    for i, kpi in enumerate(kpis):
        label = KPI_INFO.get(kpi, (_label(kpi), "number", 1))[0]
        values = [_f(by_key.get((no, kpi), {}).get("change_pct_vs_first")) for no, _ in baselines]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=values,
                name=label,
                mode="lines+markers",
                line={"color": PALETTE[i % len(PALETTE)], "width": 2},
                marker={"size": 8},
                hovertemplate="%{x}: %{y:+.1f} % vs baseline #1<extra>" + label + "</extra>",
            )
        )
    fig.add_hline(y=0, line={"color": "#9ca3af", "width": 1, "dash": "dot"})
    fig.update_yaxes(title_text="change vs baseline #1", ticksuffix=" %")
    fig.update_xaxes(type="category")
    fig.update_layout(margin={"t": 70})

    current = _current_baseline(db)
    shown = current["baseline_no"] if current else baselines[-1][0]
    table_rows = []
    for kpi in kpis:
        r = by_key.get((shown, kpi))
        if not r:
            continue
        label, kind, good = KPI_INFO.get(kpi, (_label(kpi), "number", 1))
        table_rows.append(
            [
                label,
                _kpi_value(kind, r["value"]),
                _kpi_value(kind, r["previous_value"]),
                (_pct(r["change_pct_vs_previous"], signed=True), _delta(r["change_pct_vs_previous"], good))
                if r["previous_value"] is not None
                else "–",
                _kpi_value(kind, r["first_value"]),
                (_pct(r["change_pct_vs_first"], signed=True), _delta(r["change_pct_vs_first"], good)),
            ]
        )
    blocks: list = []
    if len(baselines) == 1:
        blocks.append(Note("This is the first baseline: every later one is compared with it and with its predecessor."))
    blocks += [
        Table(
            ["KPI", f"Baseline #{shown}", "Previous", "vs previous", "Baseline #1", "vs #1"],
            table_rows,
            numeric=frozenset({1, 2, 3, 4, 5}),
            caption="Every baseline is measured the same way; the change against the first one is what matters.",
        ),
        _chart(fig, "baseline-history", height=360),
    ]
    if not db.missing("lens_audit.baselines"):
        history = db.rows(
            "select baseline_no, promoted_at, promoted_by, reason, status, data_interval_end "
            "from lens_audit.baselines order by baseline_no desc limit 12"
        )
        blocks.append(
            Table(
                ["Baseline", "Promoted", "Data through", "By", "Why", "Status"],
                [
                    [
                        f"#{r['baseline_no']}",
                        f"{r['promoted_at']:%Y-%m-%d %H:%M} UTC",
                        _last_day(r["data_interval_end"]),
                        r["promoted_by"],
                        r["reason"],
                        (r["status"], "badge " + {"current": "good", "retained": "flat"}.get(r["status"], "flat")),
                    ]
                    for r in history
                ],
                caption="Promotions, newest first (the last 12).",
            )
        )
    return blocks


# --- 8. latest validation ---------------------------------------------------------------------------


def _restatements(db: _Db) -> list:
    """A note on what has arrived for closed periods since they were built (analytics.restatements_pending)."""
    if db.missing("analytics.restatements_pending"):
        return []
    pending = db.rows(
        "select mart_name, period_type, period_start_date, period_end_date, figure, difference, difference_pct "
        "from analytics.restatements_pending order by period_start_date, mart_name, period_type, figure"
    )
    if not pending:
        return [Note("Closed periods: nothing has arrived for them since they were built.", tone="ok")]
    periods = sorted({(r["period_type"], r["period_start_date"]) for r in pending})
    # a period is rewritten when it ends on or after the restated month: a quarter from its last month
    first = min(r["period_end_date"] for r in pending)
    shown = "; ".join(
        f"{r['mart_name']} {r['period_type']} {r['period_start_date']:%Y-%m} {r['figure']} "
        f"{float(r['difference']):+,.2f}" + (f" ({float(r['difference_pct']):+.2f} %)" if r["difference_pct"] else "")
        for r in pending[:5]
    )
    more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
    return [
        Note(
            f"Restatements pending: {len(pending)} figure(s) of {len(periods)} closed period(s) differ from what "
            f"the data now says ({shown}{more}). They stay as reported until "
            f"`lens restate --from {first:%Y-%m} --reason ...` recomputes them.",
            tone="warn",
        )
    ]


def _validation(db: _Db) -> list:
    if db.missing("lens_audit.validation_runs", "lens_audit.snapshots", "lens_audit.baselines"):
        raise _NoData("No snapshot has been validated yet.")
    # What became of each snapshot: its baseline (also after an override), else its state.
    runs = db.rows(
        "select r.run_id, r.snapshot_id, r.finished_at, r.duration_seconds, r.passed, r.expectations_evaluated, "
        "r.expectations_failed, r.report_path, r.triggered_by, s.status as snapshot_status, "
        "coalesce(r.baseline_no, b.baseline_no) as baseline_no, b.reason as baseline_reason "
        "from lens_audit.validation_runs r join lens_audit.snapshots s using (snapshot_id) "
        "left join lens_audit.baselines b using (snapshot_id) order by r.finished_at desc limit 10"
    )
    if not runs:
        raise _NoData("No snapshot has been validated yet.")
    last = runs[0]
    verdict = "passed" if last["passed"] else "FAILED"
    if last["baseline_no"] is not None:
        outcome = f"promoted as baseline #{last['baseline_no']}"
        if not last["passed"]:
            outcome += f" ({last['baseline_reason']})"
    elif last["snapshot_status"] == "quarantined":
        outcome = "quarantined: the baseline stays as it was"
    else:
        outcome = f"snapshot {last['snapshot_status']}"
    blocks: list = [
        Note(
            f"Snapshot {last['snapshot_id']} {verdict} on {last['finished_at']:%Y-%m-%d %H:%M} UTC: "
            f"{last['expectations_evaluated']:,} expectations, {last['expectations_failed']:,} failed, "
            f"{last['duration_seconds']:.0f} s, run by {last['triggered_by']}; {outcome}.",
            tone="ok" if last["passed"] else ("warn" if last["baseline_no"] is not None else "bad"),
        )
    ]
    blocks += _restatements(db)
    if last["report_path"]:
        report_path = Path(last["report_path"])
        blocks.append(
            Note(
                "Every expectation and its observed value: the validation report",
                # relative to the report, so the link works wherever the reports folder is copied or mailed
                link=os.path.relpath(report_path, db.base)
                if db.base and report_path.is_absolute()
                else str(report_path),
            )
        )
    if not last["passed"] and not db.missing("lens_audit.validation_failures"):
        failures = db.rows(
            "select mart, expectation, column_name, observed, expected from lens_audit.validation_failures "
            "where run_id = %s order by mart, column_name nulls first, expectation limit 50",
            (last["run_id"],),
        )
        blocks.append(
            Table(
                ["Mart", "Column", "Expectation", "Observed", "Expected"],
                [
                    [
                        (r["mart"], "mono"),
                        r["column_name"] or "–",
                        r["expectation"],
                        r["observed"] or "–",
                        r["expected"] or "–",
                    ]
                    for r in failures
                ],
                caption=f"Failed expectations (first {len(failures)} of {last['expectations_failed']:,}).",
            )
        )
    blocks.append(
        Table(
            ["Finished", "Snapshot", "Result", "Expectations", "Failed", "Duration", "Baseline"],
            [
                [
                    f"{r['finished_at']:%Y-%m-%d %H:%M} UTC",
                    (r["snapshot_id"], "mono"),
                    ("passed", "badge good") if r["passed"] else ("failed", "badge bad"),
                    _count(r["expectations_evaluated"]),
                    _count(r["expectations_failed"]),
                    f"{r['duration_seconds']:.0f} s",
                    "–" if r["baseline_no"] is None else f"#{r['baseline_no']}",
                ]
                for r in runs
            ],
            numeric=frozenset({3, 4, 5}),
            caption="The last validation runs, newest first.",
        )
    )
    return blocks


# key (HTML anchor), short name for the navigation, title, one-line intro, builder.
SECTIONS: list[tuple[str, str, str, str, Callable[[_Db], list]]] = [
    ("segments", "Segments", "Segments: size and value", "Who the customers are and what they bring.", _segments),
    (
        "migrations",
        "Migrations",
        "Segment migrations",
        "Where customers moved between the last two snapshots.",
        _migrations,
    ),
    (
        "complaints",
        "Complaints",
        "Complaint trends",
        "Complaints per category, month over month and year over year.",
        _complaints,
    ),
    (
        "guerrilla",
        "Guerrilla metrics",
        "The five guerrilla metrics",
        "New customers, lost customers, renewals, revenue and profitability, referrals — per customer group.",
        _guerrilla,
    ),
    ("nps", "NPS & CSAT", "NPS and CSAT by segment", "How customers rate us, segment by segment.", _nps),
    (
        "lost",
        "Lost customers",
        "Lost-customer review",
        "The most valuable customers lost in the last complete month, and why customers leave.",
        _lost,
    ),
    (
        "history",
        "Baseline history",
        "Baseline history",
        "Each KPI against the previous and the first baseline.",
        _history,
    ),
    (
        "validation",
        "Validation",
        "Latest validation",
        "What the quality guard said about the last snapshot.",
        _validation,
    ),
]


# --- render -----------------------------------------------------------------------------------------


def default_path(cfg: settings_mod.Settings | None = None) -> Path:
    """Where :func:`render` writes by default: ``$LENS_STATE_DIR/reports/customer_lens.html``."""
    return (cfg or settings_mod.load()).state_dir / "reports" / REPORT_NAME


def _absent_inputs(cfg: settings_mod.Settings) -> set[str]:
    """The data contract's entities no configured source gives (none when the sources file cannot be read)."""
    from customer_lens.config import contract, source_config

    try:
        return set(contract.absent(source_config.load(cfg=cfg)))
    except source_config.ConfigError as exc:
        log.warning("report: the sources file cannot be read (%s); every section is drawn", exc)
        return set()


def _build_section(db: _Db, key: str, nav: str, title: str, intro: str, build: Callable[[_Db], list]) -> Section:
    import psycopg

    section = Section(key, nav, title, intro)
    try:
        with db.conn.transaction():  # a savepoint: a failed query leaves the other sections readable
            section.blocks = build(db)
    except _NoData as exc:
        section.empty = str(exc)
    except psycopg.Error as exc:
        # A broken section must not hide the others; it shows its error and the log says where.
        log.warning("report section %s failed: %s", key, exc)
        section.error = _first_line(exc)
    return section


def render(
    cfg: settings_mod.Settings | None = None,
    *,
    out: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the Customer Lens report (one self-contained HTML file) and return its path.

    ``out`` defaults to :func:`default_path`. ``progress`` receives a line per section drawn. Raises
    :class:`ReportError` when the warehouse cannot be reached; sections without data say so in the report.
    """
    import jinja2
    import psycopg
    from markupsafe import Markup
    from plotly.offline import get_plotlyjs

    cfg = cfg or settings_mod.load()
    if out is not None and not Path(out).resolve().parent.is_dir():
        raise ReportError(f"cannot write {out}: the folder {Path(out).resolve().parent} does not exist")
    out = Path(out).resolve() if out else default_path(cfg)
    say = progress or (lambda _line: None)
    with _connect(cfg) as conn, conn.transaction():
        _lock_analytics(conn)
        db = _Db(conn, base=out.parent)
        try:
            header = _header(db)
        except psycopg.Error as exc:
            raise ReportError(f"could not read the current baseline: {_first_line(exc)}") from exc
        sections = []
        absent = _absent_inputs(cfg)
        for key, nav, title, intro, build in SECTIONS:
            say(f"report      {title.lower()}")
            if SECTION_INPUTS.get(key) in absent:
                source, entity = SECTION_INPUTS[key].split(".")
                reason = f"no {source} source configured (the sources file gives no {source}.{entity})"
                sections.append(Section(key, nav, title, intro, not_applicable=reason))
                continue
            sections.append(_build_section(db, key, nav, title, intro, build))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("report.html.j2").render(
        header=header,
        sections=sections,
        plotly_js=Markup(get_plotlyjs()),  # plotly's own bundled library, inlined once
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
