"""Run the dbt project (``dbt_project/``) against the warehouse, in-process.

The connection comes from :func:`customer_lens.local.warehouse.url` (``LENS_WAREHOUSE_URL`` or the embedded
server), so the dbt profile (``dbt_project/profiles.yml``) only reads ``LENS_DB_*`` variables and never
has to be edited. Everything a build creates goes into one schema (``LENS_DBT_SCHEMA``, default
``analytics_candidate``), which the quality gate validates and promotes as a unit.

- :func:`dbt_env` — the environment variables dbt needs for this project and warehouse;
- :func:`run_dbt` — any dbt command through ``dbt.cli.main.dbtRunner``; raises :class:`DbtError`
  naming the failed nodes;
- :func:`build` — ``dbt build`` with the options the pipeline uses.

dbt is imported inside the functions: Airflow DAG files import this module, and parsing a DAG must stay
cheap. dbt reads its configuration from ``os.environ``, so a call sets the variables for its duration
and restores the previous values afterwards; calls from several threads of one process are serialised
(a lock), since the environment is process-wide.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from customer_lens import roles
from customer_lens.config import contract, environment, source_config
from customer_lens.config import settings as settings_mod
from customer_lens.extract import raw
from customer_lens.local import warehouse
from customer_lens.local.warehouse import Connection

log = logging.getLogger(__name__)

DEFAULT_SCHEMA = "analytics_candidate"
# Statuses of dbt node results that make a run fail.
_FAILED_STATUSES = {"error", "fail", "runtime error"}
# Commands that write to the warehouse as the transformer role (roles.prepare_session_role first).
_BUILDING_COMMANDS = {"build", "run", "seed", "snapshot", "test", "run-operation", "docs"}


class DbtError(RuntimeError):
    """A dbt command failed; ``failed_nodes`` names the nodes (model, test, seed) that did not pass."""

    def __init__(self, message: str, failed_nodes: list[str] | None = None):
        super().__init__(message)
        self.failed_nodes = failed_nodes or []


@dataclass(frozen=True)
class DbtResult:
    """What a successful :func:`run_dbt` returns."""

    args: list[str]
    schema: str
    result: Any = None  # the command's own result (RunExecutionResult, Manifest, CatalogArtifact, ...)
    node_statuses: dict[str, str] = field(default_factory=dict)


def dbt_env(schema: str | None = None, cfg: settings_mod.Settings | None = None) -> dict[str, str]:
    """The environment dbt needs to run this project against the warehouse.

    ``LENS_DB_*`` come from :func:`customer_lens.local.warehouse.url`; ``schema`` (default ``LENS_DBT_SCHEMA``
    from the environment, else ``analytics_candidate``) is the one schema the build writes to. Project
    and profiles are ``dbt_project/``; target and log paths live under ``$LENS_STATE_DIR/dbt``;
    anonymous usage statistics are off.
    """
    cfg = cfg or settings_mod.load()
    parts = urlsplit(warehouse.url(cfg=cfg))
    query = parse_qs(parts.query)
    state = cfg.state_dir / "dbt"
    env = {
        "LENS_DB_HOST": parts.hostname or "127.0.0.1",
        "LENS_DB_PORT": str(parts.port or 5432),
        "LENS_DB_USER": unquote(parts.username or "postgres"),
        "LENS_DB_PASSWORD": unquote(parts.password or ""),
        "LENS_DB_NAME": unquote(parts.path.lstrip("/")) or cfg.warehouse_db,
        "LENS_DBT_SCHEMA": schema or os.environ.get("LENS_DBT_SCHEMA") or DEFAULT_SCHEMA,
        "DBT_PROJECT_DIR": str(cfg.dbt_dir),
        "DBT_PROFILES_DIR": str(cfg.dbt_dir),
        "DBT_TARGET_PATH": str(state / "target"),
        "DBT_LOG_PATH": str(state / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        # The profile's `role`: dbt sets it on its connections (customer_lens.roles; "" = no switch).
        "LENS_TRANSFORMER_ROLE": roles.session_role("transformer") or "",
    }
    if "sslmode" in query:
        env["LENS_DB_SSLMODE"] = query["sslmode"][-1]
    # The sources' mappings onto the data contract, applied by the staging models (customer_lens.config.contract).
    env["LENS_SOURCE_MAPPINGS"] = contract.dbt_mappings(source_config.load(cfg=cfg))
    if "passfile" in query:  # the embedded server's password file (the profile has no field for it)
        env["PGPASSFILE"] = query["passfile"][-1]
    return env


def project_fingerprint(cfg: settings_mod.Settings | None = None) -> str:
    """What a build's result depends on besides the data: the dbt project's files, the sources file
    (its mappings) and the package version. A change to any of them makes an "up to date" build stale."""
    import hashlib

    from customer_lens import __version__

    cfg = cfg or settings_mod.load()
    digest = hashlib.sha256(f"customer-lens {__version__}\0".encode())
    project = cfg.dbt_dir
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if (
            path.is_file()
            and relative.parts[0] not in ("target", "logs", "dbt_packages")
            and path.suffix
            in (
                ".sql",
                ".yml",
                ".yaml",
                ".csv",
                ".md",
            )
        ):
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    sources = source_config.default_path(cfg)
    digest.update(sources.read_bytes() if sources.exists() else b"(no sources file)")
    return digest.hexdigest()


def prepare_inputs(cfg: settings_mod.Settings | None = None) -> list[str]:
    """Stand-ins in the raw layer for the data contract's entities no source gives (``raw.ensure_unconfigured``).

    Runs as the loader, which owns the raw schemas; returns one line per stand-in.
    """
    import psycopg
    from psycopg import sql

    cfg = cfg or settings_mod.load()
    sources = source_config.load(cfg=cfg)
    found = contract.problems(sources)
    if found:
        raise source_config.ConfigError("the sources file does not give what the marts need:\n  " + "\n  ".join(found))
    with psycopg.connect(warehouse.url(cfg=cfg), autocommit=True) as conn:
        role = roles.prepare_session_role(conn, "loader")
        if role:
            conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext('lens-ddl:contract'))")
            return raw.ensure_unconfigured(conn, sources)


def prepare_role(schema: str | None = None, cfg: settings_mod.Settings | None = None) -> str | None:
    """Put the transformer role in place for a build into ``schema`` (see ``roles.prepare_session_role``)."""
    import psycopg

    env = dbt_env(schema, cfg)
    if not env["LENS_TRANSFORMER_ROLE"]:
        return None
    with psycopg.connect(warehouse.url(cfg=cfg), autocommit=True) as conn:
        return roles.prepare_session_role(conn, "transformer", candidate_schema=env["LENS_DBT_SCHEMA"])


def _node_statuses(result: Any) -> dict[str, str]:
    """``unique_id -> status`` of the node results of a dbt command result (empty when it has none)."""
    statuses = {}
    for node_result in getattr(result, "results", None) or []:
        node = getattr(node_result, "node", None)
        name = getattr(node, "unique_id", None) or str(node)
        statuses[name] = str(getattr(node_result, "status", "")).lower()
    return statuses


def _failure_message(node_result: Any) -> str:
    """A failed node in one line: its id and dbt's message (without the compiled-code pointer)."""
    node = getattr(node_result, "node", None)
    name = getattr(node, "unique_id", None) or str(node)
    lines = (getattr(node_result, "message", None) or "failed").strip().splitlines()
    message = " ".join(line.strip() for line in lines if line.strip() and "compiled code at" not in line)
    return f"{name}: {message[:400]}"


