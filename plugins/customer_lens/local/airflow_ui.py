"""``lens airflow``: Airflow 3 on this machine with the project's DAGs, connections and a login.

:func:`serve` does, in order, printing each step:

1. starts the warehouse if it is not running (and stops it again on exit, since it started it);
2. creates the Airflow metadata database ``lens_airflow`` on the warehouse server (the LocalExecutor
   needs PostgreSQL; SQLite stays for ``airflow dags test``);
3. makes sure the login exists: user ``admin`` with the ADMIN role of Airflow's simple auth manager,
   password generated once into ``$LENS_STATE_DIR/airflow/passwords.json`` (mode 600);
4. runs ``airflow standalone`` (API server, scheduler, DAG processor, triggerer; it migrates the
   metadata database itself) in its own session, output in ``$LENS_STATE_DIR/airflow/logs/lens-airflow.log``,
   and waits for it to be healthy;
5. creates or overwrites the connections ``lens_warehouse`` and ``lens_source_<name>`` (one per source of
   ``config/sources.yml``) through the REST API, so they show in the UI;
6. waits until every DAG file has been parsed and prints the URL and the login;
7. runs until Ctrl-C (or SIGTERM/SIGHUP), then stops every process it started, waiting for each.

``python -m customer_lens.local.airflow_ui [--host H] [--port P]`` runs it without the ``lens`` CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

from customer_lens.airflow.plugin_page import URL_ROUTE
from customer_lens.config import settings as settings_mod
from customer_lens.config import source_config
from customer_lens.local import airflow_cli, warehouse

METADATA_DB = "lens_airflow"
ADMIN_USER = "admin"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
COMPONENTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")


class AirflowUIError(RuntimeError):
    """``lens airflow`` could not start or stopped unexpectedly; the message says where to look."""


@dataclass(frozen=True)
class Login:
    user: str
    password: str
    password_file: Path


def airflow_home(cfg: settings_mod.Settings) -> Path:
    return cfg.state_dir / "airflow"


def log_path(cfg: settings_mod.Settings) -> Path:
    return airflow_home(cfg) / "logs" / "lens-airflow.log"


def ensure_login(cfg: settings_mod.Settings) -> Login:
    """The admin login, its password generated on first use and kept (the simple auth manager's file)."""
    path = airflow_home(cfg) / "passwords.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        passwords = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        passwords = {}
    except json.JSONDecodeError as exc:
        raise AirflowUIError(f"{path} is not valid JSON ({exc}); delete it to get a new password") from None
    if not passwords.get(ADMIN_USER):
        passwords[ADMIN_USER] = secrets.token_urlsafe(12)
        # Written under a private mode from the start: the file holds a plaintext password.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(passwords) + "\n")
    return Login(ADMIN_USER, passwords[ADMIN_USER], path)


def metadata_url(cfg: settings_mod.Settings) -> str:
    """URL of the Airflow metadata database on the warehouse server (created if missing)."""
    import psycopg

    try:
        warehouse.ensure_database(warehouse.url(cfg=cfg), METADATA_DB)
    except psycopg.Error as exc:
        raise AirflowUIError(
            f"cannot create the Airflow metadata database {METADATA_DB!r} on the warehouse server: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from exc
    return warehouse.url(METADATA_DB, cfg)


def environment(cfg: settings_mod.Settings, *, host: str, port: int, metadata: str, login: Login) -> dict[str, str]:
    """The environment of every Airflow process ``lens airflow`` starts."""
    return airflow_cli.environment(
        cfg=cfg,
        metadata_url=metadata,
        port=port,
        extra={
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{login.user}:ADMIN",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(login.password_file),
        },
    )


# -- connections -------------------------------------------------------------------------------
def _postgres_connection(conn_id: str, url: str, description: str) -> dict[str, Any]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))  # e.g. the embedded server's passfile, sslmode
    return {
        "connection_id": conn_id,
        "conn_type": "postgres",
        "description": description,
        "host": parts.hostname,
        "port": parts.port or 5432,
        "login": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "schema": parts.path.lstrip("/") or None,
        "extra": json.dumps(query) if query else None,
    }


def connections(cfg: settings_mod.Settings) -> list[dict[str, Any]]:
    """The Airflow connections of the project: the warehouse and one per configured source."""
    managed = "set by `lens airflow` at each start (edit config or LENS_* variables, not here)"
    result = [_postgres_connection("lens_warehouse", warehouse.url(cfg=cfg), f"Customer Lens warehouse; {managed}")]
    for source in source_config.load(cfg=cfg).values():
        conn_id = f"lens_source_{source.name}"
        description = f"Customer Lens source {source.name!r} ({source.kind}); {managed}"
        if source.kind == "postgres":
            result.append(_postgres_connection(conn_id, source.connection_url(cfg), description))
        elif source.kind == "files":
            extra = {"path": str(source.location), "format": source.format}
            result.append(
                {"connection_id": conn_id, "conn_type": "fs", "description": description, "extra": json.dumps(extra)}
            )
        else:
            result.append(
                {"connection_id": conn_id, "conn_type": "http", "description": description, "host": source.url}
            )
    return result


