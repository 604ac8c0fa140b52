"""The dbt project builds on tiny demo data (bad records included) with every test passing."""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg
import pytest

from customer_lens.transform import builds

MARTS = (
    "order_lines",
    "customer_episodes",
    "tickets",
    "orders",
    "customers",
    "unmatched_source_records",
    "customer_match_summary",
    "customer_segments",
    "customer_period_groups",
    "segment_migrations",
    "customer_lifetime_value",
    "guerrilla_metrics",
    "renewals_by_reason",
    "lost_customer_review",
    "complaint_trends",
    "nps_by_segment",
)


def test_full_build_runs_every_model_and_passes_every_test(dbt_warehouse) -> None:
    statuses = dbt_warehouse.full_build.node_statuses
    # Exposures are documentation: dbt reports them as no-op.
    failed = {
        node: status
        for node, status in statuses.items()
        if status not in {"success", "pass", "warn"} and not (node.startswith("exposure.") and status == "no-op")
    }
    assert not failed
    kinds = {node.split(".")[0] for node in statuses}
    assert {"model", "seed", "test", "unit_test"} <= kinds
    assert sum(node.startswith("unit_test.") for node in statuses) >= 5
    assert sum(node.startswith("test.") for node in statuses) > 300
    # Only staging/fact relationship checks may warn: they flag the bad records' unknown parents.
    warned = [node for node, status in statuses.items() if status == "warn"]
    assert all(node.startswith("test.customer_lens.relationships_") for node in warned), warned


def test_every_mart_has_rows(dbt_warehouse) -> None:
    for mart in MARTS:
        (count,) = dbt_warehouse.rows(f"select count(*) from {dbt_warehouse.full_schema}.{mart}")[0]
        assert count > 0, mart


def test_records_matching_no_customer_are_kept_with_their_reason(dbt_warehouse) -> None:
    expected = {
        ("service", "unknown_customer"): ("tickets", "unknown_email"),
        ("survey", "unknown_customer"): ("responses", {"unknown_customer_id", "unknown_email"}),
        ("sales", "order_unknown_customer"): ("orders", "unknown_customer_id"),
        ("sales", "orphan_order_line"): ("order_lines", "unknown_order_id"),
    }
    unmatched = {
        (entity, record_id): reason
        for entity, record_id, reason in dbt_warehouse.rows(
            f"select entity_name, record_id, unmatched_reason from {dbt_warehouse.full_schema}.unmatched_source_records"
        )
    }
    checked = 0
    for fault in dbt_warehouse.manifest:
        wanted = expected.get((fault["source"], fault["fault"]))
        if not wanted:
            continue
        entity, reasons = wanted
        reason = unmatched.get((entity, str(fault["key"])))
        assert reason in ({reasons} if isinstance(reasons, str) else reasons), fault
        checked += 1
    assert checked >= 9
    # ... and nothing else is unmatched: the good demo data always names known customers.
    assert len(unmatched) == checked


def test_match_summary_counts_every_record(dbt_warehouse) -> None:
    summary = dict(
        dbt_warehouse.rows(
            f"select entity_name, sum(records) from {dbt_warehouse.full_schema}.customer_match_summary "
            "group by entity_name"
        )
    )
    raw = dict(
        dbt_warehouse.rows(
            "select 'orders', count(distinct order_id) from raw_sales.orders "
            "union all select 'contracts', count(distinct contract_id) from raw_sales.contracts "
            "union all select 'order_lines', count(distinct order_line_id) from raw_sales.order_lines "
            "union all select 'tickets', count(distinct ticket_id) from raw_service.tickets "
            "union all select 'responses', count(distinct response_id) from raw_survey.responses"
        )
    )
    assert summary == raw


@dataclass(frozen=True)
class Docs:
    result: builds.DbtResult
    catalog: dict
    manifest: dict


@pytest.fixture(scope="module")
def docs(dbt_warehouse) -> Docs:
    """``dbt docs generate`` of the full build, run once: its result, catalog and manifest."""
    with dbt_warehouse.env():
        result = builds.run_dbt(["docs", "generate"], schema=dbt_warehouse.full_schema)
    target = dbt_warehouse.state_dir / "dbt" / "target"
    return Docs(
        result,
        json.loads((target / "catalog.json").read_text()),
        json.loads((target / "manifest.json").read_text()),
    )


