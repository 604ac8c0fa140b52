"""Process environment for the tools Customer Lens drives: telemetry off, caches in the project.

dbt, Cosmos, Airflow and Great Expectations all phone home by default, and a firewalled machine can
make those calls hang. ``apply()`` switches them off unless the user has set the variable already,
and points every cache and home directory at ``$LENS_STATE_DIR`` so nothing lands in ``/tmp`` or
``~``. ``airflow_env()`` is the environment for running the ``airflow`` CLI on this project.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from customer_lens.config import settings as settings_mod

TELEMETRY_OFF = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "DO_NOT_TRACK": "1",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "SCARF_ANALYTICS": "false",
    "GX_ANALYTICS_ENABLED": "False",
}


def defaults(cfg: settings_mod.Settings | None = None) -> dict[str, str]:
    """The variables Customer Lens sets when they are not set already."""
    cfg = cfg or settings_mod.load()
    state = cfg.state_dir
    return {
        **TELEMETRY_OFF,
        "AIRFLOW__COSMOS__CACHE_DIR": str(state / "cache" / "cosmos"),
        "DBT_LOG_PATH": str(state / "dbt" / "logs"),
    }


def airflow_env(cfg: settings_mod.Settings | None = None) -> dict[str, str]:
    """Environment for the ``airflow`` CLI on this project (metadata in SQLite under the state dir)."""
    cfg = cfg or settings_mod.load()
    home = cfg.state_dir / "airflow"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(cfg.dags_dir),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(cfg.home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "LENS_HOME": str(cfg.home),
        "LENS_STATE_DIR": str(cfg.state_dir),
    }


def apply(cfg: settings_mod.Settings | None = None) -> None:
    """Set :func:`defaults` in ``os.environ`` without overriding what the user set.

    Also makes the state directory private (mode 700): it holds the warehouse's password file, the
    demo exports (customer e-mails) and the reports.
    """
    cfg = cfg or settings_mod.load()
    for key, value in defaults(cfg).items():
        os.environ.setdefault(key, value)
    settings_mod.private_directory(cfg.state_dir)


_OVERRIDE_LOCK = threading.RLock()  # re-entrant: overrides may nest (a test env around a dbt call)


@contextlib.contextmanager
def overridden(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block, then restore exactly what was there.

    For libraries that read their settings from the process environment (dbt). Serialised by a lock:
    two threads must not interleave overrides.
    """
    with _OVERRIDE_LOCK:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
