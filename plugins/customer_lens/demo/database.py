"""Loading the sales OLTP database in one transaction.

The new data is loaded into ``<table>__new`` tables with ``COPY ... FROM STDIN``; primary keys and
indexes are built after the load (much faster than maintaining them row by row). Only at the end
are the old tables dropped and the new ones renamed, and then everything commits at once. So:

- a crash or an exception at any point leaves the previous tables exactly as they were;
- readers of the previous data are not blocked while the new data loads (only during the final
  drop-and-rename, which takes milliseconds);
- a transaction-scoped advisory lock serialises two generators aimed at the same database.

There are deliberately no foreign keys: real exports often lack them, and the bad records include
orders of unknown customers and lines of unknown orders.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import pyarrow as pa

from customer_lens.demo import formats

# Table -> (column definitions, primary key, secondary indexes). Column order = COPY order.
TABLES: dict[str, tuple[list[tuple[str, str]], str, list[str]]] = {
    "customers": (
        [
            ("customer_id", "bigint not null"),
            ("email", "text not null"),
            ("name", "text not null"),
            ("country", "text not null"),
            ("region", "text not null"),
            ("industry", "text not null"),
            ("company_size", "text not null"),
            ("acquisition_channel", "text not null"),
            ("referred_by_customer_id", "bigint"),
            ("created_at", "timestamptz not null"),
            ("updated_at", "timestamptz not null"),
        ],
        "customer_id",
        ["email", "updated_at"],
    ),
    "products": (
        [
            ("product_id", "integer not null"),
            ("sku", "text not null"),
            ("name", "text not null"),
            ("category", "text not null"),
            ("list_price", "numeric(12, 2) not null"),
            ("unit_cost", "numeric(12, 2) not null"),
            ("created_at", "timestamptz not null"),
            ("updated_at", "timestamptz not null"),
        ],
        "product_id",
        [],
    ),
    "orders": (
        [
            ("order_id", "bigint not null"),
            ("customer_id", "bigint not null"),
            ("ordered_at", "timestamptz not null"),
            ("status", "text not null"),
            ("sales_channel", "text not null"),
            ("created_at", "timestamptz not null"),
            ("updated_at", "timestamptz not null"),
        ],
        "order_id",
        ["customer_id", "updated_at"],
    ),
    "order_lines": (
        [
            ("order_line_id", "bigint not null"),
            ("order_id", "bigint not null"),
            ("product_id", "integer not null"),
            ("quantity", "integer not null"),
            ("unit_price", "numeric(12, 2) not null"),
            ("discount_pct", "numeric(5, 4) not null"),
            ("unit_cost", "numeric(12, 2) not null"),
            ("created_at", "timestamptz not null"),
            ("updated_at", "timestamptz not null"),
        ],
        "order_line_id",
        ["order_id", "updated_at"],
    ),
    "contracts": (
        [
            ("contract_id", "bigint not null"),
            ("customer_id", "bigint not null"),
            ("plan", "text not null"),
            ("start_date", "date not null"),
            ("end_date", "date not null"),
            ("annual_value", "numeric(12, 2) not null"),
            ("status", "text not null"),
            ("renewed_from_contract_id", "bigint"),
            ("renewal_reason", "text"),
            ("cancellation_reason", "text"),
            ("created_at", "timestamptz not null"),
            ("updated_at", "timestamptz not null"),
        ],
        "contract_id",
        ["customer_id", "updated_at"],
    ),
}
META_TABLE = "demo_generation"
_LOCK_KEY = 0x6C656E7364656D6F  # "lensdemo": one generator per database at a time
_COPY_BATCH_ROWS = 100_000


def _staging(table: str) -> str:
    return f"public.{table}__new"


class SalesLoad:
    """One open load transaction into the sales database (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=False)
        self.rows: dict[str, int] = dict.fromkeys(TABLES, 0)

    def begin(self) -> None:
        """Take the lock and create empty staging tables."""
        with self.conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            # Timestamps are sent without an offset and mean UTC.
            cur.execute("set local timezone to 'UTC'")
            cur.execute("set local maintenance_work_mem to '256MB'")
            for table, (columns, _, _) in TABLES.items():
                definition = ",\n    ".join(f"{name} {kind}" for name, kind in columns)
                cur.execute(f"drop table if exists {_staging(table)}")
                cur.execute(f"create table {_staging(table)} (\n    {definition}\n)")

    def copy(self, table: str, rows: pa.Table) -> None:
        """Append ``rows`` (columns in ``TABLES`` order) to the staging table with COPY."""
        names = [name for name, _ in TABLES[table][0]]
        if rows.column_names != names:
            raise ValueError(f"{table}: columns {rows.column_names} != {names}")
        statement = f"copy {_staging(table)} ({', '.join(names)}) from stdin (format csv)"
        with self.conn.cursor() as cur, cur.copy(statement) as copy:
            # CSV is rendered a batch at a time: the text is several times the size of the columns.
            for batch in rows.to_batches(max_chunksize=_COPY_BATCH_ROWS):
                copy.write(formats.copy_payload(pa.Table.from_batches([batch])))
        self.rows[table] += rows.num_rows

    def index(self) -> None:
        """Build primary keys and indexes on the staging tables (after the bulk load)."""
        with self.conn.cursor() as cur:
            for table, (_, key, indexes) in TABLES.items():
                cur.execute(f"alter table {_staging(table)} add constraint {table}__new_pkey primary key ({key})")
                for column in indexes:
                    cur.execute(f"create index {table}__new_{column}_idx on {_staging(table)} ({column})")

    def publish(self, *, fingerprint: str, scale: str, seed: int, end_date: dt.date, bad_records: bool) -> None:
        """Swap the staging tables in, record the generation, analyse, and commit."""
        with self.conn.cursor() as cur:
            for table, (_, _, indexes) in TABLES.items():
                cur.execute(f"drop table if exists public.{table}")
                cur.execute(f"alter table {_staging(table)} rename to {table}")
                cur.execute(f"alter table public.{table} rename constraint {table}__new_pkey to {table}_pkey")
                for column in indexes:
                    cur.execute(f"alter index public.{table}__new_{column}_idx rename to {table}_{column}_idx")
            cur.execute(f"drop table if exists public.{META_TABLE}")
            cur.execute(
                f"""
                create table public.{META_TABLE} (
                    fingerprint text not null,
                    scale text not null,
                    seed bigint not null,
                    end_date date not null,
                    bad_records boolean not null,
                    generated_at timestamptz not null default now()
                )
                """
            )
            cur.execute(
                f"insert into public.{META_TABLE} (fingerprint, scale, seed, end_date, bad_records) "
                "values (%s, %s, %s, %s, %s)",
                (fingerprint, scale, seed, end_date, bad_records),
            )
            for table in TABLES:
                cur.execute(f"analyze public.{table}")
        self.conn.commit()

    def close(self) -> None:
        """Roll back anything uncommitted and close the connection."""
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


def installed_fingerprint(url: str) -> str | None:
    """The fingerprint recorded in the sales database, or None if it holds no demo data."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("select to_regclass(%s) is not null", (f"public.{META_TABLE}",)).fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute(f"select fingerprint from public.{META_TABLE} limit 1").fetchone()
        return row[0] if row else None
