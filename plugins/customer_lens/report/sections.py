"""The report's header and its eight sections: each reads its rows (:mod:`.queries`), reshapes them and
returns its blocks — notes and tables built here, charts drawn by :mod:`.charts`.

A section raises :class:`~customer_lens.report.queries.NoData` when it has nothing to show yet.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from customer_lens.report import charts, queries
from customer_lens.report import formatting as fmt
from customer_lens.report.blocks import Block, Header, KpiCard, Note, Table
from customer_lens.report.queries import Db, NoData, Row

# A cell of a table row: its text, or (text, css class), or (text, css class, small note); see blocks.Table.
Cell = str | tuple[str, str] | tuple[str, str, str]

LOSS_TYPES = {"no_purchase": "No purchase", "contract_expired": "Expired", "contract_cancelled": "Cancelled"}


def _pivot(rows: Iterable[Row], outer: str, inner: str) -> dict[Any, dict[Any, Row]]:
    """``rows`` by the value of column ``outer``, then by that of ``inner`` (the last row wins)."""
    found: dict[Any, dict[Any, Row]] = {}
    for r in rows:
        found.setdefault(r[outer], {})[r[inner]] = r
    return found


def _reason_order(by_reason: dict[str, dict[Any, Row]], weight: Callable[[Row], float]) -> list[str]:
    """Stated reasons, the heaviest first (summing ``weight`` over their rows), ``not_stated`` last."""
    return sorted(by_reason, key=lambda k: (k == "not_stated", -sum(weight(v) for v in by_reason[k].values())))


# --- header -----------------------------------------------------------------------------------------


def header(db: Db) -> Header:
    """The current baseline, the date its data is as of, its KPI cards, and a failed latest validation."""
    now = dt.datetime.now(dt.UTC)
    baseline = queries.current_baseline(db)
    as_of = queries.as_of(db)
    cards = []
    if baseline:
        rows = queries.baseline_kpis(db, baseline["baseline_no"])
        cards = [_kpi_card(row, baseline["baseline_no"]) for row in sorted(rows, key=lambda r: fmt.kpi_rank(r["kpi"]))]
    latest = queries.latest_validation(db)
    quarantined = latest if latest and not latest["passed"] and latest["status"] == "quarantined" else None
    return Header(now, baseline, as_of, cards, quarantined)


def _kpi_card(row: Row, baseline_no: int) -> KpiCard:
    label, kind, good = fmt.kpi_info(row["kpi"])
    previous = row["change_pct_vs_previous"] if row["previous_value"] is not None else None
    first = row["change_pct_vs_first"]
    return KpiCard(
        label,
        fmt.kpi_value(kind, row["value"]),
        None if previous is None else fmt.change(previous, good),
        None if baseline_no == 1 or first is None else fmt.change(first, good),
    )


# --- 1. segments ------------------------------------------------------------------------------------


def segments(db: Db) -> list[Block]:
    by_segment = queries.segment_totals(db)
    if not by_segment:
        raise NoData("No customer has a segment yet (no completed order).")
    by_tier = queries.tier_totals(db)
    history = queries.segment_history(db)
    snapshot = max(r["snapshot_date"] for r in by_segment)
    total = sum(r["customers"] for r in by_segment)
    blocks: list[Block] = [
        Note(
            f"{total:,} customers with at least one purchase, segmented on {fmt.date(snapshot)}; "
            "value is that of the trailing 12 months."
        ),
        charts.chart(charts.segment_bars({r["segment"]: r for r in by_segment}), "segments", height=420),
    ]
    blocks += _value_tiers(by_tier)
    series: dict[str, dict[dt.date, int]] = {}
    for r in history:
        series.setdefault(r["segment"], {})[r["snapshot_date"]] = r["customers"]
    dates = sorted({r["snapshot_date"] for r in history})
    blocks.append(charts.chart(charts.segment_history(series, dates), "segment-history", height=400))
    return blocks


def _value_tiers(by_tier: list[Row]) -> list[Block]:
    """Share of customers against share of revenue and margin per value tier, and what the power players carry."""
    tiers = {r["tier"]: r for r in by_tier}
    totals = {k: sum(fmt.as_float(r[k]) or 0.0 for r in by_tier) for k in ("customers", "revenue", "gross_margin")}
    blocks: list[Block] = []
    power = tiers.get("power_player")
    if power and totals["customers"] and totals["gross_margin"]:
        blocks.append(
            Note(
                f"{power['customers']:,} power players ({100 * power['customers'] / totals['customers']:.1f} % of "
                f"customers) carry {100 * (fmt.as_float(power['gross_margin']) or 0) / totals['gross_margin']:.0f} "
                "% of the gross margin of the last 12 months."
            )
        )
    blocks.append(charts.chart(charts.tier_shares(tiers, totals), "value-tiers", height=360))
    return blocks


# --- 2. migrations ----------------------------------------------------------------------------------


def migrations(db: Db) -> list[Block]:
    rows = queries.latest_migrations(db)
    if not rows:
        raise NoData("No segment snapshots yet.")
    blocks: list[Block] = []
    for segment_type, title, colors in (
        ("rfm_segment", "RFM segment", charts.SEGMENT_COLORS),
        ("value_tier", "Value tier", charts.TIER_COLORS),
    ):
        moves = [r for r in rows if r["segment_type"] == segment_type and r["customers"]]
        if moves:
            blocks += _migration(segment_type, title, colors, moves)
    if not blocks:
        raise NoData("No customer in the latest segment snapshot.")
    return blocks


def _migration(segment_type: str, title: str, colors: dict[str, str], moves: list[Row]) -> list[Block]:
    """The heatmap of one segment type, and a note: how many stayed, moved, or are new."""
    froms = [s for s in charts.ordered({r["from_segment"] for r in moves}, colors) if s != "none"]
    if any(r["from_segment"] == "none" for r in moves):
        froms.append("none")
    tos = charts.ordered({r["to_segment"] for r in moves}, colors)
    counts = {(r["from_segment"], r["to_segment"]): r["customers"] for r in moves}
    fig = charts.migration_heatmap(froms, tos, counts, title)
    total = sum(counts.values())
    stayed = sum(v for (f, t), v in counts.items() if f == t)
    new = sum(v for (f, _), v in counts.items() if f == "none")
    previous = max((r["previous_snapshot_date"] for r in moves if r["previous_snapshot_date"]), default=None)
    return [
        Note(
            f"{title}s from {fmt.date(previous)} to {fmt.date(moves[0]['snapshot_date'])}: "
            f"{stayed:,} of {total:,} customers stayed ({100 * stayed / total:.0f} %), "
            f"{total - stayed - new:,} moved, {new:,} were segmented for the first time."
        ),
        charts.chart(fig, f"migrations-{segment_type.replace('_', '-')}", height=120 + 34 * len(froms)),
    ]


# --- 3. complaints ----------------------------------------------------------------------------------


def complaints(db: Db) -> list[Block]:
    rows = queries.complaint_trends(db)
    complete = [r for r in rows if r["is_complete_month"]]
    if not complete:
        raise NoData("No complete month of complaints yet.")
    months = sorted({r["month_start_date"] for r in complete})
    by_key = {(r["month_start_date"], r["category"]): r for r in complete}
    volume: dict[str, int] = {}
    for r in complete:
        if r["category"] != "all":
            volume[r["category"]] = volume.get(r["category"], 0) + r["complaints"]
    categories = sorted(volume, key=lambda c: -volume[c])
    latest = months[-1]
    partial = [m for m in {r["month_start_date"] for r in rows} if m > latest]
    caption = f"{latest:%B %Y}, the last complete month."
    if partial:
        caption += f" The running month ({max(partial):%B %Y}) is left out of the charts and the table."
    return [
        charts.chart(charts.complaints(months, categories, by_key), "complaints", height=520),
        Table(
            ["Category", "Complaints", "Per 100 active", "MoM", "YoY", "3-month avg", "Trend (3 vs 3 months)"],
            [_complaint_row(by_key[(latest, c)]) for c in ["all", *categories] if (latest, c) in by_key],
            numeric=frozenset({1, 2, 3, 4, 5}),
            caption=caption,
        ),
    ]


_TREND_CLASS = {"rising": "bad", "falling": "good", "stable": "flat", "insufficient_data": "flat"}


def _complaint_row(r: Row) -> list[Cell]:
    return [
        (fmt.label(r["category"]), "strong" if r["category"] == "all" else ""),
        fmt.count(r["complaints"]),
        fmt.number(r["per_100"], 2),
        fmt.change(r["mom"], -1),
        fmt.change(r["yoy"], -1),
        fmt.number(r["avg_3m"], 1),
        (fmt.label(r["trend_direction"]), "badge " + _TREND_CLASS.get(r["trend_direction"], "flat")),
    ]


# --- 4. guerrilla metrics ---------------------------------------------------------------------------

_GROUP_NAMES = {"all": "Whole company", "segment": "RFM segment", "value_tier": "Value tier"}


def guerrilla(db: Db) -> list[Block]:
    rows = queries.guerrilla_by_group(db)
    if not rows:
        raise NoData("No complete quarter yet.")
    quarters = sorted({r["period_start_date"] for r in rows})
    labels = [fmt.quarter(q) for q in quarters]
    group_types = [g for g in ("value_tier", "segment", "all") if any(r["group_type"] == g for r in rows)]
    group_types += sorted({r["group_type"] for r in rows} - set(queries.FIXED_GROUP_TYPES))
    data: dict[str, dict[str, dict[dt.date, Row]]] = {}
    for r in rows:
        data.setdefault(r["group_type"], {}).setdefault(r["group_value"], {})[r["period_start_date"]] = r
    buttons = {g: _GROUP_NAMES.get(g, f"{fmt.label(g)} (top {queries.ATTRIBUTE_TOP_GROUPS})") for g in group_types}
    blocks: list[Block] = [
        Note(
            "Per complete quarter and customer group; switch the grouping with the buttons. A customer counts in the "
            "group they were in that quarter. Numbers 1-5 are the five guerrilla metrics."
        ),
        charts.chart(charts.guerrilla(labels, quarters, data, buttons), "guerrilla", height=1020),
        _company_table(queries.guerrilla_company(db)),
    ]
    reasons = queries.renewal_reasons(db)
    if reasons:
        by_reason = _pivot(reasons, "renewal_reason", "period_start_date")
        order = _reason_order(by_reason, lambda v: v["renewals"])
        values = {k: [by_reason[k].get(q, {}).get("renewals", 0) for q in quarters] for k in order}
        fig = charts.reason_bars(labels, values, hover="%{x}: %{y:,} renewals", y_title="renewals")
        blocks.append(Note("3 · Why customers renew: contract renewals per quarter by the reason they gave."))
        blocks.append(charts.chart(fig, "renewal-reasons", height=380))
    return blocks


# Columns of the company table: header, column, how it reads.
_COMPANY_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("Active", "active_customers", fmt.count),
    ("New", "new_customers", fmt.count),
    ("New value", "new_customer_revenue", fmt.money),
    ("Lost", "lost_customers", fmt.count),
    ("Lost value", "lost_customer_value", fmt.money),
    ("Won back", "reactivated_customers", fmt.count),
    ("Renewals", "renewals", fmt.count),
    ("Revenue", "revenue", fmt.money),
    ("Gross margin", "gross_margin_pct", fmt.pct),
    ("Net margin", "net_margin_pct", fmt.pct),
    ("Referrals", "referrals", fmt.count),
    ("Promoters", "promoter_share_pct", fmt.pct),
)


def _company_table(company: list[Row]) -> Table:
    """The whole company, last complete quarters, exact figures."""
    return Table(
        ["Quarter", *(title for title, _, _ in _COMPANY_COLUMNS)],
        [
            [fmt.quarter(r["period_start_date"]), *(show(r[column]) for _, column, show in _COMPANY_COLUMNS)]
            for r in company
        ],
        numeric=frozenset(range(1, 13)),
        caption="The whole company, last complete quarters. Net margin = gross margin minus the cost to serve "
        "(tickets x cost per ticket); promoters = share of NPS answers scoring 9-10.",
    )


# --- 5. NPS and CSAT --------------------------------------------------------------------------------


def nps(db: Db) -> list[Block]:
    by_segment = queries.nps_last_12(db)
    if not by_segment or not any(r["nps_responses"] or r["csat_responses"] for r in by_segment):
        raise NoData("No survey answers in a complete month yet.")
    first = min(r["first_month"] for r in by_segment)
    last = max(r["last_month"] for r in by_segment)
    blocks: list[Block] = [
        Note(
            f"Answers from {first:%b %Y} to {last:%b %Y} (12 complete months), in the segment each customer was in "
            f"when answering. Pale bars rest on fewer than {charts.MIN_RESPONSES} answers."
        ),
        charts.chart(charts.nps_bars({r["segment"]: r for r in by_segment}), "nps-segments", height=460),
    ]
    trend = queries.nps_trend(db)
    if trend:
        blocks.append(Note("All customers, per complete quarter."))
        blocks.append(charts.chart(charts.nps_trend(trend), "nps-trend", height=340))
    return blocks


# --- 6. lost-customer review ------------------------------------------------------------------------

_LOST_HEADERS = [
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
]


def lost(db: Db) -> list[Block]:
    period = queries.lost_period(db)
    if not period:
        raise NoData("No customer lost in a complete month yet.")
    top = queries.lost_top(db, period["period_start_date"])
    top_value = sum(fmt.as_float(r["revenue_12m_before_loss"]) or 0 for r in top)
    share = 100 * top_value / float(period["value"]) if period["value"] else 0.0
    listed = (
        "all of them are listed below"
        if period["losses"] <= len(top)
        else f"the {len(top)} below carry {share:.0f} % of it"
    )
    blocks: list[Block] = [
        Note(
            f"{period['losses']:,} customer{'s' if period['losses'] != 1 else ''} lost in "
            f"{period['period_start_date']:%B %Y}, worth {fmt.money(period['value'])} in the 12 months before they "
            f"left; {listed}.",
            tone="warn",
        ),
        Table(
            _LOST_HEADERS,
            [_lost_row(r) for r in top],
            numeric=frozenset({0, 7, 8, 9, 10, 11}),
            caption="Customers by id (names stay out of the report). Complaints = complaints from 90 days before "
            "the last purchase up to the loss.",
        ),
    ]
    return blocks + _loss_reasons(queries.lost_reasons(db))


def _lost_row(r: Row) -> list[Cell]:
    nps_score = r["last_nps_score"]
    return [
        str(r["value_rank"]),
        (f"#{r['customer_id']}", "mono"),
        f"{r['region'] or '–'}, {r['country_code'] or '–'}",
        fmt.label(r["industry"]) if r["industry"] else "–",
        fmt.label(r["company_size"]) if r["company_size"] else "–",
        (fmt.date(r["lost_date"]), "nowrap"),
        LOSS_TYPES.get(r["loss_type"], fmt.label(r["loss_type"])),
        fmt.money(r["revenue_12m_before_loss"]),
        fmt.pct(r["share_of_period_lost_value_pct"]),
        fmt.tenure(r["tenure_days"]),
        (fmt.count(r["complaints_before_loss"]), "bad" if r["complaints_before_loss"] else ""),
        (
            "–" if nps_score is None else str(nps_score),
            "" if nps_score is None else ("bad" if nps_score <= 6 else "good"),
        ),
        _stated_reason(r),
    ]


def _stated_reason(r: Row) -> tuple[str, str, str]:
    """The reason a customer gave for leaving, where they gave it, and (the start of) their comment."""
    if not r["stated_reason"]:
        return ("Not stated", "muted", "")
    comment = (r["exit_comment"] or "").strip()
    if len(comment) > 80:
        comment = comment[:77] + "..."
    source = {"contract": "cancellation", "exit_survey": "exit survey"}.get(r["stated_reason_source"], "")
    return (fmt.label(r["stated_reason"]), "", f"via {source}" + (f" · “{comment}”" if comment else ""))


def _loss_reasons(reasons: list[Row]) -> list[Block]:
    """Value lost per complete quarter, stacked by the reason the customers gave."""
    if not reasons:
        return []
    quarters = sorted({r["period_start_date"] for r in reasons})
    by_reason = _pivot(reasons, "reason", "period_start_date")
    order = _reason_order(by_reason, lambda v: fmt.as_float(v["value"]) or 0)
    values = {k: [fmt.as_float(by_reason[k].get(q, {}).get("value")) or 0 for q in quarters] for k in order}
    losses = {
        k: [[by_reason[k].get(q, {}).get("losses", 0), fmt.money(v)] for q, v in zip(quarters, values[k], strict=True)]
        for k in order
    }
    fig = charts.reason_bars(
        [fmt.quarter(q) for q in quarters],
        values,
        hover="%{x}: %{customdata[1]} from %{customdata[0]} customers",
        y_title="value lost (12 months before the loss)",
        customdata=losses,
    )
    return [
        Note("Why they left: value lost per complete quarter, by the reason the customers gave."),
        charts.chart(fig, "lost-reasons", height=380),
    ]


# --- 7. baseline history ----------------------------------------------------------------------------


def history(db: Db) -> list[Block]:
    rows = queries.kpi_history(db)
    if not rows:
        raise NoData("No baseline promoted yet.")
    kpis = sorted({r["kpi"] for r in rows}, key=fmt.kpi_rank)
    baselines = sorted({(r["baseline_no"], r["promoted_at"]) for r in rows})
    by_key = {(r["baseline_no"], r["kpi"]): r for r in rows}
    fig = charts.kpi_history(kpis, baselines, by_key)
    current = queries.current_baseline(db)
    shown = current["baseline_no"] if current else baselines[-1][0]
    blocks: list[Block] = []
    if len(baselines) == 1:
        blocks.append(Note("This is the first baseline: every later one is compared with it and with its predecessor."))
    blocks += [
        Table(
            ["KPI", f"Baseline #{shown}", "Previous", "vs previous", "Baseline #1", "vs #1"],
            [_kpi_row(kpi, by_key[(shown, kpi)]) for kpi in kpis if by_key.get((shown, kpi))],
            numeric=frozenset({1, 2, 3, 4, 5}),
            caption="Every baseline is measured the same way; the change against the first one is what matters.",
        ),
        charts.chart(fig, "baseline-history", height=360),
    ]
    promotions = queries.promotions(db)
    if promotions is not None:
        blocks.append(_promotions_table(promotions))
    return blocks


def _kpi_row(kpi: str, r: Row) -> list[Cell]:
    label, kind, good = fmt.kpi_info(kpi)
    return [
        label,
        fmt.kpi_value(kind, r["value"]),
        fmt.kpi_value(kind, r["previous_value"]),
        fmt.change(r["change_pct_vs_previous"], good) if r["previous_value"] is not None else "–",
        fmt.kpi_value(kind, r["first_value"]),
        fmt.change(r["change_pct_vs_first"], good),
    ]


def _promotions_table(promotions: list[Row]) -> Table:
    return Table(
        ["Baseline", "Promoted", "Data through", "By", "Why", "Status"],
        [
            [
                f"#{r['baseline_no']}",
                f"{r['promoted_at']:%Y-%m-%d %H:%M} UTC",
                fmt.last_day(r["data_interval_end"]),
                r["promoted_by"],
                r["reason"],
                (r["status"], "badge " + {"current": "good", "retained": "flat"}.get(r["status"], "flat")),
            ]
            for r in promotions
        ],
        caption="Promotions, newest first (the last 12).",
    )


# --- 8. latest validation ---------------------------------------------------------------------------


def _restatements(db: Db) -> list[Block]:
    """A note on what has arrived for closed periods since they were built (analytics.restatements_pending)."""
    pending = queries.restatements_pending(db)
    if pending is None:
        return []
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


def validation(db: Db) -> list[Block]:
    runs = queries.validation_runs(db)
    if not runs:
        raise NoData("No snapshot has been validated yet.")
    last = runs[0]
    blocks: list[Block] = [_verdict(last), *_restatements(db)]
    if last["report_path"]:
        blocks.append(_report_link(Path(last["report_path"]), db.base))
    if not last["passed"]:
        failures = queries.validation_failures(db, last["run_id"])
        if failures is not None:
            blocks.append(_failures_table(failures, last["expectations_failed"]))
    blocks.append(_runs_table(runs))
    return blocks


def _verdict(last: Row) -> Note:
    """What the latest validation said, and what became of its snapshot."""
    verdict = "passed" if last["passed"] else "FAILED"
    if last["baseline_no"] is not None:
        outcome = f"promoted as baseline #{last['baseline_no']}"
        if not last["passed"]:
            outcome += f" ({last['baseline_reason']})"
    elif last["snapshot_status"] == "quarantined":
        outcome = "quarantined: the baseline stays as it was"
    else:
        outcome = f"snapshot {last['snapshot_status']}"
    return Note(
        f"Snapshot {last['snapshot_id']} {verdict} on {last['finished_at']:%Y-%m-%d %H:%M} UTC: "
        f"{last['expectations_evaluated']:,} expectations, {last['expectations_failed']:,} failed, "
        f"{last['duration_seconds']:.0f} s, run by {last['triggered_by']}; {outcome}.",
        tone="ok" if last["passed"] else ("warn" if last["baseline_no"] is not None else "bad"),
    )


def _report_link(report_path: Path, base: Path | None) -> Note:
    return Note(
        "Every expectation and its observed value: the validation report",
        # relative to the report, so the link works wherever the reports folder is copied or mailed
        link=os.path.relpath(report_path, base) if base and report_path.is_absolute() else str(report_path),
    )


def _failures_table(failures: list[Row], failed: int) -> Table:
    return Table(
        ["Mart", "Column", "Expectation", "Observed", "Expected"],
        [
            [(r["mart"], "mono"), r["column_name"] or "–", r["expectation"], r["observed"] or "–", r["expected"] or "–"]
            for r in failures
        ],
        caption=f"Failed expectations (first {len(failures)} of {failed:,}).",
    )


def _runs_table(runs: list[Row]) -> Table:
    return Table(
        ["Finished", "Snapshot", "Result", "Expectations", "Failed", "Duration", "Baseline"],
        [
            [
                f"{r['finished_at']:%Y-%m-%d %H:%M} UTC",
                (r["snapshot_id"], "mono"),
                ("passed", "badge good") if r["passed"] else ("failed", "badge bad"),
                fmt.count(r["expectations_evaluated"]),
                fmt.count(r["expectations_failed"]),
                f"{r['duration_seconds']:.0f} s",
                "–" if r["baseline_no"] is None else f"#{r['baseline_no']}",
            ]
            for r in runs
        ],
        numeric=frozenset({3, 4, 5}),
        caption="The last validation runs, newest first.",
    )
