"""A warehouse with a promoted baseline, built once by the real ``lens run`` (tiny demo data)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from lens_cli import run_lens

from customer_lens.config import environment
from customer_lens.guard import audit

CANDIDATE = "analytics_candidate"


@dataclass
class GuardWorld:
    url: str
    env_vars: dict[str, str]
    first_run_stdout: str

    @contextlib.contextmanager
    def env(self) -> Iterator[None]:
        with environment.overridden(self.env_vars):
            yield

    @contextlib.contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        with self.env(), audit.connect(autocommit=True) as conn:
            yield conn

    def one(self, query: str, params: tuple = ()):
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query, params or None).fetchone()

    def current(self) -> tuple[int, str]:
        return self.one("select baseline_no, snapshot_id from lens_audit.baselines where status = 'current'")

    def restore_candidate(self) -> None:
        """Put the candidate marts back as the current baseline's snapshot holds them (undo a test's damage)."""
        with psycopg.connect(self.url, autocommit=True) as conn, conn.transaction():
            schema, marts = conn.execute(
                "select s.schema_name, s.marts from lens_audit.baselines b join lens_audit.snapshots s "
                "using (snapshot_id) where b.status = 'current'"
            ).fetchone()
            for mart in marts:
                conn.execute(f'drop table if exists {CANDIDATE}."{mart}" cascade')
                conn.execute(f'create table {CANDIDATE}."{mart}" as table "{schema}"."{mart}"')


@pytest.fixture(scope="session")
def guard_world(make_database, tmp_path_factory) -> GuardWorld:
    state: Path = tmp_path_factory.mktemp("guard") / "state"
    wh, sales = make_database("guard_wh"), make_database("guard_sales_src")
    env = {"LENS_WAREHOUSE_URL": wh, "LENS_SALES_SRC_URL": sales, "LENS_STATE_DIR": str(state)}
    if os.environ.get("LENS_HOME"):  # another checkout of the project (dbt_project/, dags/, config/)
        env["LENS_HOME"] = os.environ["LENS_HOME"]
    first = run_lens("run", "--scale", "tiny", "--seed", "7", env=env, timeout=900)
    return GuardWorld(wh, env, first.stdout)
