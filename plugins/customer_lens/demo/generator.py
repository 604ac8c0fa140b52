"""Running a generation: population, then chunk after chunk, then faults, then publish.

The work is split by customer chunks (``Scale.chunk_size``): each chunk is simulated completely
(orders, tickets, contracts, surveys of its customers) by ``simulate_chunk``, a pure function of
the seed and the chunk index, then ``write_chunk`` streams it into the open load transaction and
appends it to the staged daily files. Nothing of a chunk is kept afterwards, so memory is bounded
by the chunk size, not by the scale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from customer_lens.demo import database, exports, faults, lifecycle, sales, service, streams, survey
from customer_lens.demo import population as pop
from customer_lens.demo.scales import SCALES, Scale
from customer_lens.demo.timeline import DAY, Intensity, Window

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

# Bump whenever a change alters the generated data: installed data with another version is stale.
GENERATOR_VERSION = "2"
LOSS_REASON_LOOKBACK_DAYS = 180
LINE_BATCH = 50_000  # ticket versions rendered to text at a time (bounds the memory for text)


@dataclass(frozen=True)
class Summary:
    """What a generation produced. Row counts are good rows only; faults are counted apart."""

    scale: str
    seed: int
    end_date: dt.date
    bad_records: bool
    fingerprint: str
    customers: int
    products: int
    orders: int
    order_lines: int
    contracts: int
    tickets: int
    ticket_versions: int
    survey_responses: int
    files_written: int
    faults_injected: int
    elapsed_seconds: float
    # Seconds per phase: population, simulate, copy, files, faults, index, publish.
    phase_seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """The row counts by entity (deterministic: no timings)."""
        names = ("customers", "products", "orders", "order_lines", "contracts", "tickets", "ticket_versions")
        return {name: getattr(self, name) for name in (*names, "survey_responses")}


def fingerprint(*, scale: str, seed: int, end_date: dt.date, bad_records: bool) -> str:
    """A stable hash of the generation parameters, the scale's definition and ``GENERATOR_VERSION``."""
    spec = {
        "generator_version": GENERATOR_VERSION,
        "scale": dataclasses.asdict(_scale(scale)),
        "seed": int(seed),
        "end_date": end_date.isoformat(),
        "bad_records": bool(bad_records),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def installed_fingerprint(*, sales_url: str, files_dir: Path) -> str | None:
    """The fingerprint of the demo data currently installed, or None.

    None when either the sales database or the export directory has no record, or when they
    disagree (e.g. a generation committed the database but crashed before swapping the files).
    """
    in_files = exports.installed_fingerprint(Path(files_dir))
    if in_files is None:
        return None
    in_database = database.installed_fingerprint(sales_url)
    return in_files if in_database == in_files else None


def _scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}; choose one of {', '.join(SCALES)}") from None


# --- one chunk -----------------------------------------------------------------------------------------
@dataclass
class Chunk:
    """Everything one chunk of customers produced, ready to write."""

    index: int
    customers: pa.Table
    orders: pa.Table
    order_lines: pa.Table
    contracts: pa.Table
    tickets: service.Tickets
    responses: survey.Responses


@dataclass
class Counters:
    """Ids continue from chunk to chunk; these are the last ids used so far."""

    order: int = 0
    order_line: int = 0
    contract: int = 0
    ticket: int = 0
    response: int = 0


@dataclass
class World:
    """What every chunk shares: the parameters, the population, the catalogue and the calendar."""

    seed: int
    scale: Scale
    window: Window
    population: pop.Population
    catalogue: pop.Catalogue
    intensity: Intensity


