"""Helpers for the tests that start a real Airflow (``lens airflow``) and drive it through its API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from customer_lens.local import airflow_cli
from customer_lens.local.airflow_ui import ApiClient


def lens_processes(state: Path) -> list[psutil.Process]:
    """Every live process started for this state directory (they all carry it in their environment)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("LENS_STATE_DIR") == str(state) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def wait_for_output(path: Path, proc: subprocess.Popen, marker: str, timeout: float) -> str:
    """The output file's text once ``marker`` shows in it; fails when the process exits or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if marker in text:
            return text
        if proc.poll() is not None:
            pytest.fail(f"lens airflow exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(1)
    pytest.fail(f"lens airflow not ready after {timeout} s:\n{path.read_text(errors='replace')[-3000:]}")


def wait_for_run(api: ApiClient, dag_id: str, run_id: str, timeout: float) -> str:
    """The final state of a DAG run (``success`` / ``failed``), or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(2)
    return "timeout"


def start_lens_airflow(out: Path) -> tuple[subprocess.Popen, int]:
    """``lens airflow`` in its own session on a free port, its output in ``out``: (process, port)."""
    port = airflow_cli.free_port()
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "customer_lens.local.airflow_ui", "--port", str(port)],
            env=dict(os.environ),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, port
