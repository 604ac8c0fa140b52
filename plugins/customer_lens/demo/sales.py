"""The sales OLTP rows of one chunk: orders, order lines and annual contracts.

Orders arrive as a seasonal Poisson process per customer while the customer is active (see
``lifecycle``); bigger customers order more often, buy more lines and more units, and get larger
discounts; ~30% of the large and enterprise accounts negotiated discounts deep enough to make them
barely profitable. Orders change after creation: ~4% are cancelled within days, ~3% returned weeks later
(half of the orders with a product-quality ticket are returned); ``updated_at`` is the change time.

Contracts are annual. At each term end the customer renews (a new contract pointing back with
``renewed_from_contract_id``, with a ``renewal_reason``), lets it expire, or — when they churn
mid-term — cancels (``cancellation_reason``, ``end_date`` = the day the cancellation took effect).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from customer_lens.demo import formats, service
from customer_lens.demo import population as pop
from customer_lens.demo.lifecycle import Activity
from customer_lens.demo.timeline import DAY, HOUR, MONTH, Intensity, Window, add_years

ORDER_STATUSES = ("completed", "cancelled", "returned")
SALES_CHANNELS = ("web", "marketplace", "phone", "sales_rep", "edi")
SALES_CHANNEL_BY_SIZE = np.array(
    [
        [0.60, 0.25, 0.15, 0.00, 0.00],
        [0.50, 0.15, 0.20, 0.15, 0.00],
        [0.35, 0.00, 0.20, 0.35, 0.10],
        [0.15, 0.00, 0.10, 0.45, 0.30],
        [0.10, 0.00, 0.00, 0.35, 0.55],
    ]
)
CANCEL_SHARE = 0.04
RETURN_SHARE = 0.03
RETURN_AFTER_QUALITY_TICKET = 0.5

PLANS = ("basic", "pro", "enterprise")
PLAN_BY_SIZE = np.array([[0.9, 0.1, 0.0], [0.7, 0.3, 0.0], [0.3, 0.6, 0.1], [0.0, 0.5, 0.5], [0.0, 0.15, 0.85]])
CONTRACT_STATUSES = ("active", "renewed", "expired", "cancelled")
RENEWAL_REASONS = (
    "value_for_money", "product_quality", "support_quality", "price_lock", "expanded_usage", "no_alternative",
)  # fmt: skip
RENEWAL_REASON_WEIGHTS = np.array([0.25, 0.15, 0.15, 0.15, 0.2, 0.1])
CANCELLATION_REASONS = (
    "price_too_high", "delivery_problems", "product_quality", "poor_support",
    "switched_to_competitor", "no_longer_needed", "business_closed",
)  # fmt: skip
# Reasons given when no recent complaint explains the loss.
UNEXPLAINED_LOSS_WEIGHTS = np.array([0.25, 0.0, 0.0, 0.0, 0.3, 0.3, 0.15])
CANCEL_INSTEAD_OF_EXPIRE = 0.55
VOLUNTARY_NON_RENEWAL = 0.08  # contract lapses although the customer keeps buying


def potential_orders(
    rng: np.random.Generator, intensity: Intensity, created: np.ndarray, order_rate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Orders each customer would place from acquisition to the window end if they never churned.

    Returns ``(customer, ordered_at)``; churn later removes the ones outside active intervals.
    Drawing them first is what lets complaints about orders feed back into churn.
    """
    end = np.full(len(created), intensity.window.end_ts)
    expected = order_rate * intensity.mass(created, end) / (MONTH / HOUR)
    count = rng.poisson(expected)
    customer = np.repeat(np.arange(len(created)), count)
    return customer, intensity.sample(rng, created[customer].astype(np.float64), end[customer])


@dataclass
class Orders:
    """Finalised orders of a chunk and their lines."""

    orders: pa.Table
    lines: pa.Table
    order_id: np.ndarray  # the id given to each input order
    line_count: int


