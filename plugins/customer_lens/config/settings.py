"""Where Customer Lens keeps things, read from the environment.

Every setting has a default that works on a developer machine after ``make run``; every
default can be overridden by an environment variable so the same code runs in CI, under
docker-compose, or against a Postgres server somebody else operates.

| variable | default | meaning |
|---|---|---|
| ``LENS_HOME`` | the repository root | project directory (dags/, dbt_project/, ...) |
| ``LENS_STATE_DIR`` | ``$LENS_HOME/.lens`` | local state: warehouse data, demo exports, logs |
| ``LENS_WAREHOUSE_URL`` | unset | use this Postgres instead of the embedded server |
| ``LENS_WAREHOUSE_PORT`` | a free port, remembered | port of the embedded server |
| ``LENS_WAREHOUSE_DB`` | ``lens`` | warehouse database on the embedded server |
| ``LENS_SALES_SRC_URL`` | ``sales_src`` on the warehouse server | the demo sales OLTP database |
| ``LENS_SOURCES_DIR`` | ``$LENS_STATE_DIR/sources`` | demo service/survey export folders |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[3]


def _path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    """Resolved locations and connection settings (see the module docstring)."""

    home: Path
    state_dir: Path
    sources_dir: Path
    warehouse_url: str | None
    warehouse_port: int | None
    warehouse_db: str
    sales_src_url: str | None

    @property
    def warehouse_dir(self) -> Path:
        return self.state_dir / "warehouse"

    @property
    def dags_dir(self) -> Path:
        return self.home / "dags"

    @property
    def dbt_dir(self) -> Path:
        return self.home / "dbt_project"


def load() -> Settings:
    """Read the settings from the environment (cheap; call it where needed)."""
    home = _path("LENS_HOME", _REPO_ROOT)
    state_dir = _path("LENS_STATE_DIR", home / ".lens")
    port = os.environ.get("LENS_WAREHOUSE_PORT")
    return Settings(
        home=home,
        state_dir=state_dir,
        sources_dir=_path("LENS_SOURCES_DIR", state_dir / "sources"),
        warehouse_url=os.environ.get("LENS_WAREHOUSE_URL") or None,
        warehouse_port=int(port) if port else None,
        warehouse_db=os.environ.get("LENS_WAREHOUSE_DB", "lens"),
        sales_src_url=os.environ.get("LENS_SALES_SRC_URL") or None,
    )


def private_directory(path: Path) -> Path:
    """Create ``path`` (and its parents) if needed and make it private to its owner (mode 700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        path.chmod(0o700)
    return path
