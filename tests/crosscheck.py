"""Independent pandas computations of what the segmentation marts claim, shared by the cross-check tests.

``purchases`` is one row per revenue order: ``customer_id``, ``order_id``, ``order_date`` (UTC day) and
``revenue`` (Decimal).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd


def expected_rfm(purchases: pd.DataFrame, snapshot: dt.date) -> pd.DataFrame:
    upto = purchases[purchases["order_date"] <= snapshot]
    per_customer = upto.groupby("customer_id").agg(
        last_purchase_date=("order_date", "max"),
        frequency_orders=("order_id", "count"),
        monetary_revenue=("revenue", "sum"),
    )
    per_customer["recency_days"] = [(snapshot - d).days for d in per_customer["last_purchase_date"]]
    n = len(per_customer)
    # 1 + floor(5 x share of customers strictly worse): rank 'min' counts those strictly worse + 1.
    worse_recency = per_customer["recency_days"].rank(method="min", ascending=False).astype(int) - 1
    worse_frequency = per_customer["frequency_orders"].rank(method="min", ascending=True).astype(int) - 1
    worse_monetary = per_customer["monetary_revenue"].astype(float).rank(method="min", ascending=True).astype(int) - 1
    per_customer["r_score"] = 1 + (5 * worse_recency) // n
    per_customer["f_score"] = 1 + (5 * worse_frequency) // n
    per_customer["m_score"] = 1 + (5 * worse_monetary) // n
    return per_customer


def expected_clv(purchases: pd.DataFrame, as_of: dt.date) -> dict:
    """``customer_id -> (frequency, recency, T, monetary_value)`` in the ``lifetimes`` convention."""
    days = purchases.groupby(["customer_id", "order_date"])["revenue"].sum().reset_index()
    expected = {}
    for customer_id, group in days.groupby("customer_id"):
        group = group.sort_values("order_date")
        first, last = group["order_date"].iloc[0], group["order_date"].iloc[-1]
        repeat = list(group["revenue"].iloc[1:])
        mean = sum(repeat, Decimal(0)) / len(repeat) if repeat else Decimal(0)
        monetary = mean.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
        expected[customer_id] = (len(group) - 1, (last - first).days, (as_of - first).days, monetary)
    return expected