def orders_and_lines(
    rng: np.random.Generator,
    window: Window,
    catalogue: pop.Catalogue,
    customer_id: np.ndarray,
    size: np.ndarray,
    low_margin: np.ndarray,
    customer: np.ndarray,
    ordered_at: np.ndarray,
    quality_ticket_at: np.ndarray,
    first_order_id: int,
    first_line_id: int,
) -> Orders:
    """Orders and their lines for the kept orders ``(customer, ordered_at)`` of one chunk.

    ``quality_ticket_at`` is the time of a product-quality ticket about the order (inf = none).
    Ids are assigned in time order within the chunk, starting at the given first ids.
    """
    n = len(customer)
    created = np.floor(ordered_at)
    sequence = np.lexsort((customer, created))
    order_id = np.empty(n, dtype=np.int64)
    order_id[sequence] = first_order_id + np.arange(n)

    # Status changes after creation; a change that would land after the window end has not happened yet.
    u = rng.random(n)
    cancelled = u < CANCEL_SHARE
    returned_plain = (u >= CANCEL_SHARE) & (u < CANCEL_SHARE + RETURN_SHARE)
    returned_quality = np.isfinite(quality_ticket_at) & ~cancelled & (rng.random(n) < RETURN_AFTER_QUALITY_TICKET)
    cancelled_at = created + rng.uniform(HOUR, 72 * HOUR, n)
    returned_at = np.where(
        returned_quality,
        quality_ticket_at + rng.uniform(2 * DAY, 10 * DAY, n),
        created + rng.uniform(7 * DAY, 42 * DAY, n),
    )
    status = np.zeros(n, dtype=np.int64)
    updated = created.copy()
    is_cancelled = cancelled & (cancelled_at < window.end_ts)
    is_returned = (returned_plain | returned_quality) & ~cancelled & (returned_at < window.end_ts)
    status[is_cancelled] = ORDER_STATUSES.index("cancelled")
    updated[is_cancelled] = np.floor(cancelled_at[is_cancelled])
    status[is_returned] = ORDER_STATUSES.index("returned")
    updated[is_returned] = np.floor(returned_at[is_returned])
    channel = pop.choose_by_row(rng, SALES_CHANNEL_BY_SIZE, size[customer])

    orders = pa.table(
        {
            "order_id": order_id[sequence],
            "customer_id": customer_id[customer][sequence],
            "ordered_at": formats.timestamps(created[sequence]),
            "status": formats.labels(ORDER_STATUSES, status[sequence]),
            "sales_channel": formats.labels(SALES_CHANNELS, channel[sequence]),
            "created_at": formats.timestamps(created[sequence]),
            "updated_at": formats.timestamps(updated[sequence]),
        }
    )

    # Lines, in order-id order so line ids follow order ids.
    line_count = 1 + rng.poisson(pop.LINES_PER_ORDER[size[customer]] - 1.0)
    line_count = line_count[sequence]
    line_order = np.repeat(sequence, line_count)  # index of the order of each line
    m = len(line_order)
    line_customer = customer[line_order]
    line_time = created[line_order]
    product = np.minimum(
        np.searchsorted(np.cumsum(catalogue.popularity), rng.random(m), side="right"), len(catalogue.popularity) - 1
    )
    # A product launched after the order could not have been bought: use an older one of its category.
    product = np.where(catalogue.created[product] > line_time, catalogue.fallback[product], product)
    category = catalogue.category[product]
    units = 1 + rng.poisson(pop.UNITS_PER_LINE[size[line_customer]] - 1.0)
    units = np.where(category == list(pop.PRODUCT_CATEGORIES).index("consumables"), units * 3, units)
    units = np.where(category == list(pop.PRODUCT_CATEGORIES).index("services"), 1 + rng.poisson(0.5, m), units)
    before_rise = line_time < catalogue.price_changed_at[product]
    factor = np.where(before_rise, catalogue.old_price_factor[product], 1.0)
    unit_price = np.round(catalogue.list_price[product] * factor, 2)
    unit_cost = np.round(catalogue.unit_cost[product] * factor, 2)
    discount = (
        pop.BASE_DISCOUNT[size[line_customer]]
        + np.where(low_margin[line_customer], 0.15, 0.0)
        + rng.uniform(-0.02, 0.03, m)
    )
    discount = np.where(size[line_customer] == 0, np.where(rng.random(m) < 0.7, 0.0, discount), discount)
    discount = np.round(np.clip(discount, 0.0, 0.6), 4)
    lines = pa.table(
        {
            "order_line_id": first_line_id + np.arange(m, dtype=np.int64),
            "order_id": order_id[line_order],
            "product_id": pa.array(product + 1, type=pa.int32()),
            "quantity": pa.array(units, type=pa.int32()),
            "unit_price": unit_price,
            "discount_pct": discount,
            "unit_cost": unit_cost,
            "created_at": formats.timestamps(line_time),
            # Lines follow their order: a cancellation or return touches every line.
            "updated_at": formats.timestamps(updated[line_order]),
        }
    )
    return Orders(orders=orders, lines=lines, order_id=order_id, line_count=m)