def simulate_chunk(world: World, index: int, ids: Counters) -> Chunk:
    """Simulate chunk ``index``: its customers and everything they did. Advances ``ids``."""
    lo = index * world.scale.chunk_size
    hi = min(lo + world.scale.chunk_size, len(world.population))
    people, window = world.population, world.window

    def rng(name: str) -> np.random.Generator:
        return streams.stream(world.seed, index, name)

    customers = pop.customer_table(rng("customers"), people, lo, hi)
    customer_id = np.arange(lo + 1, hi + 1, dtype=np.int64)
    emails = customers.column("email").combine_chunks()
    created = people.created[lo:hi].astype(np.float64)
    size, happiness = people.size[lo:hi], people.happiness[lo:hi]
    language, has_contract = people.language[lo:hi], people.has_contract[lo:hi]

    # Everything that could happen, then churn decides what did.
    order_customer, order_time = sales.potential_orders(
        rng("orders"), world.intensity, created, people.order_rate[lo:hi]
    )
    drafts = service.potential_tickets(
        rng("tickets"), world.intensity, created, size, happiness, order_customer, order_time
    )
    complaint = drafts.type == service.COMPLAINT
    activity = lifecycle.simulate(
        rng("churn"), window, created, size, has_contract, happiness,
        drafts.customer[complaint], drafts.created[complaint],
    )  # fmt: skip

    def kept_tickets() -> np.ndarray:
        order_kept = activity.contains(order_customer, order_time)
        about_order = drafts.order >= 0
        return np.where(
            about_order,
            order_kept[np.maximum(drafts.order, 0)],
            activity.contains(drafts.customer, drafts.created),
        )

    complaints_so_far = drafts.take(kept_tickets() & complaint)
    complaint_index = lifecycle.EventIndex(
        complaints_so_far.customer, complaints_so_far.created, complaints_so_far.category, window.start_ts
    )

    def last_complaint_category(customer: np.ndarray, ts: np.ndarray) -> np.ndarray:
        found = complaint_index.last_before(customer, ts, LOSS_REASON_LOOKBACK_DAYS * DAY)
        return np.where(found >= 0, complaint_index.kind[np.maximum(found, 0)], -1)

    contracts = sales.contracts(
        rng("contracts"), window, customer_id, size, has_contract, activity, last_complaint_category, ids.contract + 1
    )
    # contracts() may cancel win-backs, so decide what was kept only now.
    order_kept = activity.contains(order_customer, order_time)
    ticket_kept = kept_tickets()
    kept_orders = np.flatnonzero(order_kept)
    tickets_kept = drafts.take(ticket_kept)

    quality_ticket_at = np.full(len(order_customer), np.inf)
    quality = (tickets_kept.order >= 0) & (tickets_kept.category == service.CATEGORIES.index("product_quality"))
    np.minimum.at(quality_ticket_at, tickets_kept.order[quality], tickets_kept.created[quality])
    orders = sales.orders_and_lines(
        rng("order_details"), window, world.catalogue, customer_id, size, people.low_margin[lo:hi],
        order_customer[kept_orders], order_time[kept_orders], quality_ticket_at[kept_orders],
        ids.order + 1, ids.order_line + 1,
    )  # fmt: skip
    order_id_of = np.zeros(len(order_customer), dtype=np.int64)
    order_id_of[kept_orders] = orders.order_id
    ticket_order_id = np.where(tickets_kept.order >= 0, order_id_of[np.maximum(tickets_kept.order, 0)], 0)
    tickets = service.finish(
        rng("ticket_details"), window, tickets_kept, ticket_order_id, emails, language, size, happiness,
        ids.ticket + 1,
    )  # fmt: skip
    responses = survey.responses(
        rng("survey"), window, customer_id, emails, language, size, happiness, activity, tickets, contracts,
        ids.response + 1,
    )  # fmt: skip

    ids.order += orders.orders.num_rows
    ids.order_line += orders.line_count
    ids.contract += contracts.table.num_rows
    ids.ticket += tickets.ticket_count
    ids.response += responses.count
    return Chunk(
        index=index,
        customers=customers,
        orders=orders.orders,
        order_lines=orders.lines,
        contracts=contracts.table,
        tickets=tickets,
        responses=responses,
    )


