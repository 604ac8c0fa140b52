"""Business anomalies for the demo sources: data that loads cleanly but must not become a baseline.

Bad *records* (``--bad-records``, :mod:`customer_lens.demo.faults`) are caught row by row by the
extraction. These anomalies are different: every row is valid, but the snapshot they produce is
wrong, and only the snapshot guard (:mod:`customer_lens.guard.quality`) can tell:

- ``duplicate-orders`` — every order (and its lines) of the busiest day of a closed month is loaded
  a second time under new ids: a month that was reported already changes (restated history).
- ``vanished-region`` — the customers of one region are re-labelled with another region (a broken
  mapping in the CRM): a customer group disappears from the guerrilla metrics.

An anomaly is applied on top of a clean generation and changes the recorded fingerprint, so the
pipeline treats the result as new demo data (and a later clean generation as new again).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import psycopg

from customer_lens.demo import database, exports
from customer_lens.local.warehouse import Connection, scalar

KINDS = ("duplicate-orders", "vanished-region")


def fingerprint(base: str, kind: str) -> str:
    """The fingerprint of the clean generation ``base`` with anomaly ``kind`` applied."""
    return hashlib.sha256(f"{base}+anomaly:{kind}".encode()).hexdigest()


def _duplicate_orders(conn: Connection) -> str:
    day = scalar(
        conn.execute(
            """
        select ordered_at::date as day
        from orders
        where ordered_at < date_trunc('month', (select max(ordered_at) from orders)) - interval '1 month'
        group by 1
        order by count(*) desc, 1
        limit 1
        """
        )
    )
    conn.execute(
        """
        create temporary table duplicated on commit drop as
        select order_id, (select max(order_id) from orders) + row_number() over (order by order_id) as new_order_id
        from orders where ordered_at::date = %s
        """,
        (day,),
    )
    conn.execute(
        """
        insert into orders (order_id, customer_id, ordered_at, status, sales_channel, created_at, updated_at)
        select d.new_order_id, o.customer_id, o.ordered_at, o.status, o.sales_channel, o.created_at, o.updated_at
        from orders o join duplicated d using (order_id)
        """
    )
    conn.execute(
        """
        insert into order_lines (order_line_id, order_id, product_id, quantity, unit_price, discount_pct, unit_cost,
                                 created_at, updated_at)
        select (select max(order_line_id) from order_lines) + row_number() over (order by l.order_line_id),
               d.new_order_id, l.product_id, l.quantity, l.unit_price, l.discount_pct, l.unit_cost,
               l.created_at, l.updated_at
        from order_lines l join duplicated d using (order_id)
        """
    )
    count = scalar(conn.execute("select count(*) from duplicated"))
    return f"{count} orders of {day} duplicated"


def _vanished_region(conn: Connection) -> str:
    # The smallest region is merged into the largest region of its country (or the largest of all).
    row = conn.execute(
        """
        with regions as (
            select country, region, count(*) as customers from customers group by 1, 2
        ),
        smallest as (
            select * from regions order by customers, region limit 1
        )
        select s.region, coalesce(
            (select r.region from regions r where r.country = s.country and r.region <> s.region
             order by r.customers desc, r.region limit 1),
            (select r.region from regions r where r.region <> s.region order by r.customers desc, r.region limit 1)
        )
        from smallest s
        """
    ).fetchone()
    if row is None or row[1] is None:
        raise ValueError("the demo data has a single region: nothing to merge")
    gone, into = row
    n = conn.execute("update customers set region = %s where region = %s", (into, gone)).rowcount
    return f"region {gone!r} merged into {into!r} ({n} customers)"


def apply(kind: str, *, sales_url: str, files_dir: Path, base_fingerprint: str) -> str:
    """Apply anomaly ``kind`` to the installed (clean) demo data; returns a one-line description."""
    if kind not in KINDS:
        raise ValueError(f"unknown anomaly {kind!r}; choose one of {', '.join(KINDS)}")
    new = fingerprint(base_fingerprint, kind)
    with psycopg.connect(sales_url) as conn:
        detail = _duplicate_orders(conn) if kind == "duplicate-orders" else _vanished_region(conn)
        conn.execute(f"update public.{database.META_TABLE} set fingerprint = %s", (new,))
    meta_path = Path(files_dir) / exports.META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.update(fingerprint=new, anomaly=kind, anomaly_detail=detail)
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(meta_path)
    return detail