@dataclass
class ContractEvents:
    """Contract rows of a chunk plus the moments the survey module asks about."""

    table: pa.Table
    renewal_customer: np.ndarray
    renewal_at: np.ndarray
    renewal_reason: np.ndarray
    exit_customer: np.ndarray
    exit_at: np.ndarray
    exit_reason: np.ndarray


def _draw(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(weights) - 1)


def loss_reason(rng: np.random.Generator, complaint_category: np.ndarray) -> np.ndarray:
    """Why a customer left, mostly from the category of their last recent complaint (-1 = none)."""
    by_category = {
        "delivery": "delivery_problems",
        "product_quality": "product_quality",
        "technical": "poor_support",
        "account": "poor_support",
        "billing": "price_too_high",
    }
    mapping = np.array(
        [CANCELLATION_REASONS.index(by_category[c]) if c in by_category else -1 for c in service.CATEGORIES]
    )
    n = len(complaint_category)
    unexplained = _draw(rng, UNEXPLAINED_LOSS_WEIGHTS, n)
    explained = np.where(complaint_category >= 0, mapping[np.maximum(complaint_category, 0)], -1)
    use_complaint = (explained >= 0) & (rng.random(n) < 0.8)
    return np.where(use_complaint, explained, unexplained)


def _day(ts: np.ndarray) -> np.ndarray:
    return (np.floor(np.where(np.isfinite(ts), ts, 0.0)) // DAY).astype(np.int64).astype("datetime64[D]")


def _midnight_after(day: np.ndarray) -> np.ndarray:
    return (day + np.timedelta64(1, "D")).astype("datetime64[s]").astype(np.int64).astype(np.float64)


class _ContractRows:
    """Accumulates contract terms (as row numbers in generation order) and the survey moments."""

    def __init__(self) -> None:
        self.columns: dict[str, list[np.ndarray]] = {}
        self.count = 0
        self.renewals: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.exits: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, **values: np.ndarray) -> np.ndarray:
        for key, value in values.items():
            self.columns.setdefault(key, []).append(value)
        n = len(next(iter(values.values())))
        rows = np.arange(self.count, self.count + n)
        self.count += n
        return rows

    def column(self, key: str) -> np.ndarray:
        return np.concatenate(self.columns[key]) if self.count else np.array([], dtype=np.int64)


