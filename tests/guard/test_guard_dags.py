"""The guard and the operator actions as Airflow DAGs, under ``airflow dags test``; alerts by webhook."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from customer_lens.local import airflow_cli

CANDIDATE = "analytics_candidate"


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Webhook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    _Webhook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Webhook.received
    server.shutdown()


def test_guard_and_operator_dags(guard_world, webhook, tmp_path: Path) -> None:
    url, received = webhook
    env = airflow_cli.environment(
        home=tmp_path / "airflow", extra=guard_world.env_vars | {"LENS_ALERT_WEBHOOK_URL": url}
    )
    airflow_cli.airflow("db", "migrate", env=env)
    guard_world.restore_candidate()
    start_no = guard_world.one("select max(baseline_no) from lens_audit.baselines")[0]  # the newest, maybe not current

    # 1. a candidate with a few names changed (new data, no KPI moves): promoted, every KPI unchanged
    with guard_world.connect() as conn:
        conn.execute(
            f"update {CANDIDATE}.customers set customer_name = customer_name || ' ' where customer_id % 50 = 5"
        )
    airflow_cli.airflow("dags", "test", "lens_guard", env=env, timeout=900)
    promoted_no = guard_world.current()[0]
    assert promoted_no == start_no + 1
    by, changed = guard_world.one(
        "select b.promoted_by, (select count(*) from analytics.baseline_kpis k where k.baseline_no = b.baseline_no "
        "and k.change_vs_previous <> 0) from lens_audit.baselines b where status = 'current'"
    )
    assert by.startswith("airflow:lens_guard/") and changed == 0

    # 2. a damaged candidate: the run fails with the summary, the baseline stays, the webhook hears of it
    with guard_world.connect() as conn:
        conn.execute(f"update {CANDIDATE}.nps_by_segment set nps = 250 where nps_responses > 0")
    try:
        blocked = airflow_cli.airflow("dags", "test", "lens_guard", env=env, timeout=900, check=False)
    finally:
        guard_world.restore_candidate()
    log = blocked.stdout + blocked.stderr
    assert "nps_by_segment.nps: expect_column_values_to_be_between" in log
    assert guard_world.current()[0] == promoted_no
    alerts = [a for a in received if a["event"] == "snapshot_blocked"]
    assert len(alerts) == 1 and "nps_by_segment.nps" in alerts[0]["text"]
    assert not [a for a in received if a["event"] == "task_failed"]  # one alert per block, not two

    # 3. override: the quarantined snapshot becomes the baseline, with the reason
    conf = json.dumps({"reason": "survey scale changed to 0-250 (agreed)"})
    airflow_cli.airflow("dags", "test", "lens_baseline_override", "-c", conf, env=env, timeout=600)
    overridden_no = guard_world.current()[0]
    assert overridden_no == promoted_no + 1
    assert guard_world.one("select reason from lens_audit.baselines where baseline_no = %s", (overridden_no,))[0] == (
        "override: survey scale changed to 0-250 (agreed)"
    )
    assert guard_world.one("select max(nps) from analytics.nps_by_segment")[0] == 250

    # 4. rollback to the validated baseline
    conf = json.dumps({"baseline_no": promoted_no, "reason": "override was a mistake"})
    airflow_cli.airflow("dags", "test", "lens_baseline_rollback", "-c", conf, env=env, timeout=600)
    assert guard_world.current()[0] == promoted_no
    assert guard_world.one("select max(nps) from analytics.nps_by_segment")[0] <= 100
    actions = guard_world.one(
        "select array_agg(action order by event_id) from (select * from lens_audit.baseline_events "
        "order by event_id desc limit 3) e"
    )[0]
    assert actions == ["promote", "override", "rollback"]


def test_the_guard_dag_keeps_the_baseline_on_the_same_data(guard_world, tmp_path: Path) -> None:
    env = airflow_cli.environment(home=tmp_path / "airflow", extra=guard_world.env_vars)
    airflow_cli.airflow("db", "migrate", env=env)
    guard_world.restore_candidate()
    before = guard_world.current()
    done = airflow_cli.airflow("dags", "test", "lens_guard", env=env, timeout=900)
    assert "unchanged: validated, and equal to it" in done.stdout + done.stderr
    assert guard_world.current() == before
