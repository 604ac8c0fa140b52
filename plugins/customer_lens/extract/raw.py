"""The raw layer: one schema per source (``raw_<source>``), append-only tables with load metadata.

Each entity table holds the configured columns (typed), the configured ``flags`` as generated
columns, and the load metadata: ``_batch_id``, ``_loaded_at``, ``_interval_start``,
``_interval_end``, ``_source_file`` / ``_source_line`` (files) and ``_extra`` (fields the source
sent that the configuration does not declare — schema drift is kept, not dropped).

Beside them: ``_rejects`` (every row that could not be loaded, with its raw text, location and
reason) and ``_batches`` (one row per entity and data interval: counts, status, timings).

A batch *replaces* its interval: the old rows, rejects and batch record of the same entity and
interval are deleted in the same transaction that loads the new ones, so a rerun never duplicates
and a crash never leaves a partial batch.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from psycopg import errors, sql

from customer_lens.config import contract
from customer_lens.config.source_config import PG_TYPE_NAMES, Column, Entity, Source
from customer_lens.local.warehouse import Connection, one, scalar

METADATA_COLUMNS = (
    ("_batch_id", "uuid not null"),
    ("_loaded_at", "timestamptz not null default now()"),
    ("_interval_start", "timestamptz not null"),
    ("_interval_end", "timestamptz not null"),
    ("_source_file", "text"),
    ("_source_line", "bigint"),
    ("_extra", "jsonb"),
)


def version_key(entity: Entity) -> tuple[str, ...]:
    """Columns that identify one *version* of a record: the primary key plus the cursor (none without a key)."""
    key = tuple(entity.primary_key)
    if not key:
        return ()
    if entity.cursor and entity.cursor not in key:
        key = (*key, entity.cursor)
    return key


def table(source: Source, name: str) -> sql.Identifier:
    return sql.Identifier(source.raw_schema, name)


def ensure(conn: Connection, source: Source) -> None:
    """Create the source's raw schema and tables; add columns the configuration gained since.

    Serialised with an advisory lock so parallel extract tasks of one source do not race on DDL.
    When everything exists already (every run but the first) only the catalog is read: no DDL, so no
    table lock that would make readers of the raw layer wait.
    """
    for entity in source.entities:  # configured now: a customer list derived before gives way to the real one
        if f"{source.name}.{entity.name}" in contract.DERIVED_FROM:
            _drop_derived(conn, table(source, entity.name))
    _check_types(conn, source)
    if _complete(conn, source):
        return
    schema = sql.Identifier(source.raw_schema)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"lens-ddl:{source.raw_schema}",))
        conn.execute(sql.SQL("create schema if not exists {}").format(schema))
        conn.execute(
            sql.SQL(
                """
                create table if not exists {} (
                    batch_id uuid primary key,
                    entity text not null,
                    interval_start timestamptz not null,
                    interval_end timestamptz not null,
                    status text not null,
                    rows_in bigint not null default 0,
                    rows_loaded bigint not null default 0,
                    rows_rejected bigint not null default 0,
                    files text[],
                    extra_fields text[],
                    detail text,
                    started_at timestamptz not null,
                    finished_at timestamptz
                )"""
            ).format(table(source, "_batches"))
        )
        conn.execute(
            sql.SQL(
                """
                create table if not exists {} (
                    _batch_id uuid not null,
                    entity text not null,
                    _interval_start timestamptz not null,
                    _interval_end timestamptz not null,
                    _source_file text,
                    _source_line bigint,
                    record_key text,
                    raw_text text,
                    reason text not null,
                    detail text,
                    _rejected_at timestamptz not null default now()
                )"""
            ).format(table(source, "_rejects"))
        )
        conn.execute(
            sql.SQL("create index if not exists {} on {} (entity, _interval_start)").format(
                sql.Identifier(f"{source.raw_schema}_rejects_interval"), table(source, "_rejects")
            )
        )
        for entity in source.entities:
            _ensure_entity(conn, source, entity)


def _wanted(source: Source) -> tuple[set[tuple[str, str]], set[str]]:
    """(table, column) pairs and index names the source's raw schema must have."""
    columns = {("_batches", "batch_id"), ("_rejects", "reason")}
    indexes = {f"{source.raw_schema}_rejects_interval"}
    for entity in source.entities:
        names = [c.name for c in entity.columns] + list(entity.flags) + [n for n, _ in METADATA_COLUMNS]
        names += list(contract.key_columns(entity))
        columns |= {(entity.name, name) for name in names}
        indexes |= {f"{entity.name}_interval_brin", f"{entity.name}_loaded_brin"}
        if version_key(entity):
            indexes.add(f"{entity.name}_version_idx")
    return columns, indexes


