"""Run the real ``lens`` command line from tests, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_lens(*args: str, env: dict[str, str], check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the real ``lens`` CLI in a subprocess, as a user would."""
    # LENS_HOME (which checkout of the project) carries over; the other LENS_* settings come from ``env``.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LENS_") or k == "LENS_HOME"} | env
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lens")), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"lens {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result
