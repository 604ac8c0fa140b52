"""The Airflow Assets that chain the DAGs: a source's raw layer, a mart in the candidate schema.

``extract_<source>`` updates its source's raw Asset; ``lens_transform`` runs on them and updates the mart
Assets; ``lens_guard`` runs on those. Imported when DAG files are parsed, so it stays cheap: Airflow's
``Asset`` and the sources file, no Cosmos, no dbt.
"""

from __future__ import annotations

from airflow.sdk import Asset

# The marts BI reads (the BI contract); each is an Asset the build updates.
MARTS = (
    "customers",
    "customer_segments",
    "segment_migrations",
    "customer_lifetime_value",
    "complaint_trends",
    "guerrilla_metrics",
    "renewals_by_reason",
    "lost_customer_review",
    "nps_by_segment",
)


def raw_asset_uri(source_name: str) -> str:
    """URI of the Asset an extract DAG updates when a source's raw layer has a new batch."""
    return f"x-lens://raw/{source_name}"


def raw_asset(source_name: str) -> Asset:
    return Asset(name=f"raw_{source_name}", uri=raw_asset_uri(source_name))


def raw_assets() -> list[Asset]:
    """The raw-layer Asset of every source of the sources file (what the transform waits for)."""
    from customer_lens.config import source_config

    return [raw_asset(name) for name in source_config.load()]


def mart_asset(name: str) -> Asset:
    """The Asset of a mart in the candidate schema."""
    return Asset(name=f"candidate_{name}", uri=f"x-lens://candidate/{name}")
