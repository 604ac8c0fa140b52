"""``lens airflow`` and the Customer Lens page of the Airflow UI.

The page's data and HTML are checked against a real database; one real Airflow start (as
``python -m customer_lens.local.airflow_ui``, what ``lens airflow`` runs) checks the rest end to end: login,
DAGs, connections, the registered plugin and its page, a DAG run triggered through the API, the
report files and that nothing outside the reports directory is served, and that SIGINT leaves no
process behind.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import psycopg
import pytest
from airflow_procs import lens_processes, start_lens_airflow, wait_for_output, wait_for_run
from lens_cli import run_lens

from customer_lens.airflow.plugin_page import queries, render, routes
from customer_lens.config import settings
from customer_lens.guard import audit
from customer_lens.local import airflow_ui, warehouse
from customer_lens.local.airflow_ui import ApiClient

UTC = dt.UTC
RUN_OK, RUN_BAD = "val_20260301_ok", "val_20260302_bad"

SEED = """
insert into lens_audit.snapshots (snapshot_id, snapshot_no, schema_name, candidate_schema, marts, status) values
    ('snap_1', 1, 'lens_snapshot_1', 'analytics_candidate', '{customers}', 'promoted'),
    ('snap_2', 2, 'lens_snapshot_2', 'analytics_candidate', '{customers}', 'promoted'),
    ('snap_3', 3, 'lens_snapshot_3', 'analytics_candidate', '{customers}', 'quarantined');
insert into lens_audit.validation_runs (run_id, snapshot_id, started_at, finished_at, duration_seconds, passed,
    expectations_evaluated, expectations_failed, summary, report_path, baseline_no, triggered_by) values
    ('val_20260201_ok', 'snap_1', '2026-02-01 06:00Z', '2026-02-01 06:00:02Z', 2.0, true, 40, 0, 'all good',
     null, 1, 'lens run'),
    (%(ok)s, 'snap_2', '2026-03-01 06:00Z', '2026-03-01 06:00:03Z', 3.0, true, 40, 0, 'all good', %(ok_path)s, 2,
     'airflow'),
    (%(bad)s, 'snap_3', '2026-03-02 06:00Z', '2026-03-02 06:00:04Z', 4.0, false, 40, 2,
     '2 of 40 expectations failed', %(bad_path)s, null, 'airflow');
insert into lens_audit.validation_failures (run_id, mart, expectation, column_name, observed, expected) values
    (%(bad)s, 'customers', 'expect_column_values_to_not_be_null', 'email', '12 nulls <script>', '0 nulls'),
    (%(bad)s, 'guerrilla_metrics', 'expect_revenue_within_drift', 'revenue', '-38.0 %%', 'within ±20 %%');
insert into lens_audit.baselines (baseline_no, snapshot_id, schema_name, promoted_at, data_interval_start,
    data_interval_end, promoted_by, reason, validation_run_id, status) values
    (1, 'snap_1', 'lens_snapshot_1', '2026-02-01 06:01Z', '2023-01-01 00:00Z', '2026-02-01 00:00Z', 'lens run',
     'validated', 'val_20260201_ok', 'retained'),
    (2, 'snap_2', 'lens_snapshot_2', '2026-03-01 06:01Z', '2026-02-01 00:00Z', '2026-03-01 00:00Z', 'airflow',
     'validated', %(ok)s, 'current');
insert into lens_audit.baseline_kpi_values (baseline_no, kpi, value) values
    (1, 'active_customers', 100), (2, 'active_customers', 110),
    (1, 'revenue', 2000.50), (2, 'revenue', 1500.25),
    (2, 'nps', 31);
