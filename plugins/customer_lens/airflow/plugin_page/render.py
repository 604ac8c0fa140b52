"""The Customer Lens page as one self-contained HTML document (inline CSS, no scripts).

Every value from the database is escaped. Links are built by the caller (:mod:`.routes`), which
knows where the page is mounted and which report files exist.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from html import escape

from customer_lens.airflow.plugin_page.queries import Baseline, Kpi, Overview

_CSS = """
:root { color-scheme: light dark; --muted: #6b7280; --line: #d1d5db; --ok: #15803d; --bad: #b91c1c; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem; max-width: 1200px; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.1rem; margin: 2rem 0 .5rem; }
.muted { color: var(--muted); } .links a { margin-right: 1rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: .75rem; font-weight: 600; color: #fff; }
.passed, .current { background: var(--ok); } .failed { background: var(--bad); }
.retained, .pruned { background: var(--muted); }
.up { color: var(--ok); } .down { color: var(--bad); }
.notice { border: 1px solid var(--line); border-radius: .5rem; padding: 1rem; }
code { font-size: .95em; }
"""


def _ts(value: dt.datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _day(value: dt.datetime | None) -> str:
    return "…" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d")


def _number(value: Decimal | None) -> str:
    if value is None:
        return "—"
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _change(value: Decimal | None, base: Decimal | None, base_no: int | None, this_no: int | None) -> str:
    """``+12 (+3.4 %)`` against another baseline; blank when it is this baseline itself or unknown."""
    if value is None or base is None or base_no is None or base_no == this_no:
        return '<span class="muted">—</span>'
    delta = value - base
    css = "up" if delta > 0 else "down" if delta < 0 else "muted"
    text = ("+" if delta > 0 else "") + _number(delta)
    if base != 0:
        text += f" ({delta / abs(base) * 100:+.1f} %)"
    return f'<span class="{css}">{escape(text)}</span> <span class="muted">vs #{base_no}</span>'


def _badge(word: str) -> str:
    return f'<span class="badge {escape(word)}">{escape(word)}</span>'


def _interval(b: Baseline) -> str:
    if b.data_interval_start is None and b.data_interval_end is None:
        return "—"
    return f"{_day(b.data_interval_start)} → {_day(b.data_interval_end)}"


def _link(url: str | None, text: str) -> str:
    return f'<a href="{escape(url)}">{escape(text)}</a>' if url else f'<span class="muted">{escape(text)}</span>'


def _kpi_rows(kpis: list[Kpi], this_no: int | None) -> str:
    return "".join(
        f"<tr><td>{escape(k.kpi)}</td><td class='num'>{_number(k.value)}</td>"
        f"<td class='num'>{_change(k.value, k.previous, k.previous_no, this_no)}</td>"
        f"<td class='num'>{_change(k.value, k.first, k.first_no, this_no)}</td></tr>"
        for k in kpis
    )


def _validation_section(overview: Overview, docs_url: Callable[[str | None], str | None]) -> str:
    run = overview.latest_validation
    if run is None:
        return "<h2>Latest validation</h2><p class='muted'>No validation has run yet.</p>"
    verdict = "passed" if run.passed else "failed"
    parts = [
        "<h2>Latest validation</h2>",
        f"<p>{_badge(verdict)} <code>{escape(run.run_id)}</code> of snapshot <code>{escape(run.snapshot_id)}</code>,"
        f" finished {_ts(run.finished_at)} in {run.duration_seconds:.1f} s, triggered by {escape(run.triggered_by)}"
        + (f", became baseline #{run.baseline_no}" if run.baseline_no is not None else "")
        + "</p>",
        f"<p>{run.expectations_evaluated:,} expectations evaluated, {run.expectations_failed:,} failed."
        f" {escape(run.summary)}</p>",
        f"<p class='links'>{_link(docs_url(run.report_path), 'Validation docs')}</p>",
    ]
    if overview.failures:
        rows = "".join(
            f"<tr><td>{escape(f.mart)}</td><td>{escape(f.column_name or '—')}</td><td>{escape(f.expectation)}</td>"
            f"<td>{escape(f.observed or '—')}</td><td>{escape(f.expected or '—')}</td></tr>"
            for f in overview.failures
        )
        more = overview.failures_total - len(overview.failures)
        parts.append(
            "<table><thead><tr><th>mart</th><th>column</th><th>expectation</th><th>observed</th>"
            f"<th>expected</th></tr></thead><tbody>{rows}</tbody></table>"
            + (f"<p class='muted'>… and {more:,} more (see the validation docs).</p>" if more > 0 else "")
        )
    elif not run.passed:
        parts.append("<p class='muted'>No failure rows were recorded for this run.</p>")
    return "".join(parts)


def _history_section(overview: Overview, docs_url: Callable[[str | None], str | None]) -> str:
    rows = "".join(
        f"<tr><td class='num'>#{b.baseline_no}</td><td>{_badge(b.status)}</td><td>{_ts(b.promoted_at)}</td>"
        f"<td>{_interval(b)}</td><td>{escape(b.promoted_by)}</td><td>{escape(b.reason)}</td>"
        f"<td><code>{escape(b.snapshot_id)}</code></td>"
        f"<td>{_link(docs_url(b.validation_report_path), b.validation_run_id or '—')}</td></tr>"
        for b in overview.baselines
    )
    return (
        "<h2>Baseline history</h2><table><thead><tr><th class='num'>no</th><th>status</th><th>promoted</th>"
        "<th>data interval</th><th>by</th><th>why</th><th>snapshot</th><th>validation</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _recent_section(overview: Overview, docs_url: Callable[[str | None], str | None]) -> str:
    if len(overview.validations) < 2:
        return ""
    rows = "".join(
        f"<tr><td>{_ts(v.finished_at)}</td><td>{_badge('passed' if v.passed else 'failed')}</td>"
        f"<td>{_link(docs_url(v.report_path), v.run_id)}</td><td><code>{escape(v.snapshot_id)}</code></td>"
        f"<td class='num'>{v.expectations_failed:,} / {v.expectations_evaluated:,}</td>"
        f"<td>{escape(v.summary)}</td></tr>"
        for v in overview.validations
    )
    return (
        "<h2>Recent validations</h2><table><thead><tr><th>finished</th><th>result</th><th>run</th>"
        "<th>snapshot</th><th class='num'>failed / evaluated</th><th>summary</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def page(
    overview: Overview | None,
    *,
    report_url: str | None,
    docs_url: Callable[[str | None], str | None],
    error: str | None = None,
    now: dt.datetime | None = None,
) -> str:
    """The whole page. ``overview`` is None when the warehouse could not be read (``error`` says why)."""
    now = now or dt.datetime.now(dt.UTC)
    body = [
        "<h1>Customer Lens</h1>",
        "<p class='muted'>Baselines of the customer marts: what was promoted, how the headline KPIs moved,"
        f" and what the last validation found. As of {_ts(now)}.</p>",
        f"<p class='links'>{_link(report_url, 'HTML report' if report_url else 'HTML report: not written yet')}</p>",
    ]
    if overview is None:
        body.append(f"<div class='notice'><strong>The warehouse does not answer.</strong> {escape(error or '')}</div>")
    elif not overview.baselines:
        body.append(
            "<div class='notice'><strong>No baseline yet.</strong> The first snapshot of the marts that passes"
            " validation becomes baseline #1; every later one is compared with it. Run the pipeline"
            " (<code>make run</code>, or trigger the DAGs here) to record it.</div>"
        )
    if overview is not None and overview.audit_ready:
        current = overview.current
        if current:
            body.append(
                f"<h2>Current baseline: #{current.baseline_no}</h2><p>Promoted {_ts(current.promoted_at)} by"
                f" {escape(current.promoted_by)} ({escape(current.reason)}); data {_interval(current)}.</p>"
            )
        elif overview.baselines:
            body.append("<h2>Current baseline</h2><p class='muted'>None is marked current.</p>")
        if overview.kpis:
            body.append(
                f"<h2>Headline KPIs of baseline #{overview.kpi_baseline_no}</h2><table><thead><tr><th>KPI</th>"
                "<th class='num'>value</th><th class='num'>vs previous</th><th class='num'>vs first</th>"
                f"</tr></thead><tbody>{_kpi_rows(overview.kpis, overview.kpi_baseline_no)}</tbody></table>"
            )
        if overview.restatements_pending and overview.restatements_pending[0]:
            figures, periods, first = overview.restatements_pending
            body.append(
                f"<div class='notice'><strong>Restatements pending:</strong> {figures:,} figure(s) of {periods:,}"
                " closed period(s) differ from what the data now says (analytics.restatements_pending). They"
                f" stay as reported until <code>lens restate --from {first:%Y-%m} --reason …</code>.</div>"
            )
        body.append(_validation_section(overview, docs_url))
        if overview.baselines:
            body.append(_history_section(overview, docs_url))
        body.append(_recent_section(overview, docs_url))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Customer Lens</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )
