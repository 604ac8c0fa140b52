"""The transform DAG: the dbt project built by astronomer-cosmos into the candidate schema.

Rendering choice (measured, see DECISIONS.md): **one Cosmos ``dbt build`` task** for the whole
project, not a task per model. A task per model costs 1.5-2.5 s of Airflow overhead each, which for
this project (about 50 models and 350 tests) is several times the build itself; Cosmos' watcher mode cannot run under
``airflow dags test``. One build task costs a plain ``dbt build`` plus one task's overhead under the
scheduler and under ``dags test`` alike, and still surfaces every model's result: each node's
outcome is logged as dbt finishes it, the task returns the per-node statuses and timings (XCom),
and each mart is an Airflow Asset updated on success.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from cosmos import ProfileConfig
from cosmos.constants import InvocationMode
from cosmos.operators.local import DbtBuildLocalOperator

from customer_lens.config import settings as settings_mod

log = logging.getLogger(__name__)


class NodeResult(TypedDict):
    """How one dbt node ended, in the build task's XCom."""

    status: str
    seconds: float


def _log_node_finished(event: Any) -> None:
    """dbtRunner callback: one log line per finished node, as the build goes."""
    if event.info.name != "NodeFinished":
        return
    result = event.data.run_result
    log.info("dbt %-9s %-60s %6.2fs", result.status, event.data.node_info.unique_id, result.execution_time)


class LensDbtBuildOperator(DbtBuildLocalOperator):
    """Cosmos' ``dbt build`` with the warehouse connection resolved when the task runs, not at parse."""

    # What execute() reads and sets of Cosmos' operator (which has no type annotations).
    env: dict[str, str] | None
    cache_dir: Path | None
    callback: list[Callable[..., Any]] | Callable[..., Any] | None
    vars: dict[str, Any] | None

    def __init__(self, *, schema: str | None = None, **kwargs: Any) -> None:
        cfg = settings_mod.load()
        kwargs.setdefault("project_dir", str(cfg.dbt_dir))
        kwargs.setdefault(
            "profile_config",
            ProfileConfig(
                profile_name="customer_lens",
                target_name="warehouse",
                profiles_yml_filepath=cfg.dbt_dir / "profiles.yml",
            ),
        )
        kwargs.setdefault("invocation_mode", InvocationMode.DBT_RUNNER)
        kwargs.setdefault("install_deps", False)
        kwargs.setdefault("dbt_runner_callbacks", [_log_node_finished])
        super().__init__(**kwargs)
        self.lens_schema = schema

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        from customer_lens.config import contract, source_config
        from customer_lens.extract import raw
        from customer_lens.transform import builds

        env = builds.dbt_env(self.lens_schema)
        try:
            builds.prepare_inputs()
        except (source_config.ConfigError, contract.MappingError, raw.DerivationError) as exc:
            raise AirflowFailException(f"{exc} (a configuration error: not retried)") from exc
        builds.prepare_role(self.lens_schema)
        # dbt writes its target (run results, partial-parse state) inside Cosmos' working copy of the
        # project, where Cosmos caches the partial-parse file between runs; a target path elsewhere
        # would make every run parse the whole project again.
        env.pop("DBT_TARGET_PATH", None)
        self.env = {**(self.env or {}), **env}
        if self.cache_dir is None:
            self.cache_dir = _partial_parse_cache_dir(self.dag_id)
        self._summary: dict[str, NodeResult] = {}
        self.callback = [
            *(self.callback if isinstance(self.callback, list) else [self.callback] if self.callback else [])
        ]
        self.callback.append(self._keep_summary)
        from customer_lens.guard import audit

        with audit.connect(autocommit=True) as conn:
            full_refresh = bool(getattr(self, "full_refresh", False))
            restate = builds.begin_build(conn, env["LENS_DBT_SCHEMA"], full_refresh=full_refresh)
        if restate:
            self.vars = {**(self.vars or {}), **restate}
        try:
            super().execute(context)
        except BaseException as exc:
            with audit.connect(autocommit=True) as conn:
                audit.record_candidate_build(conn, env["LENS_DBT_SCHEMA"], "failed")
            if not isinstance(exc, Exception):
                raise
            # A model or data test that failed fails the same way on a retry: say so and stop. Anything
            # else (no results at all: the warehouse did not answer) is left to Airflow's retries.
            failed = [uid for uid, r in self._summary.items() if r["status"] in ("error", "fail", "runtime error")]
            if failed:
                raise AirflowFailException(
                    f"dbt build: {len(failed)} node(s) failed (a model or data-test failure: not retried): "
                    + ", ".join(failed[:10])
                ) from exc
            raise
        with audit.connect(autocommit=True) as conn:
            audit.record_candidate_build(conn, env["LENS_DBT_SCHEMA"], "built")
        return self._summary

    def _keep_summary(self, project_dir: str, **_: Any) -> None:
        """Cosmos callback, run before its working copy is removed: keep the per-node results."""
        self._summary = _run_summary(Path(project_dir) / "target" / "run_results.json")


def _partial_parse_cache_dir(dag_id: str) -> Path | None:
    """Where Cosmos keeps this DAG's dbt partial-parse state between runs (None: caching is off).

    Cosmos only sets a cache directory on the operators it renders itself (DbtDag, DbtTaskGroup); an
    operator used on its own gets none, and then every run copies the project afresh and parses all of
    it (about 4 s here). The directory is resolved when the task runs, from Cosmos' own settings
    (``AIRFLOW__COSMOS__CACHE_DIR``, under ``$LENS_STATE_DIR`` by default).
    """
    from cosmos import cache
    from cosmos import settings as cosmos_settings

    if not cosmos_settings.enable_cache:
        return None
    cache_dir: Path = cache._obtain_cache_dir_path(cache_identifier=dag_id, base_dir=cosmos_settings.cache_dir)
    return cache_dir


def _run_summary(path: Path) -> dict[str, NodeResult]:
    """Per-node statuses and timings from dbt's run_results.json (the task's XCom)."""
    import json

    try:
        results = json.loads(path.read_text())["results"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return {}
    return {r["unique_id"]: {"status": r["status"], "seconds": round(r["execution_time"], 3)} for r in results}
