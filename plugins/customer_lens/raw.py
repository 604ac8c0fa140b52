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

from psycopg import Connection, sql

from customer_lens import contract
from customer_lens.source_config import Column, Entity, Source

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


def table(source: Source, name: str) -> sql.Composed:
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
        columns |= {(entity.name, name) for name in names}
        indexes |= {f"{entity.name}_interval_brin", f"{entity.name}_loaded_brin"}
        if version_key(entity):
            indexes.add(f"{entity.name}_version_idx")
    return columns, indexes


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


class IntervalOverlap(ValueError):
    """A load's interval cuts through an earlier batch's interval (replace whole batches only)."""


def clear_interval(conn: Connection, source: Source, entity: Entity, start, end) -> None:
    """Delete what earlier loads of this entity within ``[start, end)`` wrote (in the caller's transaction).

    Batches lying wholly inside the interval are replaced (so a monthly reload replaces its daily
    batches). A batch that only partly overlaps would be half-replaced, duplicating or losing rows,
    so it is refused with the batch named.
    """
    straddling = conn.execute(
        sql.SQL(
            """select interval_start, interval_end from {} where entity = %(e)s and status = 'loaded'
               and interval_start < %(end)s and interval_end > %(start)s
               and not (interval_start >= %(start)s and interval_end <= %(end)s)"""
        ).format(table(source, "_batches")),
        {"e": entity.name, "start": start, "end": end},
    ).fetchall()
    if straddling:
        spans = ", ".join(f"[{a:%Y-%m-%d %H:%M}, {b:%Y-%m-%d %H:%M})" for a, b in straddling)
        raise IntervalOverlap(
            f"{source.name}.{entity.name}: [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) partly overlaps "
            f"loaded batch(es) {spans}; reload whole batches (or a range covering them)"
        )
    contained = {"e": entity.name, "start": start, "end": end}
    conn.execute(
        sql.SQL("delete from {} where _interval_start >= %(start)s and _interval_end <= %(end)s").format(
            table(source, entity.name)
        ),
        contained,
    )
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


def ensure_unconfigured(conn: Connection, sources: dict[str, Source]) -> list[str]:
    """Put the canonical entities no source gives in the raw layer; returns what stands in for what.

    An entity of the data contract (customer_lens.contract) that the sources configuration lacks is an
    empty table of the contract's columns (commented as such), so every dbt model builds and what depends
    on it is empty: no service source, no complaints. The customer list is derived instead when the sales
    source has orders: a view with one row per ordering customer (created at its first order, loaded when
    its latest order was). A configured entity is never touched.
    """
    given = contract.configured(sources)
    missing: dict[str, list[Entity]] = {}
    derived = []
    for key in contract.unconfigured(sources):
        source_name, entity_name = key.split(".")
        if contract.DERIVED_FROM.get(key) in given:
            derived.append(key)
            continue
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
                    sql.Literal(
                        f"not configured: no {source_name}.{entity.name} in the sources file, so it stays empty"
                    ),
                )
            )
        notes += [f"{source_name}.{entity.name}: not configured (empty)" for entity in entities]
    for key in derived:
        source_name, entity_name = key.split(".")
        source = Source(name=source_name, kind="files", entities=())
        origin = contract.DERIVED_FROM[key].split(".")[1]
        _ensure_derived_customers(conn, table(source, entity_name), table(source, origin))
        notes.append(f"{key}: derived from {contract.DERIVED_FROM[key]}")
    return notes


def _exists(conn: Connection, target: sql.Composed) -> bool:
    return conn.execute("select to_regclass(%s)", (target.as_string(conn),)).fetchone()[0] is not None


def _drop_derived(conn: Connection, target: sql.Composed) -> None:
    if conn.execute(
        "select 1 from pg_class where oid = to_regclass(%s) and relkind = 'v'", (target.as_string(conn),)
    ).fetchone():
        conn.execute(sql.SQL("drop view {}").format(target))


def _ensure_derived_customers(conn: Connection, target: sql.Composed, orders: sql.Composed) -> None:
    exists = conn.execute(
        "select relkind from pg_class where oid = to_regclass(%s)", (target.as_string(conn),)
    ).fetchone()
    if exists and exists[0] == "v":
        return
    if exists:  # an empty stand-in from before the orders were configured
        conn.execute(sql.SQL("drop table {}").format(target))
    conn.execute(
        sql.SQL(
            """create view {} as
               select customer_id, min(created_at) as created_at, max(updated_at) as updated_at,
                      max(_loaded_at) as _loaded_at
               from {} group by customer_id"""
        ).format(target, orders)
    )
    conn.execute(
        sql.SQL("comment on view {} is {}").format(
            target, sql.Literal("derived: no customers entity in the sources file; one row per ordering customer")
        )
    )