class SchemaChanged(ValueError):
    """A configured column's type differs from its raw column's; the message says how to migrate."""


def _check_types(conn: Connection, source: Source) -> None:
    """Refuse to load when a configured column's type changed since the raw table was made (say how to move)."""
    found = {
        (table_name, column): data_type
        for table_name, column, data_type in conn.execute(
            "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
            "join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped",
            (source.raw_schema,),
        )
    }
    for entity in source.entities:
        for column in entity.columns:
            have = found.get((entity.name, column.name))
            want = PG_TYPE_NAMES.get(column.type, column.type)
            if have is None or have == want:
                continue
            target = f"{source.raw_schema}.{entity.name}"
            raise SchemaChanged(
                f"sources.{source.name}.entities.{entity.name}.columns.{column.name} is {column.type} in the sources "
                f"file, but {target}.{column.name} holds {have} values loaded before. Migrate them once "
                f'(psql "$(lens warehouse url)"): alter table {target} alter column {column.name} type '
                f"{column.type} using {column.name}::{column.type}; or give the column its old type again"
            )


def _complete(conn: Connection, source: Source) -> bool:
    columns, indexes = _wanted(source)
    found_columns = set(
        conn.execute(
            "select table_name, column_name from information_schema.columns where table_schema = %s",
            (source.raw_schema,),
        ).fetchall()
    )
    found_indexes = {
        name for (name,) in conn.execute("select indexname from pg_indexes where schemaname = %s", (source.raw_schema,))
    }
    return columns <= found_columns and indexes <= found_indexes


def _ensure_entity(conn: Connection, source: Source, entity: Entity) -> None:
    target = table(source, entity.name)
    columns = [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in entity.columns]
    columns += [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(d)) for n, d in METADATA_COLUMNS]
    conn.execute(sql.SQL("create table if not exists {} ({})").format(target, sql.SQL(", ").join(columns)))
    # Configuration may gain columns later; raw tables grow with it (never drop: history stays).
    for column in entity.columns:
        conn.execute(
            sql.SQL("alter table {} add column if not exists {} {}").format(
                target, sql.Identifier(column.name), sql.SQL(column.type)
            )
        )
    # A key given by a text id (key_from): computed by the server on load, like the flags.
    for key_column, expression in contract.key_columns(entity).items():
        conn.execute(
            sql.SQL("alter table {} add column if not exists {} bigint generated always as ({}) stored").format(
                target, sql.Identifier(key_column), sql.SQL(expression)
            )
        )
    for flag, expression in entity.flags.items():
        conn.execute(
            sql.SQL("alter table {} add column if not exists {} boolean generated always as ({}) stored").format(
                target, sql.Identifier(flag), sql.SQL(expression)
            )
        )
    # BRIN: raw tables are appended in interval order, so a block-range index finds an interval's
    # rows for replacement at a fraction of a B-tree's cost to maintain during bulk COPY.
    conn.execute(
        sql.SQL("create index if not exists {} on {} using brin (_interval_start, _interval_end)").format(
            sql.Identifier(f"{entity.name}_interval_brin"), target
        )
    )
    # The incremental dbt facts read the rows loaded since their last merge: _loaded_at grows with the
    # appends too, so a block-range index turns that filter into a read of the newest blocks.
    conn.execute(
        sql.SQL("create index if not exists {} on {} using brin (_loaded_at)").format(
            sql.Identifier(f"{entity.name}_loaded_brin"), target
        )
    )
    key = version_key(entity)
    # The version index checks repeats of a version (file and API sources) and lets the staging views,
    # which keep the latest version per id, serve the incremental marts' lookups of a few ids.
    if key:
        conn.execute(
            sql.SQL("create index if not exists {} on {} ({})").format(
                sql.Identifier(f"{entity.name}_version_idx"), target, sql.SQL(", ").join(map(sql.Identifier, key))
            )
        )