# -- the REST API --------------------------------------------------------------------------------
class ApiClient:
    """A minimal client of Airflow's REST API with a bearer token (``POST /auth/token``)."""

    def __init__(self, base_url: str, token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.token = token

    @classmethod
    def login(cls, base_url: str, user: str, password: str) -> ApiClient:
        client = cls(base_url)
        client.token = client.request("POST", "/auth/token", {"username": user, "password": password})["access_token"]
        return client

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(
            self.base_url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
            method=method,
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise AirflowUIError(f"{method} {path} answered {exc.code}: {detail}") from None
        return json.loads(payload) if payload else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)


def upsert_connections(api: ApiClient, conns: list[dict[str, Any]]) -> None:
    """Create the connections, overwriting any with the same id (one bulk request)."""
    body = {"actions": [{"action": "create", "entities": conns, "action_on_existence": "overwrite"}]}
    result = api.request("PATCH", "/api/v2/connections", body) or {}
    errors = (result.get("create") or {}).get("errors") or []
    if errors:
        raise AirflowUIError(f"could not set the connections: {errors}")


def dag_files(cfg: settings_mod.Settings) -> set[str]:
    """Names of the files in ``dags/`` that Airflow parses (its safe mode: mentions "airflow" and "dag")."""
    names = set()
    for path in cfg.dags_dir.glob("*.py"):
        text = path.read_text(errors="replace").lower()
        if "airflow" in text and "dag" in text:
            names.add(path.name)
    return names


def parsed_dags(api: ApiClient) -> tuple[dict[str, str], dict[str, str]]:
    """``({dag_id: file name}, {file name: import error})`` as the API server knows them now."""
    dags = api.get("/api/v2/dags?limit=1000").get("dags", [])
    errors = api.get("/api/v2/importErrors?limit=1000").get("import_errors", [])
    return (
        {d["dag_id"]: Path(d.get("fileloc") or "").name for d in dags},
        {Path(e["filename"]).name: e.get("stack_trace", "") for e in errors},
    )


# -- serve ---------------------------------------------------------------------------------------
def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGINT (Ctrl-C), SIGTERM and SIGHUP all stop ``lens airflow`` the same way (main thread only)."""
    if sys.platform == "win32" or _not_main_thread():
        yield
        return

    def interrupt(signum: int, _frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    # Started from a script with `&`, SIGINT may arrive ignored: Ctrl-C / kill -INT must still stop us.
    saved[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _not_main_thread() -> bool:
    import threading

    return threading.current_thread() is not threading.main_thread()


@contextlib.contextmanager
def _uninterruptible() -> Iterator[None]:
    """Ignore further Ctrl-C / SIGTERM while stopping: an interrupted stop would leave orphans."""
    if _not_main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


class _Progress:
    """Prints each component once, when it first reports healthy, and a line every 15 s of silence."""

    def __init__(self, echo: Callable[[str], None], quiet_after: float = 15):
        self.echo = echo
        self.started = self.last = time.monotonic()
        self.quiet_after = quiet_after
        self.seen: set[str] = set()

    def say(self, line: str) -> None:
        self.echo(line)
        self.last = time.monotonic()

    def __call__(self, status: dict[str, str]) -> None:
        now = time.monotonic()
        elapsed = now - self.started
        if status and "api-server" not in self.seen:
            self.seen.add("api-server")
            self.say(f"  api-server    up       ({elapsed:4.0f} s)")
        for part in COMPONENTS:
            if status.get(part) == "healthy" and part not in self.seen:
                self.seen.add(part)
                self.say(f"  {part:13} healthy  ({elapsed:4.0f} s)")
        if now - self.last > self.quiet_after:
            if "api-server" not in self.seen:  # the API answers last, with every component already up
                self.say(f"  ... starting the components ({elapsed:.0f} s)")
            else:
                waiting = [part for part in COMPONENTS if part not in self.seen] or ["the DAG files to be parsed"]
                self.say(f"  ... waiting for {', '.join(waiting)} ({elapsed:.0f} s)")


def wait_for_dags(
    api: ApiClient,
    expected: set[str],
    progress: Callable[[dict[str, str]], None],
    standalone: airflow_cli.Standalone,
    timeout: float,
) -> tuple[dict[str, str], dict[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        progress(standalone.health())
        dags, errors = parsed_dags(api)
        if expected <= set(dags.values()) | set(errors) or time.monotonic() > deadline:
            return dags, errors
        if standalone.process and standalone.process.poll() is not None:
            return dags, errors
        time.sleep(1)


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    echo: Callable[[str], None] = print,
    cfg: settings_mod.Settings | None = None,
    start_timeout: int = 180,
) -> None:
    """Run Airflow for the project until interrupted (see the module docstring); raises :class:`AirflowUIError`."""
    cfg = cfg or settings_mod.load()
    log = log_path(cfg)
    if not _port_free(host, port):
        raise AirflowUIError(f"port {port} on {host} is in use (another Airflow?): choose another with --port")
    started_warehouse = not warehouse.is_external(cfg) and not warehouse.status(cfg).running
    standalone: airflow_cli.Standalone | None = None
    try:
        with _signals_as_interrupt():
            status = warehouse.ensure_running(cfg)
            echo(f"warehouse: {status.mode}, {'started' if started_warehouse else 'running'} ({status.url})")
            login = ensure_login(cfg)
            env = environment(cfg, host=host, port=port, metadata=metadata_url(cfg), login=login)
            conns = connections(cfg)
            echo(f"starting Airflow 3 (metadata database {METADATA_DB!r}); log: {log}")
            standalone = airflow_cli.Standalone(env, log)
            progress = _Progress(echo)
            try:
                standalone.start(timeout=start_timeout, progress=progress)
            except RuntimeError as exc:
                raise AirflowUIError(str(exc)) from None
            try:
                api = ApiClient.login(standalone.url, login.user, login.password)
                upsert_connections(api, conns)
                progress.say(f"  connections   set      ({', '.join(c['connection_id'] for c in conns)})")
                dags, errors = wait_for_dags(api, dag_files(cfg), progress, standalone, timeout=start_timeout)
            except AirflowUIError as exc:
                raise AirflowUIError(f"{exc}; see {log}") from None
            _print_ready(echo, standalone.url, login, dags, errors, log)
            process = standalone.process
            assert process is not None  # started above
            while process.poll() is None:
                time.sleep(1)
            raise AirflowUIError(f"Airflow stopped unexpectedly (exit {process.returncode}); see {log}")
    except KeyboardInterrupt:
        pass
    finally:
        with _uninterruptible():
            if standalone is not None:
                echo("stopping Airflow ...")
                standalone.stop()
                echo("Airflow stopped")
            if started_warehouse:
                warehouse.embedded(cfg).stop()
                echo("warehouse stopped (lens airflow had started it)")


def backfill(dag_id: str, start: str, end: str, *, cfg: settings_mod.Settings | None = None) -> list[str]:
    """``lens backfill``: a backfill of ``dag_id`` over ``[start, end]`` (logical dates) for ``lens airflow``'s
    scheduler to run, with the DAG unpaused (a paused DAG's backfill runs wait); returns the lines to print.

    Runs the ``airflow`` CLI with the environment ``lens airflow`` uses (its metadata database on the
    warehouse server), so nothing has to be exported by hand.
    """
    cfg = cfg or settings_mod.load()
    warehouse.ensure_running(cfg)
    env = environment(cfg, host="127.0.0.1", port=8080, metadata=metadata_url(cfg), login=ensure_login(cfg))

    def run(*args: str) -> str:
        done = airflow_cli.airflow(*args, env=env, check=False)
        if done.returncode != 0:
            tail = " ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            raise AirflowUIError(f"airflow {' '.join(args)} failed: {tail}")
        return done.stdout

    run("db", "migrate")
    run("dags", "reserialize")
    known = sorted(d["dag_id"] for d in json.loads(run("dags", "list", "-o", "json").strip().splitlines()[-1]))
    if dag_id not in known:
        raise AirflowUIError(f"no DAG {dag_id!r} in this project (its DAGs: {', '.join(known)})")
    run("dags", "unpause", dag_id)
    run("backfill", "create", "--dag-id", dag_id, "--from-date", start, "--to-date", end)
    return [
        f"backfill    {dag_id} from {start} to {end} created; {dag_id} is unpaused (it also runs on its schedule now)",
        "            `lens airflow` runs it (start it if it is not running); progress: Browse > Backfills in its UI",
    ]


def _print_ready(
    echo: Callable[[str], None], url: str, login: Login, dags: dict[str, str], errors: dict[str, str], log: Path
) -> None:
    echo("")
    echo(f"Airflow is ready: {url}")
    echo(f"  login          {login.user} / {login.password}   (kept in {login.password_file})")
    echo(f"  Customer Lens  {url}/plugin/{URL_ROUTE}")
    echo(f"  DAGs           {', '.join(sorted(dags)) or 'none yet'} (new DAGs start paused: unpause or trigger)")
    for name in sorted(errors):
        echo(f"  import error   {name}: see the UI (Dags → import errors) or {log}")
    echo("Press Ctrl-C to stop.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m customer_lens.local.airflow_ui", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    from customer_lens.config import environment as env_mod

    env_mod.apply()
    try:
        serve(args.host, args.port, echo=lambda line: print(line, flush=True))
    except (AirflowUIError, warehouse.WarehouseError, source_config.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
