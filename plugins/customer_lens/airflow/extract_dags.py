"""The DAG factory for extraction: one DAG per configured source (``extract_<source>``).

Parsing reads only the sources YAML; connections, files and heavy imports happen inside tasks.
Each DAG runs on a data-interval timetable (daily by default, ``[00:00, next 00:00)`` UTC), loads
every entity of its source for exactly that interval (one task per entity, in parallel), then a
``publish`` task updates the source's Asset so the transform DAG can be scheduled on data.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, dag, get_current_context, task

from customer_lens.airflow.assets import raw_asset, raw_asset_uri
from customer_lens.airflow.dag_defaults import DEFAULT_ARGS, TAG
from customer_lens.config import source_config

log = logging.getLogger(__name__)


def run_extract_task(source_name: str, entity_name: str) -> dict[str, Any]:
    """Task body: load one entity for the run's data interval; fail only past the reject ratio.

    A configuration or data error fails the task at once (AirflowFailException): a retry would meet the
    same file and the same settings. Retries are for what passes: a connection lost, a lock timeout.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from customer_lens import extract
    from customer_lens.config import contract
    from customer_lens.extract import raw

    deterministic = (
        source_config.ConfigError,
        contract.MappingError,
        raw.SchemaChanged,
        raw.IntervalOverlap,
        extract.RejectRatioExceeded,
        extract.SourceSchemaError,
    )
    context = get_current_context()
    start, end = context["data_interval_start"], context["data_interval_end"]
    assert start is not None and end is not None  # a data-interval timetable gives every run one
    try:
        source = source_config.load()[source_name]
        result = extract.extract(source, entity_name, start, end)
    except deterministic as exc:
        raise AirflowFailException(f"{exc} (a configuration or data error: not retried)") from exc
    log.info("%s", result)
    return {
        "batch_id": str(result.batch_id),
        "rows_loaded": result.rows_loaded,
        "rows_rejected": result.rows_rejected,
        "reject_reasons": result.reject_reasons,
        "extra_fields": result.extra_fields,
    }


def _doc(source: source_config.Source) -> str:
    entities = "\n".join(f"- `{e.name}`" for e in source.entities)
    where = source.location if source.kind == "files" else f"`{source.url}`"
    return (
        f"### Extract `{source.name}` into `{source.raw_schema}`\n\n"
        f"Kind **{source.kind}**{f' ({source.format})' if source.format else ''}, from {where}. "
        f"Loads exactly this run's data interval, replacing any earlier load of it; rows that cannot be "
        f"loaded go to `{source.raw_schema}._rejects`. Entities:\n{entities}\n\n"
        f"On success updates the Asset `{raw_asset_uri(source.name)}`. Defined in `config/sources.yml`."
    )


def _start_date(source: source_config.Source) -> pendulum.DateTime:
    start = pendulum.parse(source.start_date)  # a date (source_config checks it): midnight of that day
    assert isinstance(start, pendulum.DateTime)
    return start.in_timezone("UTC")


def build_dag(source: source_config.Source) -> DAG:
    """One extraction DAG for ``source``."""

    @dag(
        dag_id=f"extract_{source.name}",
        schedule=CronDataIntervalTimetable(source.schedule, timezone="UTC"),
        start_date=_start_date(source),
        catchup=False,
        max_active_runs=4,
        default_args=DEFAULT_ARGS,
        tags=[TAG, "extract", source.name],
        doc_md=_doc(source),
    )
    def extract_source() -> None:
        loads = [
            task(task_id=f"extract_{entity.name}")(run_extract_task)(source.name, entity.name)
            for entity in source.entities
        ]

        @task(outlets=[raw_asset(source.name)])
        def publish() -> None:
            """Mark the source's raw layer as updated for this interval."""

        loads >> publish()

    return extract_source()


def build_all() -> dict[str, DAG]:
    """All extraction DAGs, keyed by dag_id (for ``globals().update(...)`` in a DAG file)."""
    return {f"extract_{name}": build_dag(source) for name, source in source_config.load().items()}
