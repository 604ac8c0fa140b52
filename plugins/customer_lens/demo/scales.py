"""How big a demo dataset is: the named scales the CLI, the tests and the benchmark use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """Size of one demo dataset.

    ``customers`` drives everything else (orders, tickets and survey responses are generated per
    customer). ``chunk_size`` is how many customers are simulated and written at once: it bounds
    peak memory and is part of the output's identity (a different chunk size gives different ids),
    so it is fixed per scale. ``activity`` scales the order rate so each scale lands near its
    target volume (tiny ~9k order lines for fast tests, large ~10M).
    """

    name: str
    customers: int
    chunk_size: int
    products: int
    activity: float
    faults_per_kind: int

    @property
    def chunks(self) -> int:
        return -(-self.customers // self.chunk_size)


SCALES: dict[str, Scale] = {
    scale.name: scale
    for scale in (
        # tiny has three chunks on purpose, so the tests exercise chunk boundaries.
        Scale("tiny", customers=300, chunk_size=100, products=120, activity=0.8, faults_per_kind=3),
        Scale("small", customers=5_000, chunk_size=2_500, products=240, activity=1.0, faults_per_kind=4),
        Scale("medium", customers=50_000, chunk_size=25_000, products=300, activity=1.0, faults_per_kind=5),
        Scale("large", customers=500_000, chunk_size=25_000, products=300, activity=0.7, faults_per_kind=5),
    )
}
