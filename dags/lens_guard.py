"""
### Customer Lens — snapshot guard (Great Expectations) and promotion (Airflow)

Write-audit-publish for the marts the transform built into `analytics_candidate`:

1. **freeze** the candidate marts into a new `lens_snapshot_<n>` schema;
2. **validate** it with the Great Expectations suites of `customer_lens.guard.quality` (one per mart, from the
   dbt project: defaults for every mart, business identities, drift against the current baseline);
3. **promote** it to `analytics` in one transaction if it passed — otherwise the run fails, the snapshot
   stays quarantined with its validation report (`.lens/reports/validation/<run>.html`) and the
   baseline is untouched.

Scheduled on data: runs when the transform has updated the candidate marts (their Assets); can also be
triggered by hand. Updates the Asset `x-lens://analytics/baseline` when a new baseline is promoted.
"""

from __future__ import annotations

from airflow.sdk import Asset, dag, task

from customer_lens.airflow.assets import MARTS, mart_asset
from customer_lens.airflow.dag_defaults import DEFAULT_ARGS, START_DATE, TAG

BASELINE = Asset(name="analytics_baseline", uri="x-lens://analytics/baseline")


@dag(
    dag_id="lens_guard",
    schedule=[mart_asset(name) for name in MARTS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[TAG, "guard", "great-expectations"],
    doc_md=__doc__,
)
def lens_guard():
    @task(outlets=[BASELINE])
    def validate_and_promote(dag_run=None, data_interval_start=None, data_interval_end=None) -> dict:
        """Freeze, validate and (if it passes) promote the candidate; fails with the summary if blocked."""
        from airflow.sdk.exceptions import AirflowFailException

        from customer_lens.guard import baseline

        try:
            result = baseline.guard(
                data_interval=(data_interval_start, data_interval_end),
                triggered_by=f"airflow:{dag_run.dag_id}/{dag_run.run_id}" if dag_run else "airflow",
            )
        except baseline.ValidationFailed as exc:  # a verdict, not a glitch: no retry
            raise AirflowFailException(str(exc)) from exc
        for line in result.lines():
            print(line)
        return {
            "run_id": result.run_id,
            "snapshot_id": result.snapshot_id,
            "baseline_no": result.baseline_no,
            "kpis": {k: (None if v is None else float(v)) for k, v in result.kpis.items()},
            "report": str(result.report_path) if result.report_path else None,
        }

    validate_and_promote()


lens_guard()
