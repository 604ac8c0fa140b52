"""One batch's bookkeeping, shared by every source kind: the result, the rejects and how a batch is applied.

Every load replaces its interval in one transaction (see :mod:`customer_lens.extract.raw`). Rows that
cannot be loaded go to ``raw_<source>._rejects`` with their raw text, location and one of these
reasons: ``malformed_json``, ``malformed_row``, ``invalid_utf8``, ``missing_required_field``,
``invalid_value``, ``out_of_range``, ``duplicate`` (an exact repeat of a row already loaded) and
``duplicate_key`` (same key, different content). The batch fails — and the previous state of the
interval stays — only when the share of rejected rows exceeds the source's ``max_reject_ratio`` (judged
from ``reject_ratio_min_rows`` rows on: a smaller batch fails only when every row is rejected);
its rejects are kept for inspection under a batch with status ``failed``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from psycopg import Connection, sql

from customer_lens.config.source_config import Column, Entity, Source
from customer_lens.extract import raw


class ExtractError(RuntimeError):
    """The load failed; nothing was changed in the raw layer."""


class SourceSchemaError(ExtractError):
    """A file lacks a required column (the message names the column and the file)."""


class RejectRatioExceeded(ExtractError):
    """Too many rows were rejected; the batch was not applied (its rejects were kept)."""


@dataclass
class BatchResult:
    """What one load did; ``str()`` is the log summary."""

    source: str
    entity: str
    batch_id: uuid.UUID
    interval_start: dt.datetime
    interval_end: dt.datetime
    rows_loaded: int = 0
    rows_rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    extra_fields: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    status: str = "loaded"
    seconds: float = 0.0
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def rows_in(self) -> int:
        return self.rows_loaded + self.rows_rejected

    def __str__(self) -> str:
        text = (
            f"{self.source}.{self.entity} [{self.interval_start:%Y-%m-%d %H:%M}, {self.interval_end:%Y-%m-%d %H:%M}): "
            f"{self.status}, {self.rows_loaded} loaded, {self.rows_rejected} rejected"
        )
        if self.reject_reasons:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.reject_reasons.items())) + ")"
        if self.files:
            text += f", {len(self.files)} file(s)"
        if self.extra_fields:
            text += f"; unexpected fields kept in _extra: {', '.join(self.extra_fields)}"
        if self.missing_columns:
            text += f"; optional columns missing (loaded as null): {', '.join(self.missing_columns)}"
        return text + f" in {self.seconds:.2f}s"


# -- shared SQL pieces --------------------------------------------------------------------------
def ident(name: str) -> sql.Identifier:
    """A quoted SQL identifier."""
    return sql.Identifier(name)


def range_check(column: Column, value: sql.Composable) -> sql.Composable | None:
    parts = []
    if column.min is not None:
        parts.append(sql.SQL("{} < {}").format(value, sql.Literal(column.min)))
    if column.max is not None:
        parts.append(sql.SQL("{} > {}").format(value, sql.Literal(column.max)))
    return sql.SQL(" or ").join(parts) if parts else None


def key_text(columns: list[str]) -> sql.Composable:
    """SQL for a record's key as text (``a|b``), shown in the rejects table."""
    if not columns:
        return sql.SQL("null::text")
    return sql.SQL(" || '|' || ").join(sql.SQL("coalesce({}::text, '')").format(ident(c)) for c in columns)


@contextlib.contextmanager
def staging_transaction(conn: Connection) -> Iterator[None]:
    """A transaction for work on temporary tables only (landing, checking): its commit does not wait for
    the WAL to reach the disk (a few milliseconds per batch); nothing in it needs to survive a crash. The
    batch's changes to the raw layer commit durably in :func:`apply_batch`."""
    with conn.transaction():
        conn.execute("set local synchronous_commit to off")
        yield


def create_temp_rejects(conn: Connection) -> None:
    conn.execute(  # one round trip
        """
        create temp table if not exists _lens_rejects (
            _source_file text, _source_line bigint, record_key text, raw_text text, reason text, detail text
        );
        truncate _lens_rejects"""
    )