def _chain(
    rng: np.random.Generator,
    window: Window,
    size: np.ndarray,
    customer: np.ndarray,
    begin: np.ndarray,
    churn: np.ndarray,
    last_complaint_category: Callable[[np.ndarray, np.ndarray], np.ndarray],
    out: _ContractRows,
) -> np.ndarray:
    """Contract terms for customers who start a contract at ``begin``; returns when lost contracts end.

    The result (per customer of ``size``; -inf = not applicable) is the end of the term of a customer
    who churned mid-term but let the contract run out: they cannot come back before it ends.
    """
    runs_out = np.full(len(size), -np.inf)
    signed = begin + rng.uniform(0, 30 * DAY, len(customer))
    live = signed < np.minimum(churn, window.end_ts)
    customer, signed, churn = customer[live], np.floor(signed[live]), churn[live]
    start_day = _day(signed)
    plan = pop.choose_by_row(rng, PLAN_BY_SIZE, size[customer])
    value = _annual_value(rng, plan)
    previous = np.full(len(customer), -1)
    renewal_reason = np.full(len(customer), -1)
    while len(customer):  # ends: every renewal is signed a year later, and only inside the window
        k = len(customer)
        end_day = add_years(start_day, 1) - np.timedelta64(1, "D")
        term_end = _midnight_after(end_day)
        churn_in_term = churn < term_end
        cancels = churn_in_term & (rng.random(k) < CANCEL_INSTEAD_OF_EXPIRE)
        lapses = ~churn_in_term & (rng.random(k) < VOLUNTARY_NON_RENEWAL)
        renew_at = np.floor(term_end - rng.uniform(1 * DAY, 30 * DAY, k))
        renews = ~churn_in_term & ~lapses & (renew_at < window.end_ts)
        expire_at = term_end + 2 * HOUR  # the nightly job marks lapsed contracts
        expires = ((churn_in_term & ~cancels) | lapses) & (expire_at < window.end_ts)

        status = np.full(k, CONTRACT_STATUSES.index("active"))
        updated = signed.copy()
        status[renews] = CONTRACT_STATUSES.index("renewed")
        updated[renews] = renew_at[renews]
        status[expires] = CONTRACT_STATUSES.index("expired")
        updated[expires] = expire_at[expires]
        status[cancels] = CONTRACT_STATUSES.index("cancelled")
        updated[cancels] = np.floor(churn[cancels])
        end_date = np.where(cancels, np.maximum(_day(churn), start_day), end_day)

        lost = cancels | (churn_in_term & expires)
        lost_at = np.where(cancels, np.floor(np.where(cancels, churn, 0.0)), expire_at)
        reason = np.full(k, -1)
        if lost.any():
            category = last_complaint_category(customer[lost], lost_at[lost])
            reason[lost] = loss_reason(rng, category)
            out.exits.append((customer[lost], lost_at[lost], reason[lost]))
        ran_out = churn_in_term & ~cancels
        runs_out[customer[ran_out]] = term_end[ran_out]

        rows = out.add(
            customer=customer, created=signed, start=start_day, end=end_date, plan=plan, value=value,
            status=status, updated=updated, previous=previous, renewal_reason=renewal_reason,
            cancellation_reason=np.where(cancels, reason, -1),
        )  # fmt: skip

        # The renewals become the next term.
        customer, churn, previous = customer[renews], churn[renews], rows[renews]
        signed, start_day = renew_at[renews], end_day[renews] + np.timedelta64(1, "D")
        upgrade = (rng.random(len(customer)) < 0.15) & (plan[renews] < len(PLANS) - 1)
        grown = value[renews] * np.where(upgrade, 2.5, rng.uniform(1.03, 1.08, len(customer)))
        plan, value = plan[renews] + upgrade, np.round(grown, -2)
        renewal_reason = _draw(rng, RENEWAL_REASON_WEIGHTS, len(customer))
        out.renewals.append((customer, signed, renewal_reason))
    return runs_out