def test_docs_generate(dbt_warehouse, docs) -> None:
    result, catalog, manifest = docs.result, docs.catalog, docs.manifest
    assert result.schema == dbt_warehouse.full_schema
    node = catalog["nodes"]["model.customer_lens.guerrilla_metrics"]
    assert {"period_type", "group_type", "revenue", "promoter_share_pct"} <= set(node["columns"])
    marts = [n for n in manifest["nodes"].values() if n["resource_type"] == "model" and "/marts/" in f"/{n['path']}"]
    # every mart is listed: those with rows after a full build, and the one empty by design then
    assert {n["name"] for n in marts} == {*MARTS, "restatements_pending"}
    undocumented = [
        (n["name"], column)
        for n in marts
        for column, spec in n["columns"].items()
        if not spec.get("description") or not spec.get("data_type")
    ]
    assert not undocumented
    assert all(n["config"]["contract"]["enforced"] for n in marts)


class _Accepted(Exception):
    """A write that should have been refused went through (raised to roll it back)."""


def test_marts_enforce_their_column_constraints(dbt_warehouse, docs) -> None:
    """The not_null and check constraints a mart's yml declares on its columns are enforced by PostgreSQL: a
    write that breaks one is refused (each tried in a transaction that is rolled back)."""
    marts = [n for n in docs.manifest["nodes"].values() if n["resource_type"] == "model" and n["name"] in MARTS]
    refused: dict[str, list[str]] = {}
    declared = 0
    with psycopg.connect(dbt_warehouse.url) as conn:
        for node in marts:
            table = f"{dbt_warehouse.full_schema}.{node['name']}"
            for column, spec in node["columns"].items():
                for constraint in spec.get("constraints") or []:
                    if constraint["type"] == "not_null":
                        value, error = "null", psycopg.errors.NotNullViolation
                    elif constraint["type"] == "check" and constraint["expression"].startswith(f"{column} >= "):
                        lowest = int(constraint["expression"].removeprefix(f"{column} >= "))
                        value, error = str(lowest - 1), psycopg.errors.CheckViolation
                    else:
                        continue
                    declared += 1
                    one_row = f"ctid = (select min(ctid) from {table})"
                    try:
                        with conn.transaction():
                            conn.execute(f"update {table} set {column} = {value} where {one_row}")
                            raise _Accepted  # rolls the write back
                    except error:
                        refused.setdefault(node["name"], []).append(column)
                    except _Accepted:
                        pass
    assert {"customers", "orders", "customer_segments"} <= set(refused)
    assert sum(len(columns) for columns in refused.values()) == declared
    assert "lifetime_revenue" in refused["customers"] and "revenue" in refused["orders"]


def test_every_model_documents_every_column_it_outputs(docs) -> None:
    """Each column of each built relation (the catalog) is described in its yml — staging and intermediate too."""
    catalog, manifest = docs.catalog, docs.manifest
    models = {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    assert {uid for uid in models if uid not in catalog["nodes"]} == set()  # every model was built
    undocumented = sorted(
        (node["name"], column.lower())
        for uid, node in models.items()
        for column in catalog["nodes"][uid]["columns"]
        if not (node["columns"].get(column.lower()) or {}).get("description")
    )
    assert undocumented == []
    assert all(node.get("description") for node in models.values())


def test_source_freshness_passes_right_after_a_load(dbt_warehouse) -> None:
    """Every source table declares freshness on its load time, and a fresh load passes it."""
    with dbt_warehouse.env():
        builds.run_dbt(["source", "freshness"], schema=dbt_warehouse.full_schema)
    target = dbt_warehouse.state_dir / "dbt" / "target"
    results = json.loads((target / "sources.json").read_text())["results"]
    manifest_sources = json.loads((target / "manifest.json").read_text())["sources"]
    assert {r["unique_id"] for r in results} == set(manifest_sources)  # no table without a freshness check
    assert {r["status"] for r in results} == {"pass"}
    assert all(0 <= r["max_loaded_at_time_ago_in_s"] < 36 * 3600 for r in results)
