"""
### Customer Lens — demo source systems

Builds the three demo source systems that the extraction DAGs read, exactly as
`lens demo-data` does: the **sales** OLTP database (`sales_src`), the **service** helpdesk
export (one NDJSON file of ticket versions per day) and the **survey** export (one CSV per day).

Triggered by hand. Idempotent: when data with the same scale, seed, end date and fault setting is
already installed, the run changes nothing. With *bad_records* on, a documented catalogue of faults
is injected (see `docs/demo-data.md`).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from customer_lens.airflow.dag_defaults import DEFAULT_ARGS, START_DATE, TAG


@dag(
    dag_id="lens_demo_sources",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[TAG, "demo"],
    doc_md=__doc__,
    params={
        "scale": Param("small", enum=["tiny", "small", "medium", "large"], description="Demo data size."),
        "seed": Param(42, type="integer", description="Same seed, same data."),
        "end_date": Param(None, type=["null", "string"], format="date", description="Last day of history."),
        "bad_records": Param(False, type="boolean", description="Inject the documented fault catalogue."),
    },
)
def lens_demo_sources():
    @task
    def build_demo_sources(params: dict | None = None) -> dict:
        """Start the warehouse if needed and generate the demo sources (no-op if already there)."""
        import datetime as dt

        from customer_lens import pipeline
        from customer_lens.local import warehouse

        warehouse.ensure_running()
        state = pipeline.ensure_demo_data(
            scale=params["scale"],
            seed=params["seed"],
            end_date=dt.date.fromisoformat(params["end_date"]) if params["end_date"] else None,
            bad_records=params["bad_records"],
        )
        print(state)
        return {"generated": state.generated, "fingerprint": state.fingerprint, "end_date": str(state.end_date)}

    build_demo_sources()


lens_demo_sources()
