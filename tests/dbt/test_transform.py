"""customer_lens.transform.builds: the dbt environment, in-process runs, failures that name their nodes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from customer_lens.config import settings
from customer_lens.transform import builds


def test_dbt_env_comes_from_the_warehouse_url(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(
        "LENS_WAREHOUSE_URL", "postgresql://lens%40ops:s3cr%2Ft@db.example.org:6543/analytics?sslmode=require"
    )
    monkeypatch.setenv("LENS_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("LENS_DBT_SCHEMA", raising=False)
    env = builds.dbt_env()
    assert env["LENS_DB_HOST"] == "db.example.org"
    assert env["LENS_DB_PORT"] == "6543"
    assert env["LENS_DB_USER"] == "lens@ops"
    assert env["LENS_DB_PASSWORD"] == "s3cr/t"
    assert env["LENS_DB_NAME"] == "analytics"
    assert env["LENS_DB_SSLMODE"] == "require"
    assert env["LENS_DBT_SCHEMA"] == "analytics_candidate"
    assert env["DBT_PROJECT_DIR"] == env["DBT_PROFILES_DIR"] == str(settings.load().dbt_dir)
    assert env["DBT_TARGET_PATH"] == str(tmp_path / "dbt" / "target")
    assert env["DBT_LOG_PATH"] == str(tmp_path / "dbt" / "logs")
    assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "False"
    assert builds.dbt_env("candidate_42")["LENS_DBT_SCHEMA"] == "candidate_42"


def test_importing_transform_does_not_import_dbt() -> None:
    code = (
        "import sys, customer_lens.transform.builds;"
        " sys.exit(any(m == 'dbt' or m.startswith('dbt.') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_failures_name_the_failed_nodes_and_the_environment_is_restored(dbt_warehouse) -> None:
    before = dict(os.environ)
    with dbt_warehouse.env(), pytest.raises(builds.DbtError) as failure:
        builds.run_dbt(
            ["run", "--select", "int_as_of_date", "--vars", '{"as_of_date": "not-a-date"}'], schema="dbt_failure"
        )
    assert failure.value.failed_nodes == ["model.customer_lens.int_as_of_date"]
    assert "int_as_of_date" in str(failure.value)
    assert "dbt_failure" in str(failure.value)
    assert dict(os.environ) == before
