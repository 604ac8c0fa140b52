"""The Customer Lens report (``customer_lens.report``), rendered from a real pipeline and opened in Chromium.

The world is built once for the module by the real CLI (``lens run`` at tiny scale: demo sources, raw layer,
dbt marts, the snapshot guard, baseline #1). The page is checked in Debian's headless ``chromium`` driven by
Playwright's Python client (no browser download): no JavaScript error, no request leaving ``file://``, every
chart drawn. A full-page screenshot is kept under ``.lens/test-artifacts/`` (``LENS_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shutil
import socket
from pathlib import Path

import psycopg
import pytest
from lens_cli import run_lens
from plotly.offline import get_plotlyjs

from customer_lens import report
from customer_lens.config import settings as settings_mod

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("LENS_TEST_ARTIFACTS") or REPO / ".lens" / "test-artifacts")
CHROMIUM = os.environ.get("LENS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
EXPECTED_CHARTS = {
    "segments",
    "value-tiers",
    "segment-history",
    "migrations-rfm-segment",
    "migrations-value-tier",
    "complaints",
    "guerrilla",
    "renewal-reasons",
    "nps-segments",
    "nps-trend",
    "lost-reasons",
    "baseline-history",
}

# For every chart container: did Plotly draw it (an SVG, visible traces, marks on them)?
CHARTS_JS = """
() => [...document.querySelectorAll('figure.chart')].map(figure => {
  const gd = figure.querySelector('.plotly-graph-div');
  const full = (gd && gd._fullData) || [];
  return {
    name: figure.dataset.chart,
    svg: gd ? gd.querySelectorAll('svg.main-svg').length : 0,
    visible_traces: full.filter(t => t.visible === true).length,
    marks: gd ? gd.querySelectorAll('.point, .js-line, .js-fill, .hm image').length : 0,
    width: gd ? gd.getBoundingClientRect().width : 0,
  };
})
"""


def _settings(state_dir: Path, warehouse_url: str) -> settings_mod.Settings:
    return dataclasses.replace(
        settings_mod.load(), state_dir=state_dir, sources_dir=state_dir / "sources", warehouse_url=warehouse_url
    )


def _chromium_or_skip() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"chromium not found at {CHROMIUM}: CI installs Debian's chromium (apt-get install chromium)")
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium, or set LENS_CHROMIUM)")


@dataclasses.dataclass
class PageCheck:
    errors: list[str]
    requests: list[str]
    charts: list[dict]
    no_data_sections: list[str]
    failed_sections: list[str]


def _open_in_chromium(path: Path, screenshot: Path | None = None) -> PageCheck:
    """Load the report from disk in headless Chromium, offline, and read back what it drew."""
    from playwright.sync_api import sync_playwright

    executable = _chromium_or_skip()
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1360, "height": 900}, offline=True)
            page = context.new_page()
            page.on(
                "console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None
            )
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("request", lambda request: requests.append(request.url))
            # Anything but the file itself is refused (and recorded above): the report must not need it.
            page.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_function(
                "[...document.querySelectorAll('figure.chart')].every(f => f.querySelector('svg.main-svg'))",
                timeout=30_000,
            )
            charts = page.evaluate(CHARTS_JS)
            no_data = page.eval_on_selector_all("section:has(.no-data)", "els => els.map(e => e.id)")
            failed = page.eval_on_selector_all("section:has(.section-error)", "els => els.map(e => e.id)")
            if screenshot:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return PageCheck(errors, requests, charts, no_data, failed)


@pytest.fixture(scope="module")
def world(make_database, tmp_path_factory: pytest.TempPathFactory) -> settings_mod.Settings:
    """A warehouse after a real ``lens run`` at tiny scale: marts built, validated, baseline #1 promoted."""
    wh = make_database("report_wh")
    state = tmp_path_factory.mktemp("report") / "state"
    run_lens(
        "run",
        "--scale",
        "tiny",
        "--seed",
        "11",
        env={"LENS_STATE_DIR": str(state), "LENS_WAREHOUSE_URL": wh},
        timeout=900,
    )
    return _settings(state, wh)


