"""``lens sqlfluff``: sqlfluff's dbt templater on a throwaway warehouse, gone when the command ends."""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil
from lens_cli import run_lens

REPO = Path(__file__).resolve().parents[1]


def _postgres_under(path: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd and Path(cmd[0]).name == "postgres" and any(str(path) in arg for arg in cmd):
            found.append(proc)
    return found


def test_lints_through_dbt_and_leaves_no_server(tmp_path: Path) -> None:
    # A copy of the project with one badly formatted model, so the real project stays as it is.
    home = tmp_path / "home"
    shutil.copytree(REPO / "dbt_project", home / "dbt_project", ignore=shutil.ignore_patterns("target", "logs"))
    bad = home / "dbt_project" / "models" / "intermediate" / "zz_lint_probe.sql"
    bad.write_text("SELECT customer_id FROM {{ ref('customers') }}\n")
    good = home / "dbt_project" / "models" / "marts" / "core" / "orders.sql"
    state = tmp_path / "state"

    done = run_lens(
        "sqlfluff", "lint", str(good), str(bad), env={"LENS_HOME": str(home), "LENS_STATE_DIR": str(state)}, check=False
    )

    assert done.returncode == 1, done.stdout + done.stderr
    # dbt compiled both (a model it could not compile would be an error, not a skip: .sqlfluff)
    assert "zz_lint_probe.sql] FAIL" in done.stdout and "CP01" in done.stdout, done.stdout
    assert "orders.sql] FAIL" not in done.stdout and "Skipped" not in done.stdout + done.stderr
    # the scratch warehouse is stopped and deleted; the user's warehouse was never started
    assert list(state.iterdir()) == []
    assert _postgres_under(state) == []