def contracts(
    rng: np.random.Generator,
    window: Window,
    customer_id: np.ndarray,
    size: np.ndarray,
    has_contract: np.ndarray,
    activity: Activity,
    last_complaint_category: Callable[[np.ndarray, np.ndarray], np.ndarray],
    first_contract_id: int,
) -> ContractEvents:
    """Annual contract chains for contract customers, one chain per active interval.

    ``last_complaint_category(customer, ts)`` gives the category of each customer's last complaint
    in the half year before ``ts`` (-1 = none); it shapes cancellation and exit reasons.

    A customer who churned mid-term but let the contract run out cannot come back before it ends:
    such returns are removed from ``activity`` (which is why this runs before orders are kept).
    """
    out = _ContractRows()
    everyone = np.arange(len(size))
    first = has_contract
    runs_out = _chain(
        rng, window, size, everyone[first], activity.start1[first], activity.end1[first], last_complaint_category, out
    )
    too_early = activity.start2 < runs_out
    activity.start2[too_early] = np.inf
    activity.end2[too_early] = np.inf
    second = has_contract & np.isfinite(activity.start2)
    _chain(
        rng,
        window,
        size,
        everyone[second],
        activity.start2[second],
        activity.end2[second],
        last_complaint_category,
        out,
    )

    n = out.count
    created = out.column("created")
    customer = out.column("customer").astype(np.int64)
    # Contract ids in signing order; a renewal is always signed after the contract it renews.
    sequence = np.lexsort((customer, created))
    contract_id = np.empty(n, dtype=np.int64)
    contract_id[sequence] = first_contract_id + np.arange(n)
    previous = out.column("previous").astype(np.int64)
    renewed_from = np.where(previous >= 0, contract_id[np.maximum(previous, 0)], 0) if n else previous

    def col(key: str) -> np.ndarray:
        return out.column(key)[sequence]

    renewal_reason, cancellation_reason = col("renewal_reason"), col("cancellation_reason")
    table = pa.table(
        {
            "contract_id": contract_id[sequence],
            "customer_id": customer_id[customer[sequence]],
            "plan": formats.labels(PLANS, col("plan")),
            "start_date": pa.array(col("start").astype("datetime64[D]"), type=pa.date32()),
            "end_date": pa.array(col("end").astype("datetime64[D]"), type=pa.date32()),
            "annual_value": col("value").astype(np.float64),
            "status": formats.labels(CONTRACT_STATUSES, col("status")),
            "renewed_from_contract_id": pa.array(renewed_from[sequence], mask=renewed_from[sequence] == 0),
            "renewal_reason": formats.labels(RENEWAL_REASONS, np.maximum(renewal_reason, 0), renewal_reason >= 0),
            "cancellation_reason": formats.labels(
                CANCELLATION_REASONS, np.maximum(cancellation_reason, 0), cancellation_reason >= 0
            ),
            "created_at": formats.timestamps(col("created").astype(np.int64)),
            "updated_at": formats.timestamps(col("updated").astype(np.int64)),
        }
    )

    def stack(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        if not parts:
            return [np.array([], dtype=np.int64), np.array([], dtype=np.float64), np.array([], dtype=np.int64)]
        return [np.concatenate(p) for p in zip(*parts, strict=True)]

    renewal, gone = stack(out.renewals), stack(out.exits)
    return ContractEvents(
        table=table,
        renewal_customer=renewal[0].astype(np.int64),
        renewal_at=renewal[1].astype(np.float64),
        renewal_reason=renewal[2].astype(np.int64),
        exit_customer=gone[0].astype(np.int64),
        exit_at=gone[1].astype(np.float64),
        exit_reason=gone[2].astype(np.int64),
    )


def _annual_value(rng: np.random.Generator, plan: np.ndarray) -> np.ndarray:
    n = len(plan)
    basic = rng.uniform(1_200, 3_600, n)
    pro = rng.uniform(6_000, 18_000, n)
    enterprise = np.clip(rng.lognormal(np.log(60_000), 0.45, n), 25_000, 250_000)
    return np.round(np.choose(plan, [basic, pro, enterprise]), -2)