def summarize_new_blocks(conn: Connection, source: Source, entity: Entity) -> None:
    """Summarize the block ranges a load appended to the entity's block-range indexes (caller's transaction).

    Until a range is summarized (autovacuum does it in its own time) it matches every search, so replacing
    an interval, or the incremental models' read of the newest rows, would read every block appended
    since: the whole table after a first load. Summarizing what one batch wrote costs a read of its blocks,
    which it has just written.
    """
    for index in (f"{entity.name}_interval_brin", f"{entity.name}_loaded_brin"):
        conn.execute(
            "select brin_summarize_new_values(format('%%I.%%I', %s::text, %s::text)::regclass)",
            (source.raw_schema, index),
        )


class IntervalOverlap(ValueError):
    """A load cuts through earlier batches of an entity with neither a cursor nor dated files (see
    :func:`clear_interval`): its rows cannot be told apart by interval."""


def clear_interval(conn: Connection, source: Source, entity: Entity, start: dt.datetime, end: dt.datetime) -> None:
    """Delete what earlier loads wrote for ``[start, end)``, whatever batches it came in (caller's transaction).

    An earlier batch lying wholly inside the interval goes with its rejects and its record (a monthly reload
    replaces its daily batches). From a batch that only partly overlaps (a month loaded at once, now one of
    its days again), exactly the rows of the interval go: those whose cursor lies in it, or that came from a
    file dated in it, with that file's rejects; the batch's record and its other rows stay as they were.
    """
    contained = {"e": entity.name, "start": start, "end": end}
    straddling = [
        batch_id
        for (batch_id,) in conn.execute(
            sql.SQL(
                """select batch_id from {} where entity = %(e)s and status = 'loaded'
                   and interval_start < %(end)s and interval_end > %(start)s
                   and not (interval_start >= %(start)s and interval_end <= %(end)s)"""
            ).format(table(source, "_batches")),
            contained,
        )
    ]
    if straddling:
        _clear_part_of_batches(conn, source, entity, straddling, start, end)
    # Through the block-range index, whatever the planner guesses: a table loaded moments ago has no
    # statistics yet, and the guess (8% of the rows) picks a scan of the whole table even for a day with
    # nothing to replace. With its ranges summarized (summarize_new_blocks) the index reads only the
    # blocks of the interval; at its worst it reads every block, as the scan would.
    conn.execute("set local enable_seqscan = off")
    conn.execute(
        sql.SQL("delete from {} where _interval_start >= %(start)s and _interval_end <= %(end)s").format(
            table(source, entity.name)
        ),
        contained,
    )
    conn.execute("set local enable_seqscan to default")
    conn.execute(
        sql.SQL(
            "delete from {} where entity = %(e)s and _interval_start >= %(start)s and _interval_end <= %(end)s"
        ).format(table(source, "_rejects")),
        contained,
    )
    conn.execute(
        sql.SQL(
            "delete from {} where entity = %(e)s and interval_start >= %(start)s and interval_end <= %(end)s"
        ).format(table(source, "_batches")),
        contained,
    )


def _clear_part_of_batches(
    conn: Connection, source: Source, entity: Entity, batch_ids: list[UUID], start: dt.datetime, end: dt.datetime
) -> None:
    """The rows of ``[start, end)`` in batches that reach beyond it: by cursor, or by the file's date."""
    rows = table(source, entity.name)
    if entity.cursor:
        conn.execute(
            sql.SQL("delete from {} where _batch_id = any(%s) and {} >= %s and {} < %s").format(
                rows, sql.Identifier(entity.cursor), sql.Identifier(entity.cursor)
            ),
            (batch_ids, start, end),
        )
        return
    if not entity.file_date:
        raise IntervalOverlap(
            f"{source.name}.{entity.name}: [{start:%Y-%m-%d}, {end:%Y-%m-%d}) cuts through earlier batches, and "
            "the entity has neither a cursor nor dated files to tell its rows apart; reload whole batches"
        )
    names = {
        name
        for (name,) in conn.execute(
            sql.SQL(
                "select distinct _source_file from {} where _batch_id = any(%s) "
                "union select distinct _source_file from {} where _batch_id = any(%s)"
            ).format(rows, table(source, "_rejects")),
            (batch_ids, batch_ids),
        )
        if name
    }
    dated = []
    for name in names:
        try:
            day = dt.datetime.strptime(name.rsplit("/", 1)[-1], entity.file_date).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        if start <= day < end:
            dated.append(name)
    if dated:
        for target in (rows, table(source, "_rejects")):
            conn.execute(
                sql.SQL("delete from {} where _batch_id = any(%s) and _source_file = any(%s)").format(target),
                (batch_ids, dated),
            )