def _progress_callback(step: Any) -> Callable[[Any], None]:
    """A dbtRunner callback moving ``step`` (a ``customer_lens.progress.Phase``) as nodes finish."""

    def callback(event: Any) -> None:
        name = event.info.name
        if name == "LogStartLine" and step.total is None:
            step.set_total(int(event.data.total))
        elif name == "NodeFinished":
            node = event.data.node_info
            if not node.unique_id.startswith("operation."):  # project hooks are not counted in the total
                step.advance(detail=f"{node.node_name} {node.node_status}")

    return callback


def run_dbt(args: list[str], schema: str | None = None, progress: Any = None) -> DbtResult:
    """Run ``dbt <args>`` in-process for this project and return its result.

    The environment from :func:`dbt_env` is set in ``os.environ`` for the call and restored afterwards.
    Raises :class:`DbtError` when the command fails: the message names every failed node (errored
    models, failing tests) or, when dbt stopped before running nodes, the exception it raised, and
    where dbt's log is. With ``progress`` (a ``customer_lens.progress.Phase``) dbt's console output is
    quiet (errors only) and the phase advances as nodes finish; the log file keeps every line.
    """
    from dbt.cli.main import dbtRunner

    env = dbt_env(schema)
    if args and args[0] in _BUILDING_COMMANDS:
        prepare_inputs()
        prepare_role(schema)
    callbacks = [_progress_callback(progress)] if progress is not None else []
    if progress is not None and "--quiet" not in args:
        args = [*args, "--quiet"]
    with environment.overridden(env):
        outcome = dbtRunner(callbacks=callbacks).invoke(list(args))
    if outcome.success:
        return DbtResult(list(args), env["LENS_DBT_SCHEMA"], outcome.result, _node_statuses(outcome.result))
    failed = [
        node_result
        for node_result in getattr(outcome.result, "results", None) or []
        if str(getattr(node_result, "status", "")).lower() in _FAILED_STATUSES
    ]
    if failed:
        names = [getattr(r.node, "unique_id", None) or str(r.node) for r in failed]
        details = "\n  ".join(_failure_message(r) for r in failed)
        command = f"dbt {' '.join(args)} in schema {env['LENS_DBT_SCHEMA']}"
        log = Path(env["DBT_LOG_PATH"]) / "dbt.log"
        raise DbtError(f"{command}: {len(failed)} node(s) failed (dbt log: {log})\n  {details}", names)
    cause = outcome.exception or "see the dbt log in " + env["DBT_LOG_PATH"]
    raise DbtError(f"dbt {' '.join(args)} failed in schema {env['LENS_DBT_SCHEMA']}: {cause}")


