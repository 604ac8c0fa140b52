"""The snapshot guard's checks: Great Expectations suites, one per mart, built in code.

What is guarded comes from the dbt project itself (:func:`load_marts` reads dbt's manifest): every
model under ``models/marts`` that is a table. Each mart gets **default checks** without anyone writing
a suite — not empty, its documented columns and their types, its primary key (the model's
``primary_key`` constraint) not null and unique — plus the rules its yml declares (:class:`DeclaredCheck`):
``accepted_values``, the value ranges and identities of its data tests (``non_negative``,
``values_between``, ``expression_is_true``, ``group_sums_match_total``) and its ``check`` constraints. Each
rule is written once, in the yml; dbt checks it as it builds, the guard again on the frozen snapshot. What
dbt cannot express is here: once a baseline exists, each mart's row count within a tolerance of the
baseline's, the headline KPIs (:data:`KPIS`) within their tolerances, closed past months unchanged
(:data:`CLOSED_PERIOD_CHECKS`), no segment vanishing (:data:`VANISHING_CHECKS`).

Every expectation runs as SQL inside PostgreSQL (GX's SQLAlchemy execution engine; the hand-written
checks are ``UnexpectedRowsExpectation`` queries). Baseline figures are read from the baseline
snapshot at run time and written into the suites (:class:`Baseline`); without a baseline only the
absolute checks run. Tolerances come from :class:`GuardConfig` (``config/guard.yml``).

Great Expectations is imported inside the functions: DAG files import this package.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from customer_lens.config import settings as settings_mod
from customer_lens.local import warehouse
from customer_lens.local.warehouse import Connection

log = logging.getLogger(__name__)


# --- what is guarded: the marts, from dbt's manifest ------------------------------------------------


@dataclass(frozen=True)
class DeclaredCheck:
    """A rule of the mart's yml the guard holds the snapshot to: a value range of ``column``, or a query over
    ``{batch}`` whose rows are violations."""

    description: str
    column: str | None = None
    low: float | None = None
    high: float | None = None
    unexpected_rows: str | None = None


@dataclass(frozen=True)
class MartSpec:
    """One mart as the dbt project documents it."""

    name: str
    columns: dict[str, str]  # column -> data type, as in the yml (contract)
    primary_key: tuple[str, ...]
    pii_columns: frozenset[str] = frozenset()
    accepted_values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # ``meta: {guard: {allow_empty: true}}`` on the model: an empty table is a valid state.
    allow_empty: bool = False
    # ``meta: {guard: {requires: [service.tickets]}}``: the data contract's entities whose records it
    # shows; without one of them configured it is empty by design ("not applicable").
    requires: tuple[str, ...] = ()
    # Why it may be empty in this installation: the required inputs no source gives (customer_lens.config.contract).
    not_applicable: str | None = None
    # ``meta: {guard: {row_count_drift: false}}``: its row count is no figure to hold against the baseline's
    # (restatements_pending: empty on most days).
    row_count_drift: bool = True
    # The value ranges and identities its yml declares (data tests and check constraints).
    checks: tuple[DeclaredCheck, ...] = ()

    @property
    def public_columns(self) -> list[str]:
        """The columns BI may see (everything but the ones marked ``meta: {pii: true}``)."""
        return [c for c in self.columns if c not in self.pii_columns]


def manifest_path(cfg: settings_mod.Settings | None = None) -> Path:
    cfg = cfg or settings_mod.load()
    return cfg.state_dir / "dbt" / "target" / "manifest.json"


def load_marts(cfg: settings_mod.Settings | None = None, *, parse: bool = True) -> list[MartSpec]:
    """The marts of the dbt project (``models/marts/**``, materialized as tables), sorted by name.

    Reads the manifest of the last dbt command; ``parse`` runs ``dbt parse`` first (partial parsing
    makes it cheap) so that a mart an analyst just added is guarded without a build in between.
    """
    cfg = cfg or settings_mod.load()
    if parse:
        from customer_lens.transform import builds

        builds.run_dbt(["parse", "--quiet"])
    manifest = json.loads(manifest_path(cfg).read_text())
    from customer_lens.config import contract, source_config

    return mark_not_applicable(marts_from_manifest(manifest), contract.absent(source_config.load(cfg=cfg)))


def mark_not_applicable(marts: list[MartSpec], absent: list[str]) -> list[MartSpec]:
    """A mart that requires an input no source gives may be empty: "not applicable", not a failure."""
    result = []
    for mart in marts:
        missing = sorted(set(mart.requires) & set(absent))
        if missing:
            reason = f"no {', '.join(missing)} configured"
            mart = replace(mart, allow_empty=True, not_applicable=reason)
        result.append(mart)
    return result


def _rows_where_not(condition: str, *, null_passes: bool) -> str:
    """The rows of the batch that break ``condition`` (a check constraint lets null pass, a test does not)."""
    broken = f"not ({condition})" if null_passes else f"not coalesce(({condition}), false)"
    return f"select * from {{batch}} where {broken} limit 20"


def check_from_test(test: dict[str, Any]) -> DeclaredCheck | None:
    """The guard's form of one of the project's generic data tests (None: not one the guard repeats)."""
    meta = test.get("test_metadata") or {}
    kwargs = meta.get("kwargs") or {}
    column = test.get("column_name") or kwargs.get("column_name")
    name = meta.get("name")
    if name == "non_negative":
        return DeclaredCheck(f"{column} >= 0", column, low=0)
    if name == "values_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        return DeclaredCheck(f"{column} between {low} and {high}", column, low=low, high=high)
    if name == "expression_is_true":
        expression = kwargs["expression"]
        return DeclaredCheck(expression, unexpected_rows=_rows_where_not(expression, null_passes=False))
    if name == "group_sums_match_total":
        parts = ", ".join(kwargs["partition_by"])
        group, total = kwargs["group_column"], kwargs.get("total_group", "all")
        query = (
            f"select {parts}, {group}, sum({column}) as group_sum, max(total) as total from ("
            f"select {parts}, {group}, {column}, sum({column}) filter (where {group} = '{total}') "
            f"over (partition by {parts}) as total from {{batch}}) as rows_with_total "
            f"where {group} <> '{total}' group by {parts}, {group} "
            f"having abs(coalesce(sum({column}), 0) - coalesce(max(total), 0)) > 0.01"
        )
        return DeclaredCheck(f"the {group} groups' {column} add up to the {total} row", unexpected_rows=query)
    return None


def _declared_checks(node: dict[str, Any], tests: list[dict[str, Any]]) -> tuple[DeclaredCheck, ...]:
    """The checks of a mart's yml: its data tests the guard repeats and its ``check`` constraints."""
    checks = [check for test in tests if (check := check_from_test(test)) is not None]
    constraints = list(node.get("constraints") or [])
    constraints += [c for col in node["columns"].values() for c in col.get("constraints") or []]
    for constraint in constraints:
        if constraint.get("type") == "check" and constraint.get("expression"):
            expression = constraint["expression"]
            checks.append(DeclaredCheck(expression, unexpected_rows=_rows_where_not(expression, null_passes=True)))
    return tuple(checks)


def _primary_key(node: dict[str, Any]) -> tuple[str, ...]:
    """The model's ``primary_key`` constraint (model-level, or on its columns)."""
    for constraint in node.get("constraints") or []:
        if constraint.get("type") == "primary_key" and constraint.get("columns"):
            return tuple(constraint["columns"])
    return tuple(
        name
        for name, col in node["columns"].items()
        for constraint in col.get("constraints") or []
        if constraint["type"] == "primary_key"
    )


def _accepted_values(tests: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    accepted: dict[str, tuple[str, ...]] = {}
    for test in tests:
        meta = test.get("test_metadata") or {}
        if meta.get("name") == "accepted_values" and test.get("column_name"):
            values = (meta.get("kwargs") or {}).get("values") or []
            accepted[test["column_name"]] = tuple(str(v) for v in values)
    return accepted


def _mart_spec(node: dict[str, Any], tests: list[dict[str, Any]]) -> MartSpec:
    guard_meta = (node.get("config", {}).get("meta") or node.get("meta") or {}).get("guard") or {}
    return MartSpec(
        node["name"],
        columns={name: (col.get("data_type") or "").lower() for name, col in node["columns"].items()},
        primary_key=_primary_key(node),
        pii_columns=frozenset(n for n, col in node["columns"].items() if (col.get("meta") or {}).get("pii")),
        accepted_values=_accepted_values(tests),
        allow_empty=bool(guard_meta.get("allow_empty")),
        requires=tuple(guard_meta.get("requires") or ()),
        row_count_drift=bool(guard_meta.get("row_count_drift", True)),
        checks=_declared_checks(node, tests),
    )


def marts_from_manifest(manifest: dict[str, Any]) -> list[MartSpec]:
    """Every table (or incremental) model under ``models/marts``, as the guard sees it."""
    tests_by_model: dict[str, list[dict[str, Any]]] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "test" and node.get("attached_node"):
            tests_by_model.setdefault(node["attached_node"], []).append(node)
    marts = [
        _mart_spec(node, tests_by_model.get(uid, []))
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model"
        and "marts" in node["fqn"][1:-1]
        and node["config"].get("materialized") in ("table", "incremental")
    ]
    return sorted(marts, key=lambda m: m.name)


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuardConfig:
    """Tolerances of the drift checks and how many baselines are kept (``config/guard.yml``)."""

    # A mart's row count may differ from the baseline's by this share (either way).
    row_count_tolerance: float = 0.25
    # Per headline KPI: relative tolerance (share of the baseline value), or absolute points for
    # KPIs in :data:`ABSOLUTE_KPIS`.
    kpi_tolerance: dict[str, float] = field(
        default_factory=lambda: {
            "customers": 0.10,
            "active_customers": 0.20,
            "lost_customers": 0.25,
            "revenue": 0.10,
            "gross_margin": 0.15,
            "nps": 10.0,
            "complaint_rate": 0.50,
        }
    )
    # Closed past months may be restated by at most this share of the baseline's figure.
    closed_period_tolerance: float = 0.005
    # Promoted baselines kept for rollback (the current one included); older ones are pruned.
    baselines_retained: int = 5
    # Quarantined (failed) snapshots kept for inspection.
    quarantine_retained: int = 3
    # A mart without a primary key is guarded without key checks, and the summary says so; true: it blocks.
    require_primary_keys: bool = False
    # Promotion under readers: after a few seconds of trying between reads, it queues for the analytics
    # views (new reads wait behind it) for at most this many seconds per attempt, three attempts...
    promotion_lock_timeout: float = 10.0
    # ...and, when true, cancels the queries that still hold the views after the first attempt (a BI
    # tool re-runs a cancelled query); false: it waits them out, up to the three attempts.
    cancel_blocking_readers: bool = False

    @classmethod
    def load(cls, cfg: settings_mod.Settings | None = None) -> GuardConfig:
        import yaml

        cfg = cfg or settings_mod.load()
        path = Path(os.environ.get("LENS_GUARD_CONFIG") or cfg.home / "config" / "guard.yml")
        if not path.exists():
            return cls()
        data = yaml.safe_load(path.read_text()) or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
        if "kpi_tolerance" in data:
            data["kpi_tolerance"] = cls().kpi_tolerance | dict(data["kpi_tolerance"])
        return cls(**data)


# --- the baseline figures the drift checks compare against -----------------------------------------

# Headline KPIs: name -> (mart, query over it). ``{table}`` is the mart (a GX batch or schema.table).
KPIS: dict[str, tuple[str, str]] = {
    "customers": ("customers", "select count(*) from {table}"),
    "active_customers": ("customers", "select count(*) filter (where customer_status = 'active') from {table}"),
    "lost_customers": ("customers", "select count(*) filter (where customer_status = 'lost') from {table}"),
    "revenue": ("customers", "select sum(lifetime_revenue) from {table}"),
    "gross_margin": ("customers", "select sum(lifetime_gross_margin) from {table}"),
    # NPS of the last 12 months of answers, -100..100.
    "nps": (
        "nps_by_segment",
        "select round(100.0 * (sum(promoters) - sum(detractors)) / nullif(sum(nps_responses), 0), 2) from {table} "
        "where month_start_date > (select max(month_start_date) from {table}) - interval '12 months'",
    ),
    # Complaints of the last 90 days per 100 customers not lost; none (not 0) without any ticket at all,
    # as when no service source is configured.
    "complaint_rate": (
        "customers",
        "select case when bool_or(lifetime_tickets > 0) then round(100.0 * sum(complaints_last_90_days) "
        "/ nullif(count(*) filter (where customer_status <> 'lost'), 0), 2) end from {table}",
    ),
}
ABSOLUTE_KPIS = frozenset({"nps"})

# Closed past months must not change, unless `lens restate` asked for it from a period on:
# mart -> (period key columns, period end column, filter of closed detail, figures).
CLOSED_PERIOD_CHECKS: dict[str, tuple[tuple[str, ...], str, str, tuple[str, ...]]] = {
    "guerrilla_metrics": (
        ("period_type", "period_start_date"),
        "period_end_date",
        "group_type = 'all' and is_complete_period",
        ("orders", "revenue", "new_customers", "renewals", "referrals"),
    ),
    "nps_by_segment": (
        ("month_start_date",),
        "month_end_date",
        "is_complete_month",
        ("nps_responses", "promoters", "detractors"),
    ),
    "complaint_trends": (
        ("month_start_date",),
        "month_end_date",
        "ticket_category = 'all' and ticket_channel = 'all' and rfm_segment = 'all' and is_complete_month",
        ("complaints",),
    ),
    # every snapshot but the running one is a period's end
    "customer_segments": (
        ("snapshot_date",),
        "snapshot_date",
        "not is_latest_snapshot",
        ("frequency_orders", "monetary_revenue"),
    ),
}

# Values present in the baseline's current snapshot that must still be present: mart -> (column, filter).
VANISHING_CHECKS: dict[str, list[tuple[str, str]]] = {
    "customer_segments": [("rfm_segment", "is_latest_snapshot"), ("value_tier", "is_latest_snapshot")],
    "guerrilla_metrics": [("group_value", "group_type <> 'all'")],
}


@dataclass
class Baseline:
    """Figures of the current baseline, read at run time (None: no baseline yet)."""

    baseline_no: int
    schema: str
    row_counts: dict[str, int]
    kpis: dict[str, Decimal | None]
    present_values: dict[tuple[str, str], list[str]]  # (mart, column) -> values


def compute_kpis(conn: Connection, schema: str) -> dict[str, Decimal | None]:
    """The headline KPIs of the marts in ``schema``."""
    from psycopg import sql

    values: dict[str, Decimal | None] = {}
    for kpi, (mart, query) in KPIS.items():
        table = sql.Identifier(schema, mart).as_string(conn)
        values[kpi] = warehouse.scalar(conn.execute(query.format(table=table)))
    return values


def read_baseline(conn: Connection, baseline_no: int, schema: str, marts: list[MartSpec]) -> Baseline:
    from psycopg import sql

    names = {m.name for m in marts}
    existing = {
        r[0]
        for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = %s", (schema,)
        ).fetchall()
    }
    counts = {
        m: warehouse.scalar(conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, m))))
        for m in sorted(names & existing)
    }
    present = {}
    for mart, checks in VANISHING_CHECKS.items():
        if mart not in existing:
            continue
        for column, where in checks:
            rows = conn.execute(
                sql.SQL("select distinct {c}::text from {t} where {c} is not null and ({w}) order by 1").format(
                    c=sql.Identifier(column), t=sql.Identifier(schema, mart), w=sql.SQL(where)
                )
            ).fetchall()
            present[(mart, column)] = [r[0] for r in rows]
    return Baseline(baseline_no, schema, counts, compute_kpis(conn, schema), present)


# --- the suites --------------------------------------------------------------------------------------

# GX's names for the PostgreSQL types of the contracts (SQLAlchemy's reflected type class names).
_GX_TYPES = {
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "text": "TEXT",
    "date": "DATE",
    "boolean": "BOOLEAN",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
    "timestamp": "TIMESTAMP",
    "double precision": "DOUBLE_PRECISION",
}


def _gx_type(data_type: str) -> str | None:
    """The type name GX reports for a contract's data type (it compares them as text)."""
    if data_type.startswith("numeric"):
        precision = data_type.removeprefix("numeric").strip("() ")
        return f"NUMERIC({', '.join(p.strip() for p in precision.split(','))})" if precision else "NUMERIC"
    return _GX_TYPES.get(data_type)


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float | Decimal):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _tag(check: str, **details: Any) -> dict[str, Any]:
    """The ``meta`` of an expectation: which kind of check it is (for summaries), and its details."""
    return {"lens_check": check, **details}


def _default_expectations(mart: MartSpec) -> list[Any]:
    """Not empty, the documented columns and types, the primary key, the accepted values."""
    import great_expectations.expectations as gxe

    exps: list[Any] = []
    if not mart.allow_empty:
        exps.append(gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=_tag("not empty")))
    exps.append(gxe.ExpectTableColumnsToMatchSet(column_set=list(mart.columns), exact_match=True, meta=_tag("columns")))
    for column, data_type in mart.columns.items():
        gx_type = _gx_type(data_type)
        if gx_type:
            exps.append(gxe.ExpectColumnValuesToBeOfType(column=column, type_=gx_type, meta=_tag("type")))
    for column in mart.primary_key:
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=column, meta=_tag("key not null")))
    if len(mart.primary_key) == 1:
        exps.append(gxe.ExpectColumnValuesToBeUnique(column=mart.primary_key[0], meta=_tag("key unique")))
    elif mart.primary_key:
        key = ", ".join(mart.primary_key)
        exps.append(
            gxe.UnexpectedRowsExpectation(
                unexpected_rows_query=(
                    f"select {key}, count(*) as copies from {{batch}} group by {key} having count(*) > 1"
                ),
                description=f"key ({key}) unique",
                meta=_tag("key unique", columns=list(mart.primary_key)),
            )
        )
    for column, values in mart.accepted_values.items():
        if any("{{" in v for v in values):  # values from a dbt var: the dbt test itself covers them
            continue
        exps.append(
            gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(values), meta=_tag("accepted values"))
        )
    return exps


def _declared_expectations(mart: MartSpec) -> list[Any]:
    """The value ranges and identities the mart's yml declares."""
    import great_expectations.expectations as gxe

    exps: list[Any] = []
    for check in mart.checks:
        if check.unexpected_rows:
            exps.append(
                gxe.UnexpectedRowsExpectation(
                    unexpected_rows_query=check.unexpected_rows, description=check.description, meta=_tag("identity")
                )
            )
        elif check.column in mart.columns:
            exps.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=check.column, min_value=check.low, max_value=check.high, meta=_tag("range")
                )
            )
    return exps


def _kpi_expectations(mart: MartSpec, config: GuardConfig, baseline: Baseline) -> list[Any]:
    """The headline KPIs computed from this mart, each within its tolerance of the baseline's value."""
    import great_expectations.expectations as gxe

    exps: list[Any] = []
    for kpi, (kpi_mart, query) in KPIS.items():
        kpi_value = baseline.kpis.get(kpi)
        if kpi_mart != mart.name or kpi_value is None:
            continue
        base_value = Decimal(kpi_value)
        tol_value = Decimal(str(config.kpi_tolerance.get(kpi, 0.1)))
        margin = tol_value if kpi in ABSOLUTE_KPIS else abs(base_value) * tol_value
        low, high = base_value - margin, base_value + margin
        exps.append(
            gxe.UnexpectedRowsExpectation(
                unexpected_rows_query=(
                    f"select '{kpi}' as kpi, value from ({query.format(table='{batch}')}) k(value) "
                    f"where value is null or value not between {low} and {high}"
                ),
                description=f"KPI {kpi} within {tol_value}{' points' if kpi in ABSOLUTE_KPIS else ' (share)'} "
                f"of baseline #{baseline.baseline_no} ({base_value})",
                meta=_tag("kpi drift", kpi=kpi, baseline=str(base_value), low=str(low), high=str(high)),
            )
        )
    return exps


def _closed_period_expectation(
    mart: MartSpec, config: GuardConfig, baseline: Baseline, baseline_schema: str, restated_from: dt.date | None
) -> Any:
    """Closed past periods of a period mart unchanged against the baseline, except the restated ones."""
    import great_expectations.expectations as gxe

    keys, end_column, where, figures = CLOSED_PERIOD_CHECKS[mart.name]
    if restated_from is not None:  # asked for: the periods from it on may change
        where += f" and {end_column} < date '{restated_from.isoformat()}'"
    key_list = ", ".join(keys)
    sums = ", ".join(f"sum({f}) as {f}" for f in figures)
    tol = config.closed_period_tolerance
    differs = " or ".join(f"abs(coalesce(c.{f}, 0) - b.{f}) > greatest({tol} * abs(b.{f}), 0.01)" for f in figures)
    base_table = f'"{baseline_schema}"."{mart.name}"'
    restated = f", restated from {restated_from:%Y-%m}" if restated_from else ""
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            f"with b as (select {key_list}, {sums} from {base_table} where {where} group by {key_list}), "
            f"c as (select {key_list}, {sums} from {{batch}} as candidate_rows where {where} "
            f"group by {key_list}) "
            f"select b.*, {', '.join(f'c.{f} as candidate_{f}' for f in figures)} "
            f"from b left join c using ({key_list}) where c.{keys[0]} is null or {differs}"
        ),
        description=f"closed past periods unchanged (within {tol:.1%}) vs baseline #{baseline.baseline_no}{restated}",
        meta=_tag("closed periods"),
    )


def _vanishing_expectations(mart: MartSpec, baseline: Baseline) -> list[Any]:
    """No value of the baseline's current snapshot (a segment, a group) vanishes."""
    import great_expectations.expectations as gxe

    exps: list[Any] = []
    for column, where in VANISHING_CHECKS.get(mart.name, []):
        values = baseline.present_values.get((mart.name, column))
        if not values:
            continue
        listed = ", ".join(f"({_literal(v)})" for v in values)
        exps.append(
            gxe.UnexpectedRowsExpectation(
                unexpected_rows_query=(
                    f"select v.value as vanished_{column} from (values {listed}) as v(value) where v.value not in "
                    f"(select {column}::text from {{batch}} where {column} is not null and ({where}))"
                ),
                description=f"no {column} of baseline #{baseline.baseline_no} vanishes",
                meta=_tag("vanished values", column=column),
            )
        )
    return exps


def _drift_expectations(
    mart: MartSpec,
    config: GuardConfig,
    baseline: Baseline,
    baseline_schema: str | None,
    restated_from: dt.date | None,
) -> list[Any]:
    """The mart held against the baseline (which has it): row count, KPIs, closed periods, vanishing values."""
    import great_expectations.expectations as gxe

    base = baseline.row_counts[mart.name]
    tol = config.row_count_tolerance
    exps: list[Any] = [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=int(base * (1 - tol)),
            max_value=int(base * (1 + tol)) + 1,
            meta=_tag("row count drift", baseline=base, tolerance=tol),
        )
    ]
    exps += _kpi_expectations(mart, config, baseline)
    if mart.name in CLOSED_PERIOD_CHECKS and baseline_schema:
        exps.append(_closed_period_expectation(mart, config, baseline, baseline_schema, restated_from))
    exps += _vanishing_expectations(mart, baseline)
    return exps


def build_suite(
    mart: MartSpec,
    *,
    config: GuardConfig,
    baseline: Baseline | None,
    baseline_schema: str | None = None,
    restated_from: dt.date | None = None,
) -> Any:
    """The GX ``ExpectationSuite`` of one mart: default checks, the yml's rules, drift vs baseline."""
    import great_expectations as gx

    exps = _default_expectations(mart) + _declared_expectations(mart)
    if baseline is not None and mart.row_count_drift and mart.name in baseline.row_counts:
        exps += _drift_expectations(mart, config, baseline, baseline_schema, restated_from)
    suite = gx.ExpectationSuite(name=f"lens_{mart.name}")
    for exp in exps:
        suite.add_expectation(exp)
    return suite


# --- running them ------------------------------------------------------------------------------------


@dataclass
class Failure:
    mart: str
    expectation: str
    column: str | None
    observed: str
    expected: str

    def line(self) -> str:
        where = f"{self.mart}.{self.column}" if self.column else self.mart
        return f"{where}: {self.expectation} — observed {self.observed}; expected {self.expected}"


@dataclass
class ValidationOutcome:
    passed: bool
    evaluated: int
    failures: list[Failure]
    started_at: dt.datetime
    finished_at: dt.datetime
    per_mart: dict[str, tuple[int, int]]  # mart -> (evaluated, failed)
    results: list[dict[str, Any]]  # every expectation's outcome (for the report)

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def summary(self, limit: int = 20, not_applicable: dict[str, str] | None = None) -> str:
        if self.passed:
            text = f"passed: {self.evaluated} expectations on {len(self.per_mart)} marts"
            if not_applicable:
                text += "; may be empty: " + "; ".join(
                    f"{', '.join(sorted(m for m, r in not_applicable.items() if r == reason))} ({reason})"
                    for reason in sorted(set(not_applicable.values()))
                )
            return text
        lines = [f"FAILED: {len(self.failures)} of {self.evaluated} expectations"]
        lines += [f"  - {f.line()}" for f in self.failures[:limit]]
        if len(self.failures) > limit:
            lines.append(f"  ... and {len(self.failures) - limit} more (see the report)")
        return "\n".join(lines)


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(result: Any) -> tuple[str, str | None, str, str]:
    """(expectation, column, observed, expected) of one GX validation result."""
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    meta = config.meta or {}
    column = kwargs.get("column") or (",".join(meta["columns"]) if meta.get("columns") else None)
    res = result.result or {}
    if config.type == "unexpected_rows_expectation":
        observed = f"{res.get('observed_value')}: {_short(res.get('details', {}).get('unexpected_rows', [])[:5])}"
        expected = "no rows"
    elif "unexpected_count" in res:
        observed = f"{res.get('unexpected_count')} rows ({res.get('unexpected_percent') or 0:.2f}%), e.g. " + _short(
            res.get("partial_unexpected_list", [])[:5]
        )
        bounds = {k: kwargs[k] for k in ("min_value", "max_value", "value_set", "type_") if k in kwargs}
        expected = _short(bounds) if bounds else "none"
    else:
        observed = _short(res.get("observed_value"))
        bounds = {k: v for k, v in kwargs.items() if k not in ("batch_id", "column")}
        expected = _short(bounds)
    check = meta.get("lens_check")
    label = f"{config.type}" + (f" [{check}]" if check else "")
    if config.description:
        label += f" ({config.description})"
    return label, column, observed, expected


def validate(
    url: str,
    schema: str,
    marts: list[MartSpec],
    *,
    config: GuardConfig,
    baseline: Baseline | None,
    restated_from: dt.date | None = None,
) -> ValidationOutcome:
    """Run every mart's suite against the tables in ``schema``; nothing is written to the database."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    # This module sets its own logger to INFO at import ("Created temporary directory ... docs site").
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)

    started = dt.datetime.now(dt.UTC)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_postgres(name="lens_snapshot", connection_string=_sqlalchemy_url(url))
    definitions = []
    for mart in marts:
        asset = source.add_table_asset(name=mart.name, table_name=mart.name, schema_name=schema)
        batch = asset.add_batch_definition_whole_table(name=f"{mart.name}_whole")
        suite = context.suites.add(
            build_suite(
                mart,
                config=config,
                baseline=baseline,
                baseline_schema=baseline.schema if baseline else None,
                restated_from=restated_from,
            )
        )
        definitions.append(
            context.validation_definitions.add(gx.ValidationDefinition(name=mart.name, data=batch, suite=suite))
        )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="lens_snapshot_guard",
            validation_definitions=definitions,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
        )
    )
    result = checkpoint.run()
    failures: list[Failure] = []
    per_mart: dict[str, tuple[int, int]] = {}
    rows: list[dict[str, Any]] = []
    evaluated = 0
    for run_result in result.run_results.values():
        mart_name = run_result.suite_name.removeprefix("lens_")
        failed = 0
        for r in run_result.results:
            evaluated += 1
            label, column, observed, expected = _describe(r)
            rows.append(
                {
                    "mart": mart_name,
                    "expectation": label,
                    "column": column,
                    "success": bool(r.success),
                    "observed": observed,
                    "expected": expected,
                }
            )
            if not r.success:
                failed += 1
                failures.append(Failure(mart_name, label, column, observed, expected))
        per_mart[mart_name] = (len(run_result.results), failed)
    return ValidationOutcome(
        passed=not failures and bool(result.success),
        evaluated=evaluated,
        failures=failures,
        started_at=started,
        finished_at=dt.datetime.now(dt.UTC),
        per_mart=per_mart,
        results=rows,
    )


def _sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url
