"""Loading a source: one batch per entity and interval, on one warehouse session per range.

:func:`extract` loads one entity for one interval, :func:`extract_range` a range interval by interval
(an initial load, a backfill). The kind of source picks the loader: :mod:`.postgres` (rows whose cursor
is in the interval, COPY to COPY), :mod:`.files` (the files dated in it, or a big file's rows whose
cursor is in it; typed and checked in SQL with ``pg_input_is_valid``, so the warehouse must be
PostgreSQL 16+) and :mod:`.http`. What they share is in :mod:`.batch`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
from psycopg import Connection, sql

from customer_lens.config import contract
from customer_lens.config.source_config import Entity, Source
from customer_lens.extract import raw
from customer_lens.extract.batch import BatchResult
from customer_lens.extract.files import extract_files
from customer_lens.extract.http import extract_http
from customer_lens.extract.postgres import extract_postgres

log = logging.getLogger(__name__)

# How each kind of source loads one batch into the raw layer.
LOADERS = {"postgres": extract_postgres, "files": extract_files, "http": extract_http}


def _act_as_loader(conn: Connection) -> None:
    """Switch ``conn`` (the pipeline user's) to the loader role, putting the role in place if needed."""
    from customer_lens import roles

    role = roles.prepare_session_role(conn, "loader")
    if role:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))


@contextlib.contextmanager
def loader_session(source: Source, entities: list[Entity], warehouse_url: str | None = None) -> Iterator[Connection]:
    """A warehouse connection ready to load ``entities`` of ``source``: as the loader role, the mappings
    checked (a bad one fails here, before any data moves) and the raw tables in place. A range of
    batches shares one session, so each batch pays only for its own data."""
    from customer_lens.local import warehouse

    # Timestamps without an offset in a source are read as UTC, whatever the server's default zone.
    # The load runs as the loader role (LENS_LOADER_ROLE, see customer_lens.roles).
    # A source's date_order (DMY for "13/01/2024") is how its day-first dates parse as dates and timestamps.
    # A batch's landing and checked rows are temporary tables, read and written several times: with the
    # default temp_buffers (8 MB) a month of day files no longer fits, and every pass goes through the
    # kernel. 128 MB (a maximum, taken as used) keeps a medium month in memory.
    options = "-c TimeZone=UTC -c temp_buffers=128MB" + (
        f" -c DateStyle=ISO,{source.date_order}" if source.date_order else ""
    )
    with psycopg.connect(warehouse_url or warehouse.url(), autocommit=True, options=options) as conn:
        _act_as_loader(conn)
        for entity in entities:
            contract.check(conn, source, entity)
        raw.ensure(conn, source)
        yield conn


def extract(
    source: Source,
    entity: Entity | str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    warehouse_url: str | None = None,
) -> BatchResult:
    """Load ``entity`` of ``source`` for the interval ``[start, end)`` into the raw layer."""
    entity = source.entity(entity) if isinstance(entity, str) else entity
    with loader_session(source, [entity], warehouse_url) as conn:
        return load_batch(conn, source, entity, start, end)


def load_batch(conn: Connection, source: Source, entity: Entity, start: dt.datetime, end: dt.datetime) -> BatchResult:
    """One batch: ``entity``'s rows of ``[start, end)`` replace the interval's, on a :func:`loader_session`."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("interval bounds must be timezone-aware")
    result = BatchResult(source.name, entity.name, uuid.uuid4(), start, end)
    began = time.monotonic()
    try:
        LOADERS[source.kind](conn, source, entity, result)
    finally:
        result.seconds = time.monotonic() - began
    log.info("%s", result)
    return result


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
STEPS = {"day": dt.timedelta(days=1), "week": dt.timedelta(days=7)}


def intervals(start: dt.datetime, end: dt.datetime, step: str) -> list[tuple[dt.datetime, dt.datetime]]:
    """Split ``[start, end)`` into consecutive intervals of a day, a week or a calendar month."""
    if step not in (*STEPS, "month"):
        raise ValueError(f"step must be day, week or month, not {step!r}")
    spans, lower = [], start
    while lower < end:
        if step == "month":
            upper = (lower.replace(day=1) + dt.timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0)
        else:
            upper = lower + STEPS[step]
        spans.append((lower, min(upper, end)))
        lower = min(upper, end)
    return spans


def extract_range(
    source: Source,
    start: dt.datetime,
    end: dt.datetime,
    *,
    step: str = "day",
    entities: list[str] | None = None,
    warehouse_url: str | None = None,
    on_batch: Callable[[BatchResult], object] | None = None,
    history: bool = False,
) -> list[BatchResult]:
    """Load ``[start, end)`` interval by interval (an initial load or a manual catch-up).

    With ``history=True`` everything before ``start`` is loaded first, as one batch from the epoch
    (reference data such as a product catalogue usually predates the history being loaded).
    """
    results = []
    spans = intervals(start, end, step)
    if history:
        spans.insert(0, (EPOCH, start))
    chosen = [entity for entity in source.entities if not entities or entity.name in entities]
    with loader_session(source, chosen, warehouse_url) as conn:
        for lower, upper in spans:
            for entity in chosen:
                result = load_batch(conn, source, entity, lower, upper)
                results.append(result)
                if on_batch:
                    on_batch(result)
    return results