class DerivationError(ValueError):
    """A derived entity cannot be put in place; the message says what to change."""


def check_unconfigured(conn: Connection, sources: dict[str, Source], origin: str = "the sources file") -> None:
    """Refuse a raw layer holding rows of a canonical entity ``sources`` does not configure.

    Such rows were loaded under another sources file (the demo's, say, before one's own): built on, they
    would mix into the marts beside this configuration's data, or keep a derived entity from being derived.
    """
    stale = []
    for key in contract.unconfigured(sources):
        source_name, entity_name = key.split(".")
        target = table(Source(name=source_name, kind="files", entities=()), entity_name)
        name = target.as_string(conn)
        kind = conn.execute("select relkind from pg_class where oid = to_regclass(%s)", (name,)).fetchone()
        if kind and kind[0] == "r" and _has_rows(conn, target):
            stale.append(name)
    if stale:
        raise DerivationError(
            f"the warehouse holds loaded rows of {', '.join(stale)}, which {origin} does not configure (loaded under "
            "another sources file?): the marts would mix them in. Give each sources file its own warehouse "
            "(LENS_STATE_DIR=.lens-<name>, or LENS_WAREHOUSE_URL), configure those entities again, or drop the "
            f"tables ({'; '.join(f'drop table {name}' for name in stale)})"
        )


def ensure_unconfigured(conn: Connection, sources: dict[str, Source]) -> list[str]:
    """Put the canonical entities no source gives in the raw layer; returns what stands in for what.

    An entity of the data contract (customer_lens.config.contract) that the sources configuration lacks is an
    empty table of the contract's columns (commented as such), so every dbt model builds and what depends
    on it is empty: no service source, no complaints. Some are derived instead, as views
    (``contract.derived``): the orders and their lines from a transaction-line grain (ids from the order
    reference), the customer list from the orders (one row per ordering customer, created at its first
    order, loaded when its latest order was). A configured entity is never touched.
    """
    check_unconfigured(conn, sources)
    derived = contract.derived(sources)
    missing: dict[str, list[Entity]] = {}
    for key in contract.absent(sources):
        source_name, entity_name = key.split(".")
        columns = tuple(Column(f.name, f.type, f.name) for f in contract.ENTITIES[key].values())
        missing.setdefault(source_name, []).append(Entity(entity_name, columns, ()))
    notes = []
    for source_name, entities in missing.items():
        placeholder = Source(name=source_name, kind="files", entities=tuple(entities))
        new = [e for e in entities if not _exists(conn, table(placeholder, e.name))]
        ensure(conn, placeholder)
        for entity in new:
            conn.execute(
                sql.SQL("comment on table {} is {}").format(
                    table(placeholder, entity.name),
                    sql.Literal(f"{_STAND_IN} no {source_name}.{entity.name} in the sources file, so it stays empty"),
                )
            )
        notes += [f"{source_name}.{entity.name}: not configured (empty)" for entity in entities]
    for key, origin in derived.items():
        source_name, entity_name = key.split(".")
        target = table(Source(name=source_name, kind="files", entities=()), entity_name)
        origin_source, origin_entity = origin.split(".")
        if origin in contract.ALTERNATIVES:
            query = _from_transactions(entity_name, sources[origin_source].entity(origin_entity))
        else:
            query = _customers_from_orders()
        _ensure_view(conn, target, query, f"{_DERIVED} from {origin} (customer_lens.extract.raw)")
        notes.append(f"{key}: derived from {origin}")
    if "sales.transactions" in derived.values():
        (left_out,) = one(conn.execute(f"select count(*) from {_TRANSACTIONS} where customer_id is null"))
        if left_out:
            notes.append(f"sales.transactions: {left_out} lines without a customer left out of the orders")
    return notes


_STAND_IN = "not configured:"
_DERIVED = "derived:"


def _has_rows(conn: Connection, target: sql.Composable) -> bool:
    has_rows: bool = scalar(conn.execute(sql.SQL("select exists (select from {})").format(target)))
    return has_rows


def _exists(conn: Connection, target: sql.Composable) -> bool:
    return scalar(conn.execute("select to_regclass(%s)", (target.as_string(conn),))) is not None


