"""Day-one mistakes at the command line: one clear line and exit 1, never a traceback, nothing done."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lens_cli import run_lens

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--scale", "huge"], "error: --scale 'huge' is not one of tiny, small, medium, large"),
        (["run", "--anomaly", "nope"], "error: --anomaly 'nope' is not one of duplicate-orders, vanished-region"),
        (["demo-data", "--scale", "huge"], "error: --scale 'huge' is not one of"),
        (["extract", "--start", "2026-01-05", "--end", "2026-01-01"], "error: --end 2026-01-01 is not after --start"),
        (["report", "--out", "/nonexistent-lens-dir/x.html"], "error: cannot write /nonexistent-lens-dir/x.html"),
        (["restate", "--from", "2999-01", "--reason", "typo"], "error: --from 2999-01 is in the future"),
        (["restate", "--from", "2026-01", "--reason", "  "], "error: --reason must say why"),
    ],
)
def test_a_bad_option_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    state = tmp_path / "state"
    done = run_lens(*args, env={"LENS_STATE_DIR": str(state)}, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().startswith(message), done.stderr
    assert "Traceback" not in done.stderr
    assert not (state / "warehouse").exists()  # refused before anything started
    assert not Path("/nonexistent-lens-dir").exists()


def test_make_help_shows_no_make_syntax() -> None:
    done = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "airflow" in done.stdout and "$(" not in done.stdout
