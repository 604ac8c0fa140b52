"""Run Airflow 3 on this machine for the project: ``airflow`` CLI calls and a local standalone stack.

Used by the tests (``airflow dags test``, a real scheduler for backfills) and by ``lens`` commands.
The metadata database is SQLite under the state directory by default (enough for ``dags test``);
a scheduler with the LocalExecutor needs PostgreSQL, so :func:`environment` can point it at a
database on the warehouse server instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from customer_lens.config import environment as env_mod
from customer_lens.config import settings as settings_mod

if TYPE_CHECKING:
    import psutil

log = logging.getLogger(__name__)


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


def airflow(
    *args: str, env: dict[str, str], timeout: int = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
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
        port: int = s.getsockname()[1]
        return port


class Standalone:
    """``airflow standalone`` (API server, scheduler, DAG processor, triggerer) as a context manager.

    Started in its own session, so a Ctrl-C meant for the caller does not reach it half-way. Stopping
    sends SIGINT to the standalone parent (its own clean shutdown: it stops each component), then
    SIGTERM, then SIGKILL to its process group *and* to every process of its tree (task processes put
    themselves in process groups of their own), each step waiting for all of them: no orphans. On
    Linux the standalone parent also gets SIGINT when the process that started it dies.
    """

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env = env
        self.log_path = log_path
        self.port = int(env.get("AIRFLOW__API__PORT", "8080"))
        host = env.get("AIRFLOW__API__HOST", "127.0.0.1")
        self.host = "127.0.0.1" if host in ("0.0.0.0", "::", "localhost", "") else host
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Standalone:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: int = 120, progress: Callable[[dict[str, str]], None] | None = None) -> None:
        """Start and wait until the API answers and the scheduler is healthy.

        ``progress`` is called about once a second with each component's health status.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("airflow")), "standalone"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Only an async-signal-safe libc call runs in the child (libc resolved beforehand).
                preexec_fn=_die_with_parent_hook(),  # noqa: PLW1509
            )
        deadline = time.monotonic() + timeout
        while True:
            status = self.health()
            if progress:
                progress(status)
            if all(status.get(part) == "healthy" for part in ("metadatabase", "scheduler")):
                return
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"airflow standalone exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"airflow standalone was not healthy after {timeout} s; see {self.log_path}")
            time.sleep(1)

    def health(self) -> dict[str, str]:
        """Each component's status from ``/api/v2/monitor/health`` (empty while the API is down)."""
        import json

        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as resp:
                status = json.load(resp)
        except (OSError, ValueError):
            return {}
        return {part: (value or {}).get("status") or "unknown" for part, value in status.items()}

    def healthy(self) -> bool:
        status = self.health()
        return all(status.get(part) == "healthy" for part in ("metadatabase", "scheduler"))

    def processes(self) -> list[psutil.Process]:
        """The standalone parent and all its descendants now alive (``psutil.Process`` objects)."""
        import psutil

        if not self.process or self.process.returncode is not None:  # reaped: its PID may be reused
            return []
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        """Stop every process of the stack (idempotent); returns when all are gone."""
        if not self.process:
            return
        pgid = self.process.pid  # start_new_session: the parent leads its own group
        try:
            self._signal_until_gone(pgid)
        finally:
            self.process.poll()  # reap the parent

    def _signal_until_gone(self, pgid: int) -> None:
        import psutil

        process = self.process
        assert process is not None  # stop() returns first without one

        known: dict[int, psutil.Process] = {}
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            # Look again at each step: a process may have started, or been orphaned, since the last.
            for proc in [*self.processes(), *known.values()]:
                with contextlib.suppress(psutil.Error):
                    known.update({p.pid: p for p in [proc, *proc.children(recursive=True)]})
            others = [p for p in known.values() if p.pid != pgid and _running(p)]
            if process.poll() is not None and not others and not _group_alive(pgid):
                return
            if sig == signal.SIGINT:
                # Standalone's own shutdown: it SIGTERMs each component, which stops its children.
                # (SIGINT to the whole group is worse: components then get SIGINT and SIGTERM at once,
                # and the scheduler, triggerer and executor workers hang until killed; measured here.)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pgid, signal.SIGINT)
            else:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, sig)
                for proc in others:
                    with contextlib.suppress(psutil.Error):
                        proc.send_signal(sig)
            deadline = time.monotonic() + wait
            parent_alone_since = None
            while any(_running(p) for p in others) or _group_alive(pgid):
                if time.monotonic() > deadline:
                    break
                # `airflow standalone` itself may linger after its components are gone: don't wait on it.
                if process.poll() is None and not any(_running(p) for p in others):
                    parent_alone_since = parent_alone_since or time.monotonic()
                    if time.monotonic() - parent_alone_since > 2:
                        break
                time.sleep(0.2)
            else:
                log.debug("airflow standalone stopped after %s", signal.Signals(sig).name)
                return
            left = [p.pid for p in others if _running(p)]
            log.debug("after %s: %s still running, group alive: %s", signal.Signals(sig).name, left, _group_alive(pgid))


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie (a zombie is gone, only not yet reaped by its parent)."""
    import psutil

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is still in process group ``pgid``."""
    import psutil

    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and _running(proc):
                return True
    return False


def _die_with_parent_hook() -> Callable[[], None] | None:
    """Linux: a pre-exec hook so the child gets SIGINT when its parent dies (a killed caller leaves no Airflow)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGINT)

    return hook