def _drop_derived(conn: Connection, target: sql.Composable) -> None:
    """Drop a derived view (and the views built on it) when its entity is now configured."""
    if conn.execute(
        "select 1 from pg_class where oid = to_regclass(%s) and relkind = 'v'", (target.as_string(conn),)
    ).fetchone():
        conn.execute(sql.SQL("drop view {} cascade").format(target))


def _ensure_view(conn: Connection, target: sql.Composable, query: sql.Composable, comment: str) -> None:
    """Create or replace the derived view ``target``; an empty table (a stand-in) gives way to it (a table with
    rows was refused by :func:`check_unconfigured`)."""
    name = target.as_string(conn)
    found = conn.execute("select relkind from pg_class where oid = to_regclass(%s)", (name,)).fetchone()
    if found and found[0] != "v":
        conn.execute(sql.SQL("drop table {}").format(target))
    try:
        with conn.transaction():
            conn.execute(sql.SQL("create or replace view {} as {}").format(target, query))
    except errors.InvalidTableDefinition:  # its columns changed (a mapping gave a new one): replace it whole
        conn.execute(sql.SQL("drop view {} cascade").format(target))
        conn.execute(sql.SQL("create view {} as {}").format(target, query))
    conn.execute(sql.SQL("comment on view {} is {}").format(target, sql.Literal(comment)))


_TRANSACTIONS = "raw_sales.transactions"


def _provided(entity: Entity) -> set[str]:
    """The canonical columns a transactions entity gives (declared or mapped)."""
    return {column.name for column in entity.columns} | {mapping.target for mapping in entity.mappings}


def _transaction_columns(entity: Entity) -> str:
    """The transaction grain's canonical columns over the raw table: mapping, declared column or typed null."""
    fields = contract.ENTITIES["sales.transactions"]
    mapped = contract.rendered("sales.transactions", entity.mappings)
    declared = {column.name for column in entity.columns}
    parts = []
    for name, field in fields.items():
        if name in mapped:
            expression = mapped[name]
        elif name in declared:
            expression = f'"{name}"::{field.type}'
        else:
            expression = f"null::{field.type}"
        parts.append(f"{expression} as {name}")
    if entity.primary_key:
        line = " || '|' || ".join(f'"{key}"::text' for key in entity.primary_key)
    else:
        line = "_source_file || ':' || _source_line"
    parts.append(f"{line} as line_ref")
    return ", ".join(parts) + ", _loaded_at"


def _from_transactions(entity_name: str, transactions: Entity) -> sql.Composable:
    """The orders or the order lines of a transaction-line grain; lines without a customer are left out
    (they stay in the raw table): an order is a customer's."""
    # Without an order reference, a customer's lines of one moment are one order.
    inner = f"select {_transaction_columns(transactions)} from {_TRANSACTIONS}"
    order_ref = "coalesce(order_ref, customer_id::text || '@' || ordered_at::text)"
    base = f"(select {order_ref} as order_key, * from ({inner}) as mapped) as t where t.customer_id is not null"
    if entity_name == "orders":
        return sql.SQL(
            f"""select {contract.text_key("t.order_key")} as order_id, max(t.customer_id) as customer_id,
                   min(t.ordered_at) as ordered_at, min(t.status) as status, min(t.sales_channel) as sales_channel,
                   min(t.ordered_at) as created_at, max(t.ordered_at) as updated_at, max(t._loaded_at) as _loaded_at
               from {base} group by t.order_key"""
        )
    # Optional figures only when the source has them: a missing unit_cost column is how the marts learn that
    # the source records no costs (margins null, never zero), so no typed null stands in for it here.
    optional = "".join(
        f"t.{name}, " for name in ("product_id", "discount_pct", "unit_cost") if name in _provided(transactions)
    )
    return sql.SQL(
        f"""select {contract.text_key("t.order_key || '|' || t.line_ref")} as order_line_id,
               {contract.text_key("t.order_key")} as order_id,
               {optional}t.quantity, t.unit_price, t.ordered_at as created_at, t.ordered_at as updated_at, t._loaded_at
           from {base}"""
    )


def _customers_from_orders() -> sql.Composable:
    return sql.SQL(
        """select customer_id, min(created_at) as created_at, max(updated_at) as updated_at,
                  max(_loaded_at) as _loaded_at
           from raw_sales.orders group by customer_id"""
    )
