"""Benchmark: a fresh warehouse to a promoted baseline, as a user runs it: ``lens run`` end to end.

    python bench/end_to_end.py [--scales medium,large] [--seed 7]

Per scale, in a new state directory (so a new embedded warehouse, nothing cached): ``lens run --scale S``
as a child process, its progress lines read as they come. Prints the stage table — start-up and demo
generation, raw load, dbt build, dbt docs, the guard's freeze, validation, comparison and promotion, and
the KPIs and report after it — with the whole wall time, and writes ``bench/results/end_to_end.json``.

Targets (issue #28): medium under 150 s, large under 900 s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import record

HERE = Path(__file__).resolve().parent
LENS = Path(sys.executable).parent / "lens"
TARGETS = {"medium": 150.0, "large": 900.0}
PHASES = {"raw layer": "load", "marts": "build", "dbt docs": "docs", "guard": "guard"}
GUARD_STEPS = re.compile(r"^\s+((?:freeze|validate|compare|promote) [0-9.]+ s(?:, )?)+$")


def _follow(child: subprocess.Popen, began: float) -> dict[str, float]:
    """Echo the progress lines on stderr as they come ("raw layer   0/266 batches ...", "... in 12.3s") and
    note when each phase started and ended."""
    marks: dict[str, float] = {}
    for line in child.stderr:
        now = time.monotonic() - began
        for label, stage in PHASES.items():
            if line.startswith(f"{label:<12}"):
                key = "end" if re.search(r" in [0-9.]+s$", line.strip()) else "start"
                marks.setdefault(f"{stage}_{key}", now)
        sys.stderr.write(line)
    return marks


def _guard_steps(stdout: list[str]) -> dict[str, float]:
    """The guard's own step times from its summary line ("freeze 6.1 s, validate 14.2 s, ...")."""
    steps = {}
    for line in stdout:
        if GUARD_STEPS.match(line.rstrip()):
            for part in line.strip().split(", "):
                step, seconds, _ = part.split()
                steps[step] = float(seconds)
    return steps


def _stages(marks: dict[str, float], guard_steps: dict[str, float], total: float) -> dict[str, float]:
    stages = {"start-up and demo generation": marks["load_start"]}
    for stage in ("load", "build", "docs"):
        stages[stage] = marks[f"{stage}_end"] - marks[f"{stage}_start"]
    for step in ("freeze", "validate", "compare", "promote"):
        if step in guard_steps:
            stages[f"guard: {step}"] = guard_steps[step]
    stages["guard: the rest"] = marks["guard_end"] - marks["guard_start"] - sum(guard_steps.values())
    stages["KPIs and report"] = total - marks["guard_end"]
    return stages


def _run(scale: str, seed: int, state: Path) -> dict:
    env = os.environ | {"LENS_STATE_DIR": str(state)}
    env.pop("LENS_WAREHOUSE_URL", None)
    began = time.monotonic()
    child = subprocess.Popen(
        [str(LENS), "run", "--scale", scale, "--seed", str(seed)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout: list[str] = []
    reader = threading.Thread(target=lambda: stdout.extend(child.stdout), daemon=True)
    reader.start()
    marks = _follow(child, began)
    child.wait()
    reader.join()
    total = time.monotonic() - began
    if child.returncode:
        raise RuntimeError(f"lens run --scale {scale} failed:\n{''.join(stdout)[-3000:]}")
    rows = next((line.strip() for line in stdout if line.startswith("raw layer")), "")
    stages = _stages(marks, _guard_steps(stdout), total)
    return {"total_s": total, "stages_s": stages, "raw_layer": rows, "stdout": "".join(stdout)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="medium,large")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    measured = {}
    for scale in [name.strip() for name in args.scales.split(",") if name.strip()]:
        state = Path(tempfile.mkdtemp(prefix=f"lens-bench-e2e-{scale}-"))
        try:
            print(f"\n== {scale}: lens run from a fresh warehouse ...", flush=True)
            measured[scale] = _run(scale, args.seed, state)
        finally:
            subprocess.run(
                [str(LENS), "warehouse", "stop"], env=os.environ | {"LENS_STATE_DIR": str(state)}, check=False
            )
            shutil.rmtree(state, ignore_errors=True)

    checks = {}
    for scale, result in measured.items():
        print(f"\n{scale}: {result['raw_layer']}")
        for stage, seconds in result["stages_s"].items():
            print(f"  {stage:<32}{seconds:>8.1f} s")
        print(f"  {'total, fresh warehouse to baseline':<32}{result['total_s']:>8.1f} s")
        if scale in TARGETS:
            checks[f"end_to_end_{scale}_s"] = {
                "value": result["total_s"],
                "target": f"< {TARGETS[scale]:.0f}",
                "pass": result["total_s"] < TARGETS[scale],
            }
    print()
    for name, check in checks.items():
        print(f"{name:<28}{check['value']:>8.1f}  target {check['target']:<6} {'PASS' if check['pass'] else 'FAIL'}")

    record.write(
        "end_to_end",
        {"scales": {s: {k: v for k, v in r.items() if k != "stdout"} for s, r in measured.items()}, "checks": checks},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