def too_many_rejects(rows_in: int, rows_rejected: int, ratio: float, min_rows: int) -> bool:
    """Whether a batch fails on its rejects: over ``ratio`` of its rows, judged only from ``min_rows`` rows on.

    A small batch (a quiet day's file) says little by its share: one bad row of five is 20%. Below
    ``min_rows`` it fails only when every row is rejected (a file in a format the configuration no longer
    describes); its bad rows are rejected with their reasons either way.
    """
    if not rows_in:
        return False
    if rows_in < min_rows:
        return rows_rejected == rows_in
    return rows_rejected / rows_in > ratio


def apply_batch(
    conn: Connection,
    source: Source,
    entity: Entity,
    result: BatchResult,
    load_good_rows: Callable[[], int],
    *,
    ratio: float,
    stage_rejects: Callable[[], object] | None = None,
) -> None:
    """Replace the interval with the good rows and the staged rejects, in one transaction.

    ``stage_rejects``, if given, fills ``_lens_rejects`` after the good rows are loaded (and again
    for a failed batch, whose first staging was rolled back with it).
    """
    start, end = result.interval_start, result.interval_end
    try:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"lens-load:{source.name}.{entity.name}",))
            raw.clear_interval(conn, source, entity, start, end)
            result.rows_loaded = load_good_rows()
            if stage_rejects:
                stage_rejects()
            _persist_rejects(conn, source, entity, result)
            if too_many_rejects(result.rows_in, result.rows_rejected, ratio, source.reject_ratio_min_rows):
                share = f"{result.rows_rejected / result.rows_in:.1%} > max_reject_ratio {ratio:.1%}"
                if result.rows_in < source.reject_ratio_min_rows:
                    share = f"every row of a batch under reject_ratio_min_rows {source.reject_ratio_min_rows}"
                raise RejectRatioExceeded(
                    f"{source.name}.{entity.name}: {result.rows_rejected} of {result.rows_in} rows rejected "
                    f"({share}); see {source.raw_schema}._rejects where _batch_id = '{result.batch_id}'"
                )
            _record_batch(conn, source, entity, result)
            if result.rows_loaded:
                raw.summarize_new_blocks(conn, source, entity)
    except RejectRatioExceeded:
        # Raw rows stay as they were; keep this attempt's rejects so the cause can be inspected.
        result.status = "failed"
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    "delete from {} where entity = %s and _interval_start = %s and _interval_end = %s and _batch_id in "
                    "(select batch_id from {} where status = 'failed')"
                ).format(raw.table(source, "_rejects"), raw.table(source, "_batches")),
                (entity.name, start, end),
            )
            conn.execute(
                sql.SQL(
                    "delete from {} where entity = %s and interval_start = %s and interval_end = %s "
                    "and status = 'failed'"
                ).format(raw.table(source, "_batches")),
                (entity.name, start, end),
            )
            if stage_rejects:
                stage_rejects()
            _persist_rejects(conn, source, entity, result)
            _record_batch(conn, source, entity, result)
        raise


def _persist_rejects(conn: Connection, source: Source, entity: Entity, result: BatchResult) -> None:
    conn.execute(
        sql.SQL(
            """
            insert into {} (_batch_id, entity, _interval_start, _interval_end, _source_file, _source_line,
                            record_key, raw_text, reason, detail)
            select %s, %s, %s, %s, _source_file, _source_line, record_key, raw_text, reason, detail
            from _lens_rejects"""
        ).format(raw.table(source, "_rejects")),
        (result.batch_id, entity.name, result.interval_start, result.interval_end),
    )
    rows = conn.execute("select reason, count(*) from _lens_rejects group by reason").fetchall()
    result.reject_reasons = {reason: count for reason, count in rows}
    result.rows_rejected = sum(result.reject_reasons.values())


def _record_batch(conn: Connection, source: Source, entity: Entity, result: BatchResult) -> None:
    conn.execute(
        sql.SQL(
            """
            insert into {} (batch_id, entity, interval_start, interval_end, status, rows_in, rows_loaded,
                            rows_rejected, files, extra_fields, detail, started_at, finished_at)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp())"""
        ).format(raw.table(source, "_batches")),
        (
            result.batch_id,
            entity.name,
            result.interval_start,
            result.interval_end,
            result.status,
            result.rows_in,
            result.rows_loaded,
            result.rows_rejected,
            result.files or None,
            result.extra_fields or None,
            str(result),
            result.started_at,
        ),
    )