class _Clock:
    """Accumulates seconds per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass
class _Totals:
    ticket_versions: int = 0
    line_counts: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def write_chunk(
    load: database.SalesLoad, staging: exports.Staging, chunk: Chunk, clock: _Clock, totals: _Totals
) -> None:
    """Stream one chunk into the load transaction and append it to the staged daily files."""
    with clock.phase("copy"):
        load.copy("customers", chunk.customers)
        load.copy("orders", chunk.orders)
        load.copy("order_lines", chunk.order_lines)
        load.copy("contracts", chunk.contracts)
    versions = chunk.tickets.versions
    with clock.phase("files"):
        for start in range(0, len(versions), LINE_BATCH):
            stop = min(start + LINE_BATCH, len(versions))
            staging.append(exports.SERVICE_DIR, versions.day[start:stop], versions.lines(start, stop))
        staging.append(exports.SURVEY_DIR, chunk.responses.day, chunk.responses.lines)
    totals.ticket_versions += len(versions)
    for kind, day in ((exports.SERVICE_DIR, versions.day), (exports.SURVEY_DIR, chunk.responses.day)):
        totals.line_counts[kind] += np.bincount(day, minlength=len(totals.line_counts[kind]))


# --- progress ------------------------------------------------------------------------------------------
class _Progress:
    """A rich progress bar per phase on stderr, or nothing at all."""

    def __init__(self, enabled: bool) -> None:
        self._progress: Progress | None = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True),
            )  # fmt: skip

    def __enter__(self) -> _Progress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def phase(self, description: str, total: int) -> TaskID | None:
        return None if self._progress is None else self._progress.add_task(description, total=total)

    def advance(self, task: TaskID | None, description: str | None = None) -> None:
        if self._progress is not None and task is not None:
            self._progress.update(task, advance=1, description=description or None)


# --- the whole run ---------------------------------------------------------------------------------------
def _build_world(seed: int, spec: Scale, window: Window, clock: _Clock, bar: _Progress) -> World:
    """The population and the product catalogue every chunk draws from."""
    task = bar.phase("population & catalogue", 1)
    with clock.phase("population"):
        population = pop.build(
            streams.stream(seed, streams.WHOLE_DATASET, "population"), spec.customers, window, spec.activity
        )
        catalogue = pop.catalogue(streams.stream(seed, streams.WHOLE_DATASET, "products"), spec.products, window)
        world = World(seed, spec, window, population, catalogue, Intensity(window))
    bar.advance(task)
    return world


def _publish(
    world: World,
    load: database.SalesLoad,
    staging: exports.Staging,
    ids: Counters,
    totals: _Totals,
    manifest: list[faults.ManifestEntry],
    *,
    print_: str,
    scale: str,
    end_date: dt.date,
    bad_records: bool,
) -> tuple[dict[str, int], int]:
    """Write the metadata (and the fault manifest), then publish the database and the export tree.

    Returns the good rows per table and the number of files written.
    """
    counts = {
        "customers": load.rows["customers"],
        "products": load.rows["products"],
        "orders": ids.order,
        "order_lines": ids.order_line,
        "contracts": ids.contract,
        "tickets": ids.ticket,
        "ticket_versions": totals.ticket_versions,
        "survey_responses": ids.response,
    }
    staging.write_json(
        exports.META_FILE,
        {
            "fingerprint": print_,
            "generator_version": GENERATOR_VERSION,
            "scale": scale,
            "seed": world.seed,
            "start_date": world.window.start.isoformat(),
            "end_date": end_date.isoformat(),
            "bad_records": bool(bad_records),
            "good_rows": counts,
            "faults": len(manifest),
        },
    )
    if bad_records:
        staging.write_json(exports.MANIFEST_FILE, manifest)
    files_written = staging.file_count()
    load.publish(fingerprint=print_, scale=scale, seed=world.seed, end_date=end_date, bad_records=bad_records)
    staging.publish()
    return counts, files_written


def generate(
    *,
    scale: str,
    seed: int,
    end_date: dt.date,
    sales_url: str,
    files_dir: Path,
    bad_records: bool = False,
    progress: bool = False,
) -> Summary:
    """Generate the demo sources: the sales database at ``sales_url`` and the exports in ``files_dir``.

    Replaces whatever demo data was there, atomically: the database changes in one transaction and
    the export tree is swapped in with renames, so a failure leaves the previous data intact.
    Deterministic: the same ``(scale, seed, end_date, bad_records)`` give identical tables and
    byte-identical files.
    """
    started = time.perf_counter()
    spec = _scale(scale)
    if isinstance(end_date, dt.datetime) or not isinstance(end_date, dt.date):
        raise TypeError("end_date must be a datetime.date")
    if int(seed) < 0:
        raise ValueError("seed must be >= 0")
    seed = int(seed)
    print_ = fingerprint(scale=scale, seed=seed, end_date=end_date, bad_records=bad_records)
    window = Window.ending(end_date)
    clock = _Clock()

    with _Progress(progress) as bar:
        world = _build_world(seed, spec, window, clock, bar)
        load = database.SalesLoad(sales_url)
        staging = exports.Staging(Path(files_dir), window)
        ids = Counters()
        totals = _Totals(
            line_counts={k: np.zeros(window.days, np.int64) for k in (exports.SERVICE_DIR, exports.SURVEY_DIR)}
        )
        manifest: list[faults.ManifestEntry] = []
        try:
            load.begin()
            staging.create()
            load.copy("products", world.catalogue.table)
            task = bar.phase("customers, orders, tickets, surveys", spec.chunks)
            for index in range(spec.chunks):
                with clock.phase("simulate"):
                    chunk = simulate_chunk(world, index, ids)
                write_chunk(load, staging, chunk, clock, totals)
                del chunk
                bar.advance(task)
            task = bar.phase("indexes", 1)
            with clock.phase("index"):
                load.index()
            bar.advance(task)
            if bad_records:
                task = bar.phase("bad records", 1)
                with clock.phase("faults"):
                    manifest = _inject_faults(world, load, staging, totals, ids)
                bar.advance(task)
            task = bar.phase("publish", 1)
            with clock.phase("publish"):
                counts, files_written = _publish(
                    world,
                    load,
                    staging,
                    ids,
                    totals,
                    manifest,
                    print_=print_,
                    scale=scale,
                    end_date=end_date,
                    bad_records=bad_records,
                )
            bar.advance(task)
        except BaseException:
            staging.discard()
            raise
        finally:
            load.close()

    return Summary(
        scale=scale,
        seed=seed,
        end_date=end_date,
        bad_records=bool(bad_records),
        fingerprint=print_,
        files_written=files_written,
        faults_injected=len(manifest),
        elapsed_seconds=time.perf_counter() - started,
        phase_seconds={k: round(v, 3) for k, v in clock.seconds.items()},
        **counts,
    )


def _inject_faults(
    world: World, load: database.SalesLoad, staging: exports.Staging, totals: _Totals, ids: Counters
) -> list[faults.ManifestEntry]:
    injector = faults.Injector(
        streams.stream(world.seed, streams.WHOLE_DATASET, "faults"),
        world.scale.faults_per_kind,
        staging,
        totals.line_counts,
        faults.Ids(
            customer=len(world.population),
            order=ids.order,
            order_line=ids.order_line,
            ticket=ids.ticket,
            response=ids.response,
        ),
    )
    injector.service()
    injector.survey()
    injector.sales(load, world.catalogue, world.window)
    return injector.finish()