"""


def seed_audit(conn, reports: Path) -> None:
    """Two baselines (#2 current), KPI values, a passed and a later failed validation with its failures."""
    audit.ensure(conn)
    params = {
        "ok": RUN_OK,
        "bad": RUN_BAD,
        "ok_path": str(reports / "validation" / f"{RUN_OK}.html"),
        "bad_path": str(reports / "validation" / f"{RUN_BAD}.html"),
    }
    for statement in SEED.split(";\n"):
        if statement.strip():
            conn.execute(statement, {k: v for k, v in params.items() if f"%({k})s" in statement})


def write_reports(reports: Path) -> None:
    (reports / "validation").mkdir(parents=True, exist_ok=True)
    (reports / "customer_lens.html").write_text("<html><body>the customer lens report</body></html>")
    (reports / "validation" / f"{RUN_BAD}.html").write_text("<html><body>docs of the failed run</body></html>")


# -- the page's data and HTML, against a real database -------------------------------------------
def test_overview_and_page_follow_the_audit(make_database, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LENS_WAREHOUSE_URL", make_database("ui_audit"))
    monkeypatch.setenv("LENS_STATE_DIR", str(tmp_path / "state"))
    reports = tmp_path / "state" / "reports"

    # Before the audit schema exists (fresh warehouse): no baseline, and the page says what to do.
    before = queries.load()
    assert not before.audit_ready
    assert "No baseline yet" in render.page(before, report_url=None, docs_url=lambda _: None)

    with audit.connect():
        pass
    empty = queries.load()
    assert empty.audit_ready and empty.baselines == [] and empty.latest_validation is None

    with audit.connect() as conn:
        seed_audit(conn, reports)
    write_reports(reports)
    overview = queries.load()

    assert [b.baseline_no for b in overview.baselines] == [2, 1]
    assert overview.current.baseline_no == overview.kpi_baseline_no == 2
    kpis = {k.kpi: k for k in overview.kpis}
    assert (kpis["active_customers"].value, kpis["active_customers"].previous, kpis["active_customers"].first) == (
        110,
        100,
        100,
    )
    assert kpis["nps"].previous is None and kpis["nps"].first_no == 2  # new in #2: no comparison
    assert overview.latest_validation.run_id == RUN_BAD and not overview.latest_validation.passed
    assert [f.mart for f in overview.failures] == ["customers", "guerrilla_metrics"]
    assert overview.failures_total == 2

    html = render.page(
        overview,
        report_url=routes.report_url(reports, routes.REPORT_NAME),
        docs_url=lambda path: routes.report_url(reports, path),
    )
    assert "Current baseline: #2" in html
    assert "+10 (+10.0 %)" in html  # active customers vs #1 and vs previous
    assert "-500.25 (-25.0 %)" in html  # revenue vs #1
    assert "expect_column_values_to_not_be_null" in html and "within ±20 %" in html
    assert "<script>" not in html and "12 nulls &lt;script&gt;" in html  # database text is escaped
    assert 'href="/customer-lens/reports/customer_lens.html"' in html
    assert f'href="/customer-lens/reports/validation/{RUN_BAD}.html"' in html
    assert f"/customer-lens/reports/validation/{RUN_OK}.html" not in html  # that file does not exist


def test_report_files_never_leave_the_reports_directory(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    write_reports(reports)
    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    (reports / "validation" / "escape.html").symlink_to(secret)
    (reports / ".hidden.html").write_text("no")

    assert routes.report_file(reports, "customer_lens.html") == (reports / "customer_lens.html").resolve()
    assert routes.report_file(reports, f"validation/{RUN_BAD}.html") is not None
    for bad in (
        "../secret.txt",
        "validation/../../secret.txt",
        "/etc/passwd",
        str(secret),
        "validation/escape.html",  # a symlink out of the directory
        ".hidden.html",
        "validation",  # a directory
        "missing.html",
        "",
        "validation\\..\\..\\secret.txt",
    ):
        assert routes.report_file(reports, bad) is None, bad
    assert routes.report_url(reports, tmp_path / "secret.txt") is None
    assert routes.report_url(reports, None) is None


# -- lens airflow ---------------------------------------------------------------------------------
def test_login_is_generated_once_and_private(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LENS_STATE_DIR", str(tmp_path / "state"))
    first = airflow_ui.ensure_login(settings.load())
    again = airflow_ui.ensure_login(settings.load())
    assert first == again and first.user == "admin" and len(first.password) >= 16
    assert first.password_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(first.password_file.read_text()) == {"admin": first.password}


def test_a_busy_port_is_one_clear_error_before_anything_starts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LENS_STATE_DIR", str(tmp_path / "state"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(airflow_ui.AirflowUIError, match=f"port {port} on 127.0.0.1 is in use"):
            airflow_ui.serve(port=port, echo=lambda _line: None)
    assert not (tmp_path / "state").exists()  # no warehouse, no Airflow home


def _http(url: str, token: str | None = None, accept: str = "text/html") -> tuple[int, str, dict]:
    headers = {"Accept": accept} | ({"Authorization": f"Bearer {token}"} if token else {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            return resp.status, resp.read().decode(), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), {k.lower(): v for k, v in exc.headers.items()}


def _check_dags_and_plugin(api: ApiClient) -> None:
    """The project's DAGs, parsed without errors; Customer Lens' plugin registered without errors."""
    dag_ids = {d["dag_id"] for d in api.get("/api/v2/dags?limit=100")["dags"]}
    assert {"lens_demo_sources", "lens_transform", "extract_sales", "extract_service", "extract_survey"} <= dag_ids
    assert api.get("/api/v2/importErrors")["total_entries"] == 0
    plugins = {p["name"]: p for p in api.get("/api/v2/plugins?limit=100")["plugins"]}
    lens = plugins["customer_lens"]
    assert [a["url_prefix"] for a in lens["fastapi_apps"]] == ["/customer-lens"]
    assert lens["external_views"][0]["url_route"] == "customer-lens"
    assert lens["external_views"][0]["nav_top_level"] is True
    assert api.get("/api/v2/plugins/importErrors")["total_entries"] == 0


def _check_connections(api: ApiClient, state: Path) -> None:
    """Connections to the warehouse and the sources, pointing where lens itself reads."""
    wh = api.get("/api/v2/connections/lens_warehouse")
    assert (wh["conn_type"], wh["host"], wh["port"], wh["schema"]) == (
        "postgres",
        "127.0.0.1",
        warehouse.embedded().port,
        "lens",
    )
    assert api.get("/api/v2/connections/lens_source_sales")["schema"] == "sales_src"
    assert json.loads(api.get("/api/v2/connections/lens_source_survey")["extra"])["path"] == str(
        state / "sources" / "survey"
    )


def _check_page(url: str, api: ApiClient, state: Path, password: str) -> None:
    """The page: login required (a browser is sent to the login page), then empty, then the audit."""
    status, _body, headers = _http(f"{url}/customer-lens/")
    assert status == 303 and "/auth/login" in headers["location"]
    assert _http(f"{url}/customer-lens/", accept="application/json")[0] == 401
    status, body, _ = _http(f"{url}/customer-lens/", api.token)
    assert status == 200 and "Customer Lens" in body and "No baseline yet" in body

    reports = state / "reports"
    with audit.connect() as conn:
        seed_audit(conn, reports)
    write_reports(reports)
    status, body, _ = _http(f"{url}/customer-lens/", api.token)
    assert status == 200 and "Current baseline: #2" in body and "+10 (+10.0 %)" in body
    assert RUN_BAD in body and "expect_revenue_within_drift" in body

    status, body, _ = _http(f"{url}/customer-lens/reports/customer_lens.html", api.token)
    assert status == 200 and "the customer lens report" in body
    status, body, _ = _http(f"{url}/customer-lens/reports/validation/{RUN_BAD}.html", api.token)
    assert status == 200 and "docs of the failed run" in body
    for bad in ("../airflow/passwords.json", "%2e%2e/airflow/passwords.json", "..%2fairflow%2fpasswords.json"):
        status, body, _ = _http(f"{url}/customer-lens/reports/{bad}", api.token)
        assert status == 404 and password not in body, bad
    assert _http(f"{url}/customer-lens/reports/customer_lens.html", accept="*/*")[0] == 401


def _trigger_demo_sources(api: ApiClient, state: Path) -> None:
    """The pipeline can be triggered: a real run of the demo-sources DAG on the LocalExecutor."""
    api.request("PATCH", "/api/v2/dags/lens_demo_sources", {"is_paused": False})
    run = api.request(
        "POST",
        "/api/v2/dags/lens_demo_sources/dagRuns",
        {"logical_date": None, "conf": {"scale": "tiny", "seed": 5, "end_date": "2026-03-31"}},
    )
    assert wait_for_run(api, "lens_demo_sources", run["dag_run_id"], timeout=300) == "success"
    assert json.loads((state / "sources" / "demo_generation.json").read_text())["scale"] == "tiny"


def _stop(proc: subprocess.Popen, state: Path) -> list[psutil.Process]:
    """SIGINT, as Ctrl-C does; whatever is left after it is killed (and returned, for the assertion)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=120)
    finally:
        deadline = time.monotonic() + 30
        while lens_processes(state) and time.monotonic() < deadline:
            time.sleep(0.5)
        leftovers = lens_processes(state)
        for leftover in leftovers:  # never leave them running, even when the test fails
            leftover.kill()
    return leftovers


@pytest.mark.slow
def test_lens_airflow_serves_the_project_and_leaves_no_process(tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "state"
    for var in ("LENS_WAREHOUSE_URL", "LENS_WAREHOUSE_PORT", "LENS_SALES_SRC_URL", "LENS_SOURCES_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LENS_STATE_DIR", str(state))
    out = tmp_path / "lens-airflow.out"
    started = time.monotonic()
    proc, port = start_lens_airflow(out)
    tree: list[psutil.Process] = []
    try:
        text = wait_for_output(out, proc, "Press Ctrl-C to stop.", timeout=300)
        ready_after = time.monotonic() - started
        password = re.search(r"login\s+admin / (\S+)", text).group(1)
        url = f"http://127.0.0.1:{port}"
        assert f"Airflow is ready: {url}" in text and "log: " in text
        api = ApiClient.login(url, "admin", password)

        _check_dags_and_plugin(api)
        _check_connections(api, state)
        _check_page(url, api, state, password)
        _trigger_demo_sources(api, state)

        proc_info = psutil.Process(proc.pid)
        tree = [proc_info, *proc_info.children(recursive=True)]
        assert len(tree) >= 5  # lens, standalone, scheduler, DAG processor, triggerer, API server, ...
    finally:
        stop_started = time.monotonic()
        leftovers = _stop(proc, state)
    stop_took = time.monotonic() - stop_started
    print(f"lens airflow: ready after {ready_after:.0f} s, stopped in {stop_took:.0f} s")

    assert proc.returncode == 0, out.read_text()[-3000:]
    assert [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert leftovers == []
    tail = out.read_text()
    assert "Airflow stopped" in tail and "warehouse stopped" in tail
    with pytest.raises(psycopg.OperationalError):  # the warehouse it had started is down again
        psycopg.connect(warehouse.embedded().url(), connect_timeout=2).close()


def test_lens_backfill_creates_the_runs_for_the_scheduler(tmp_path: Path) -> None:
    """`lens backfill` from a plain shell: no variables to export, the DAG unpaused, one run per date queued."""
    state = tmp_path / "state"
    env = {"LENS_STATE_DIR": str(state)}
    try:
        done = run_lens("backfill", "extract_sales", "--start", "2026-01-01", "--end", "2026-01-03", env=env)
        assert "extract_sales is unpaused" in done.stdout
        url = run_lens("warehouse", "url", "--database", airflow_ui.METADATA_DB, env=env).stdout.strip()
        with psycopg.connect(url) as conn:
            assert conn.execute("select is_paused from dag where dag_id = 'extract_sales'").fetchone() == (False,)
            runs = conn.execute(
                "select run_type, state, logical_date::date::text from dag_run where dag_id = 'extract_sales' "
                "order by logical_date"
            ).fetchall()
        assert runs == [("backfill", "queued", f"2026-01-0{day}") for day in (1, 2, 3)]
        refused = run_lens(
            "backfill", "extract_nope", "--start", "2026-01-01", "--end", "2026-01-02", env=env, check=False
        )
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert refused.stderr.startswith("error: no DAG 'extract_nope' in this project (its DAGs: ")
    finally:
        run_lens("warehouse", "stop", env=env, check=False)
