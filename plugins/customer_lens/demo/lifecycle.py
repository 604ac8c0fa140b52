"""When customers are active: churn that follows complaints, and win-back months later.

Each customer has up to two active intervals: ``[start1, end1)`` from acquisition to the first
churn, and ``[start2, end2)`` if they come back. Orders, tickets and survey invitations only happen
inside these intervals.

The simulation steps through the window month by month (vectorised over the chunk's customers):
a customer's monthly churn hazard depends on size (small firms churn more), on the hidden
``happiness`` trait, on having an annual contract (lower), and rises about fourfold for ~90 days
after a complaint. A churned customer comes back 2 to ~12 months later with a chance that grows
with size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from customer_lens.demo import population as pop
from customer_lens.demo.timeline import DAY, MONTH, Window

COMPLAINT_HAZARD_FACTOR = 4.0
CONTRACT_HAZARD_FACTOR = 0.6
COMPLAINT_MEMORY_MONTHS = 2  # the complaint's month plus two: ~90 days


@dataclass
class Activity:
    """Active intervals per customer (float epoch seconds; ``inf`` = open-ended or never)."""

    start1: np.ndarray
    end1: np.ndarray
    start2: np.ndarray
    end2: np.ndarray

    def contains(self, customer: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Whether each ``(customer, ts)`` falls inside one of that customer's active intervals."""
        first = (ts >= self.start1[customer]) & (ts < self.end1[customer])
        second = (ts >= self.start2[customer]) & (ts < self.end2[customer])
        inside: np.ndarray = first | second
        return inside

    def intervals(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(customer, begin, end)`` for the first and the second intervals that exist."""
        everyone = np.arange(len(self.start1))
        returned = np.isfinite(self.start2)
        return [
            (everyone, self.start1, self.end1),
            (everyone[returned], self.start2[returned], self.end2[returned]),
        ]


def simulate(
    rng: np.random.Generator,
    window: Window,
    created: np.ndarray,
    size: np.ndarray,
    has_contract: np.ndarray,
    happiness: np.ndarray,
    complaint_customer: np.ndarray,
    complaint_time: np.ndarray,
) -> Activity:
    """Active intervals of ``len(created)`` customers, given when each of them complained."""
    n = len(created)
    months = int(np.ceil((window.end_ts - window.start_ts) / MONTH))
    # First complaint of each customer in each month (inf = none).
    first_complaint: np.ndarray = np.full(n * months, np.inf)
    month_of = ((complaint_time - window.start_ts) // MONTH).astype(np.int64)
    np.minimum.at(first_complaint, complaint_customer * months + month_of, complaint_time)
    first_complaint = first_complaint.reshape(n, months)

    base_hazard = (
        pop.CHURN_HAZARD[size]
        * np.where(has_contract, CONTRACT_HAZARD_FACTOR, 1.0)
        * np.exp(-0.3 * happiness)  # happy customers stay longer
    )
    created = created.astype(np.float64)
    end1 = np.full(n, np.inf)
    start2 = np.full(n, np.inf)
    end2 = np.full(n, np.inf)
    never = -(10**6)
    last_complaint_month = np.full(n, never)
    for month in range(months):
        month_start = window.start_ts + month * MONTH
        month_end = min(month_start + MONTH, window.end_ts)
        in_first = (created < month_end) & np.isinf(end1)
        in_second = (start2 < month_end) & np.isinf(end2)
        active = in_first | in_second
        since = np.where(in_first, np.maximum(created, month_start), np.maximum(start2, month_start))
        since = np.where(active, since, month_start)  # inactive rows: any finite value will do
        complaint = first_complaint[:, month]
        # Only complaints made while active count (the gap between churn and return is silent).
        complained = active & (complaint >= since) & (complaint < month_end)
        last_complaint_month[complained] = month
        recent = (month - last_complaint_month) <= COMPLAINT_MEMORY_MONTHS
        hazard = base_hazard * np.where(recent, COMPLAINT_HAZARD_FACTOR, 1.0)
        exposure = np.clip((month_end - since) / MONTH, 0.0, 1.0)
        churns = active & (rng.random(n) < hazard * exposure)
        # A customer who complained this month leaves after the complaint, not before it.
        lower = np.where(complained, np.maximum(since, complaint), since)
        when = np.minimum(lower + rng.random(n) * (month_end - lower), window.end_ts - 1.0)
        comes_back = rng.random(n) < pop.WINBACK_SHARE[size]
        gap = (60.0 + rng.gamma(2.0, 60.0, n)) * DAY

        first_churn = churns & in_first
        end1[first_churn] = when[first_churn]
        returning = first_churn & comes_back & (when + gap < window.end_ts - 14 * DAY)
        start2[returning] = when[returning] + gap[returning]
        second_churn = churns & in_second
        end2[second_churn] = when[second_churn]
        last_complaint_month[churns] = never
    return Activity(start1=created, end1=end1, start2=start2, end2=end2)


class EventIndex:
    """Per-customer timelines of events (e.g. complaints), for "the last one before t" look-ups.

    One global ``searchsorted`` over the key ``customer * SPAN + time`` answers every query at once;
    times are taken relative to ``origin`` (the window start) and must lie within +-3 years of it.
    """

    _SPAN = 4e8  # seconds, ~12.7 years: wider than any time range we index
    _SHIFT = 2e8

    def __init__(self, customer: np.ndarray, ts: np.ndarray, kind: np.ndarray, origin: float) -> None:
        order = np.lexsort((ts, customer))
        self.customer = customer[order]
        self.ts = ts[order]
        self.kind = kind[order]
        self._origin = origin
        self._keys = self._key(self.customer, self.ts)

    def _key(self, customer: np.ndarray, ts: np.ndarray) -> np.ndarray:
        return customer * self._SPAN + (ts - self._origin + self._SHIFT)

    def last_before(self, customer: np.ndarray, ts: np.ndarray, within: float) -> np.ndarray:
        """Position of each customer's last event in ``(ts - within, ts]`` in this index, or -1."""
        result = np.full(len(customer), -1)
        if len(self.customer) == 0 or len(customer) == 0:
            return result
        found = np.searchsorted(self._keys, self._key(customer, ts), side="right") - 1
        safe = np.maximum(found, 0)
        ok = (found >= 0) & (self.customer[safe] == customer) & (ts - self.ts[safe] < within)
        result[ok] = found[ok]
        return result