@pytest.mark.slow
def test_report_draws_every_chart_offline_in_chromium(world: settings_mod.Settings) -> None:
    lines: list[str] = []
    path = report.render(world, progress=lines.append)
    assert path == world.state_dir / "reports" / "customer_lens.html"
    assert len(lines) == len(report.SECTIONS)
    html = path.read_text(encoding="utf-8")
    plotly_js = get_plotlyjs()
    assert html.count(plotly_js) == 1, "plotly.js is inlined exactly once"
    own_markup = html.replace(plotly_js, "")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", own_markup), "no external script, style or link"

    screenshot = ARTIFACTS / "report.png"
    page = _open_in_chromium(path, screenshot)
    print(f"\nreport: {path}\nscreenshot: {screenshot}")

    assert page.errors == []
    assert [url for url in page.requests if not url.startswith("file:")] == []
    drawn = {c["name"] for c in page.charts}
    assert drawn >= EXPECTED_CHARTS, f"missing charts: {EXPECTED_CHARTS - drawn}"
    for chart in page.charts:
        assert chart["svg"] > 0 and chart["visible_traces"] > 0 and chart["marks"] > 0, chart
        assert chart["width"] > 600, chart
    assert page.failed_sections == []
    assert page.no_data_sections == [], "every section has data after a real run"
    assert screenshot.stat().st_size > 100_000


@pytest.mark.slow
def test_report_shows_the_current_baseline_and_names_customers_by_id_only(world: settings_mod.Settings) -> None:
    path = report.render(world)
    html = path.read_text(encoding="utf-8")
    with psycopg.connect(world.warehouse_url) as conn:
        baseline_no, snapshot = conn.execute(
            "select baseline_no, schema_name from lens_audit.baselines where status = 'current'"
        ).fetchone()
        as_of = conn.execute("select max(as_of_date) from analytics.customers").fetchone()[0]
        kpis = conn.execute(
            "select count(*) from analytics.baseline_kpis where baseline_no = %s", (baseline_no,)
        ).fetchone()[0]
        # The lost-customer review's top 10, straight from the snapshot (which still holds the names).
        top = conn.execute(
            f"""
            select customer_id, customer_name from {snapshot}.lost_customer_review
            where period_type = 'month' and period_start_date = (
                select max(period_start_date) from {snapshot}.lost_customer_review
                where period_type = 'month' and is_complete_period)
            order by value_rank, customer_id limit 10
            """
        ).fetchall()
    assert f"Baseline <b>#{baseline_no}</b>" in html
    assert f"Data as of <b>{as_of:%-d %B %Y}</b>" in html
    assert html.count('class="kpi"') == kpis > 0
    assert top, "the tiny world has lost customers in its last complete month"
    lost_section = html[html.index('id="lost"') : html.index('id="history"')]
    shown = re.findall(r'<td class="mono">#(\d+)</td>', lost_section)
    assert shown == [str(customer_id) for customer_id, _ in top]
    for _, name in top:
        assert name and name not in html
    # one full build: nothing has arrived for closed periods since
    assert "Closed periods: nothing has arrived for them since they were built." in html


def test_report_before_any_baseline_says_so_and_changes_nothing(make_database, tmp_path: Path) -> None:
    wh = make_database("report_empty")
    cfg = _settings(tmp_path / "state", wh)
    path = report.render(cfg)
    assert path == tmp_path / "state" / "reports" / "customer_lens.html"
    html = path.read_text(encoding="utf-8")
    assert 'id="no-baseline"' in html and "No baseline yet" in html
    assert html.count('class="empty no-data"') == len(report.SECTIONS)
    with psycopg.connect(wh) as conn:
        schemas = {r[0] for r in conn.execute("select nspname from pg_namespace")}
    assert not schemas & {"analytics", "lens_audit"}, "the report only reads"

    page = _open_in_chromium(path, tmp_path / "empty.png")
    assert page.errors == []
    assert page.charts == []
    assert sorted(page.no_data_sections) == sorted(key for key, *_ in report.SECTIONS)


def test_report_without_a_warehouse_fails_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = _settings(tmp_path / "state", f"postgresql://postgres@127.0.0.1:{port}/lens")
    with pytest.raises(report.ReportError) as raised:
        report.render(cfg)
    message = str(raised.value)
    assert message.startswith("cannot reach the warehouse") and "LENS_WAREHOUSE_URL" in message
    assert "\n" not in message
    assert not (tmp_path / "state" / "reports").exists()


def _has_report_command() -> bool:
    from customer_lens.cli import app

    return any(c.name == "report" for c in app.registered_commands)


@pytest.mark.slow
@pytest.mark.skipif(not _has_report_command(), reason="`lens report` is not wired into the CLI yet")
def test_lens_report_command_writes_the_report(world: settings_mod.Settings, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere.html"
    env = {"LENS_STATE_DIR": str(world.state_dir), "LENS_WAREHOUSE_URL": world.warehouse_url}
    started = dt.datetime.now()
    result = run_lens("report", "--out", str(out), env=env)
    assert str(out) in result.stdout
    assert out.stat().st_mtime >= started.timestamp() - 1
