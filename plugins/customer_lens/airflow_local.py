"""Run Airflow 3 on this machine for the project: ``airflow`` CLI calls and a local standalone stack.

Used by the tests (``airflow dags test``, a real scheduler for backfills) and by ``lens`` commands.
The metadata database is SQLite under the state directory by default (enough for ``dags test``);
a scheduler with the LocalExecutor needs PostgreSQL, so :func:`environment` can point it at a
database on the warehouse server instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from customer_lens import environment as env_mod
from customer_lens import settings as settings_mod


def environment(
    *,
    home: Path | None = None,
    metadata_url: str | None = None,
    port: int | None = None,
    extra: dict[str, str] | None = None,
    cfg: settings_mod.Settings | None = None,
) -> dict[str, str]:
    """A complete process environment for ``airflow`` commands on this project."""
    cfg = cfg or settings_mod.load()
    result = dict(os.environ) | env_mod.defaults(cfg) | env_mod.airflow_env(cfg)
    if home:
        result |= {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        }
    if metadata_url:
        result["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata_url.replace(
            "postgresql://", "postgresql+psycopg2://", 1
        )
        result["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    if port:
        result["AIRFLOW__API__PORT"] = str(port)
        result["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{port}/execution/"
    # The standalone command starts its components as `airflow ...` found on PATH.
    result["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{result.get('PATH', '')}"
    return result | (extra or {})


def airflow(*args: str, env: dict[str, str], timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run one ``airflow`` CLI command; on failure the error carries the tail of its output."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise RuntimeError(f"airflow {' '.join(args)} exited {result.returncode}:\n{tail}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Standalone:
    """``airflow standalone`` (API server, scheduler, DAG processor, triggerer) as a context manager.

    Started in its own process group; stopping sends SIGINT to the group (the components' clean
    shutdown), then SIGTERM, then SIGKILL to whatever is left — no orphans.
    """

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env = env
        self.log_path = log_path
        self.port = int(env.get("AIRFLOW__API__PORT", "8080"))
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Standalone:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: int = 120) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("airflow")), "standalone"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"airflow standalone did not become healthy; see {self.log_path}")
            time.sleep(1)

    def healthy(self) -> bool:
        import json

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=2) as resp:
                status = json.load(resp)
        except OSError:
            return False
        return all(status.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler"))

    def stop(self) -> None:
        if not self.process or self.process.poll() is not None:
            return
        pgid = os.getpgid(self.process.pid)
        for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                # Children may outlive the parent for a moment; the group signal reached them too.
                time.sleep(0.5)
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue
