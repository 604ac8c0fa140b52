"""The demo's calendar: the three-year window, seasonality, and sampling times from it.

Times are seconds since the Unix epoch, UTC. During simulation they are ``float64`` (``inf`` means
"never"); they are floored to whole seconds once, when rows are finalised, so every output shows
the same second for the same event.

Seasonality is one hourly weight grid over the window: a month factor (Q4 peak, summer dip, a
quiet last week of December), a weekday factor (B2B: weekends are quiet) and an hour-of-day
factor. Events are sampled from it by inverse CDF, which keeps every draw vectorised and lets an
event be confined to a customer's own active interval.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

HOUR = 3_600.0
DAY = 86_400.0
MONTH = 30.4375 * DAY  # an average month; the churn simulation steps in these

# Month factors, January first: busy Q4, summer dip.
_MONTH_FACTOR = np.array([0.95, 0.97, 1.02, 1.00, 1.00, 0.92, 0.80, 0.75, 1.05, 1.12, 1.30, 1.15])
# Weekday factors, Monday first.
_WEEKDAY_FACTOR = np.array([1.10, 1.15, 1.10, 1.05, 0.95, 0.35, 0.25])
# Hour-of-day factors (UTC): customers are mostly in Europe, the Americas and the Middle East.
_HOUR_FACTOR = np.array(
    [
        *(0.15, 0.12, 0.10, 0.10, 0.12, 0.18, 0.30, 0.60, 1.20, 1.40, 1.45, 1.45),
        *(1.40, 1.45, 1.50, 1.50, 1.35, 1.00, 0.80, 0.60, 0.45, 0.35, 0.25, 0.18),
    ]
)


def add_years(days: np.ndarray, years: int) -> np.ndarray:
    """Add calendar years to ``datetime64[D]`` values; 29 February becomes 28 February."""
    months = days.astype("datetime64[M]")
    day_of_month = (days - months).astype(np.int64)
    shifted = months + 12 * years
    month_length = ((shifted + 1).astype("datetime64[D]") - shifted.astype("datetime64[D]")).astype(np.int64)
    shifted_days: np.ndarray = shifted.astype("datetime64[D]") + np.minimum(day_of_month, month_length - 1)
    return shifted_days


@dataclass(frozen=True)
class Window:
    """The simulated history: ``start`` to ``end`` inclusive (whole UTC days)."""

    start: dt.date
    end: dt.date

    @classmethod
    def ending(cls, end: dt.date) -> Window:
        """Three years of history ending on ``end``: start = end minus three years plus one day."""
        try:
            three_years_back = end.replace(year=end.year - 3)
        except ValueError:  # 29 February
            three_years_back = end.replace(year=end.year - 3, day=28)
        return cls(start=three_years_back + dt.timedelta(days=1), end=end)

    @property
    def start_ts(self) -> float:
        return float(np.datetime64(self.start, "s").astype(np.int64))

    @property
    def end_ts(self) -> float:
        """Exclusive upper bound: midnight after ``end``. Every event happens before it."""
        return float(np.datetime64(self.end + dt.timedelta(days=1), "s").astype(np.int64))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def day_index(self, ts: np.ndarray) -> np.ndarray:
        """Index of the UTC day (0 = ``start``) of each timestamp."""
        return ((np.asarray(ts) - self.start_ts) // DAY).astype(np.int64)

    def day_labels(self) -> list[str]:
        """``YYYY-MM-DD`` of every day of the window, in order."""
        first = np.datetime64(self.start, "D")
        return [str(d) for d in first + np.arange(self.days)]


def _day_weights(window: Window) -> np.ndarray:
    days = np.datetime64(window.start, "D") + np.arange(window.days)
    months = days.astype("datetime64[M]")
    month_of_year = (months.astype(np.int64) % 12).astype(np.int64)
    weekday = ((days.astype(np.int64) + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday
    weights: np.ndarray = _MONTH_FACTOR[month_of_year] * _WEEKDAY_FACTOR[weekday]
    day_of_month = (days - months).astype(np.int64) + 1
    weights[(month_of_year == 11) & (day_of_month >= 24)] *= 0.4  # the days between Christmas and New Year
    return weights


class Intensity:
    """A piecewise-constant event rate over the window (one cell per hour), normalised to mean 1.

    ``mass(a, b)`` is the expected number of events between ``a`` and ``b`` for a unit rate per
    hour; ``sample(rng, a, b)`` draws one time per pair from the rate restricted to ``[a, b)``.
    """

    def __init__(self, window: Window, trend: tuple[float, float] = (1.0, 1.0)) -> None:
        self.window = window
        days = _day_weights(window) * np.linspace(trend[0], trend[1], window.days)
        weights = np.repeat(days, 24) * np.tile(_HOUR_FACTOR, window.days)
        self.weights = weights / weights.mean()
        self.cumulative = np.concatenate([[0.0], np.cumsum(self.weights)])
        self._start = window.start_ts
        self._cells = len(self.weights)

    def _cumulative_at(self, ts: np.ndarray) -> np.ndarray:
        x = np.clip((np.asarray(ts, dtype=np.float64) - self._start) / HOUR, 0.0, float(self._cells))
        cell = np.minimum(x.astype(np.int64), self._cells - 1)
        cumulative: np.ndarray = self.cumulative[cell] + (x - cell) * self.weights[cell]
        return cumulative

    def mass(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Weighted hours between ``a`` and ``b`` (0 when ``b <= a``)."""
        hours: np.ndarray = np.maximum(self._cumulative_at(b) - self._cumulative_at(a), 0.0)
        return hours

    def sample(self, rng: np.random.Generator, a: np.ndarray, b: np.ndarray, *, ascending: bool = False) -> np.ndarray:
        """One time in ``[a, b)`` per pair, following the intensity. ``b`` may be ``inf``.

        With ``ascending`` (and equal bounds for every pair) the times come out sorted.
        """
        lo = self._cumulative_at(a)
        hi = self._cumulative_at(np.minimum(b, self.window.end_ts))
        draws = rng.random(len(lo))
        u = lo + (np.sort(draws) if ascending else draws) * (hi - lo)
        cell = np.clip(np.searchsorted(self.cumulative, u, side="right") - 1, 0, self._cells - 1)
        ts = self._start + (cell + (u - self.cumulative[cell]) / self.weights[cell]) * HOUR
        upper = np.maximum(np.minimum(b, self.window.end_ts) - 1.0, a)
        sampled: np.ndarray = np.minimum(np.maximum(ts, a), upper)
        return sampled
