"""sqlfluff on the dbt project, with a warehouse of its own (``lens sqlfluff``, ``make lint``).

sqlfluff's dbt templater compiles each model through dbt, and this project's macros ask the warehouse
while compiling (the raw tables' columns in ``optional_column``, ``is_incremental()``, the build ledgers),
so dbt needs a server that answers. :func:`run` starts a throwaway embedded PostgreSQL in a scratch
directory under the state directory, points dbt's profile at it (``LENS_DB_*``, no role switch, no
source mappings), runs sqlfluff in ``dbt_project/`` (the dbt templater can only be set by the
``.sqlfluff`` of the working directory), then stops the server and deletes the directory, whatever
happened (an error, Ctrl-C, SIGTERM).

The server is empty, so every model renders as on its first build (the non-incremental branches) and
the answer is the same on every machine: it does not depend on what the user's warehouse holds, and
that warehouse (``LENS_WAREHOUSE_URL`` or ``.lens/warehouse``) is neither needed nor touched. Starting
it costs about a second. As root the server runs in a user namespace, like the project's own
(:mod:`customer_lens.local.warehouse`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from customer_lens.config import settings as settings_mod
from customer_lens.local import warehouse
from customer_lens.transform import builds


def lint_env(server: warehouse.EmbeddedServer, dbt_dir: Path) -> dict[str, str]:
    """The variables dbt needs to compile the project in ``dbt_dir`` against the running scratch ``server``.

    Every variable the profile reads is set, so none of the user's own (``LENS_DB_*`` of another server)
    leaks in; the password comes from the server's password file, as for every embedded server.
    """
    return {
        "LENS_DB_HOST": "127.0.0.1",
        "LENS_DB_PORT": str(server.port),
        "LENS_DB_USER": warehouse.SUPERUSER,
        "LENS_DB_PASSWORD": "",
        "PGPASSFILE": str(server.passfile),
        "LENS_DB_NAME": server.database,
        "LENS_DB_SSLMODE": "disable",  # loopback
        "LENS_DBT_SCHEMA": builds.DEFAULT_SCHEMA,
        # A fresh server has no lens_transformer role, and needs none: compiling creates nothing.
        "LENS_TRANSFORMER_ROLE": "",
        # The SQL as written, not as one user's sources file maps it.
        "LENS_SOURCE_MAPPINGS": "{}",
        "DBT_PROJECT_DIR": str(dbt_dir),
        "DBT_PROFILES_DIR": str(dbt_dir),
        "DBT_TARGET_PATH": str(server.root.parent / "dbt" / "target"),
        "DBT_LOG_PATH": str(server.root.parent / "dbt" / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    }


def sqlfluff_args(args: Sequence[str], cwd: Path, dbt_dir: Path) -> list[str]:
    """``args`` with every existing path after the sqlfluff command made relative to ``dbt_dir`` (absolute
    when outside it): sqlfluff runs there, the caller (pre-commit, a shell) names files from ``cwd``."""
    result: list[str] = []
    project = dbt_dir.resolve()
    for arg in args:
        path = (cwd / arg).resolve()
        command_seen = any(not earlier.startswith("-") for earlier in result)
        if arg.startswith("-") or not command_seen or not path.exists():
            result.append(arg)
        else:
            result.append(str(path.relative_to(project)) if path.is_relative_to(project) else str(path))
    return result


def _terminate(signum: int, frame: object) -> NoReturn:
    """SIGTERM: unwind through the finally blocks that stop the server."""
    raise SystemExit(128 + signum)


def run(args: Sequence[str], cfg: settings_mod.Settings | None = None) -> int:
    """``sqlfluff <args>`` with a scratch warehouse for the dbt templater; returns sqlfluff's exit code.

    Paths in ``args`` are relative to the current directory; with none, sqlfluff lints ``dbt_project/``.
    """
    cfg = cfg or settings_mod.load()
    args = sqlfluff_args(args, Path.cwd(), cfg.dbt_dir)
    main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    scratch = Path(tempfile.mkdtemp(prefix="sqlfluff-", dir=settings_mod.private_directory(cfg.state_dir)))
    # Its own state (a free port, generated passwords, dbt's target and logs): not the user's server.
    server = warehouse.EmbeddedServer(scratch / "warehouse")
    try:
        server.start()
        env = {**os.environ, **lint_env(server, cfg.dbt_dir)}
        command = [sys.executable, "-m", "sqlfluff", *args]
        return subprocess.run(command, cwd=cfg.dbt_dir, env=env, check=False).returncode
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
