"""
### Customer Lens — roll back the baseline (operator action, Airflow)

Points the `analytics` schema back at an earlier, retained baseline, in one transaction, and records who
did it and why in `lens_audit.baseline_events`. Same as `lens baseline rollback N --reason ...`.
Triggered by hand with the params below; `lens baseline list` shows the baselines that can be restored.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from customer_lens.airflow.dag_defaults import DEFAULT_ARGS, START_DATE, TAG


@dag(
    dag_id="lens_baseline_rollback",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[TAG, "guard", "operator-action"],
    doc_md=__doc__,
    params={
        "baseline_no": Param(1, type="integer", minimum=1, description="The retained baseline to return to."),
        "reason": Param("", type="string", minLength=3, description="Why (recorded in the audit trail)."),
    },
)
def lens_baseline_rollback():
    @task
    def rollback(params: dict | None = None, dag_run=None) -> int:
        """Make the chosen baseline current again."""
        from airflow.sdk.exceptions import AirflowFailException

        from customer_lens.guard import audit, baseline

        try:
            with audit.connect(autocommit=True) as conn:
                number = baseline.rollback(
                    conn, int(params["baseline_no"]), actor=f"airflow:{dag_run.run_id}", reason=params["reason"]
                )
        except baseline.GuardError as exc:  # refused (unknown, pruned, no reason): no retry
            raise AirflowFailException(str(exc)) from exc
        print(f"analytics now shows baseline #{number}")
        return number

    rollback()


lens_baseline_rollback()