def begin_build(conn: Connection, target: str, *, full_refresh: bool) -> dict[str, str]:
    """Record a build into ``target`` as started; returns the dbt vars it needs (for ``lens`` and Airflow).

    While a ``lens restate`` asked for before now is not carried by a baseline, every build recomputes the
    period marts from it (var ``restate_from``), a full refresh too: those marts keep closed periods
    through one. So a restatement whose build was killed is finished by the next build.
    """
    from customer_lens.guard import audit

    audit.record_candidate_build(conn, target, "building", full_refresh=full_refresh)
    restate_from = audit.restated_from(conn, target)
    if restate_from is None:
        return {}
    log.info("restating the closed periods of %s from %s", target, restate_from)
    return {"restate_from": restate_from.isoformat()}


def build(
    schema: str | None = None,
    full_refresh: bool = False,
    select: str | list[str] | None = None,
    dbt_vars: dict[str, Any] | None = None,
    progress: Any = None,
) -> DbtResult:
    """``dbt build`` (seeds, models, unit and data tests) into ``schema``.

    ``select`` is a dbt selection (``"marts.growth"``, ``["order_lines+", "tickets"]``); ``dbt_vars``
    override project variables (e.g. ``{"as_of_date": "2026-06-30"}``); ``full_refresh`` rebuilds the
    incremental facts from the whole raw layer instead of merging what was loaded since the last build.
    While a ``lens restate`` of ``schema`` is pending (no baseline carries it yet), the build recomputes
    the period marts from the restated period on (dbt var ``restate_from``).
    """
    from customer_lens.guard import audit

    target = dbt_env(schema)["LENS_DBT_SCHEMA"]
    with audit.connect(autocommit=True) as conn:
        last = audit.candidate_build(conn, target)
        if last and last[0] != "built" and last[1] and not full_refresh and not select:
            # A full refresh that was killed or failed left incremental models half rebuilt: redo it.
            log.warning("the last full build of %s did not finish: building it in full again", target)
            full_refresh = True
        dbt_vars = {**begin_build(conn, target, full_refresh=full_refresh), **(dbt_vars or {})}
    args = ["build"]
    if full_refresh:
        args.append("--full-refresh")
    if select:
        args += ["--select", *([select] if isinstance(select, str) else select)]
    if dbt_vars:
        args += ["--vars", json.dumps(dbt_vars)]
    try:
        result = run_dbt(args, schema=schema, progress=progress)
    except BaseException:
        with audit.connect(autocommit=True) as conn:
            audit.record_candidate_build(conn, target, "failed")
        raise
    with audit.connect(autocommit=True) as conn:
        audit.record_candidate_build(conn, target, "built")
    return result
