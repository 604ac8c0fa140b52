"""
### Customer Lens — promote a quarantined snapshot (override, Airflow)

When the guard blocked a snapshot and a person decided the change is real (a price list changed, a
restatement of history that was agreed), this promotes the quarantined snapshot anyway and records the
reason (`override: <reason>`) in `lens_audit.baselines` and `lens_audit.baseline_events`.
Same as `lens baseline promote --reason ... [SNAPSHOT]`. Triggered by hand.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from customer_lens.airflow.dag_defaults import DEFAULT_ARGS, START_DATE, TAG


@dag(
    dag_id="lens_baseline_override",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[TAG, "guard", "operator-action"],
    doc_md=__doc__,
    params={
        "snapshot_id": Param(None, type=["null", "string"], description="Quarantined snapshot [default: latest]."),
        "reason": Param("", type="string", minLength=3, description="Why the failed checks are acceptable."),
    },
)
def lens_baseline_override():
    @task
    def override(params: dict | None = None, dag_run=None) -> int:
        """Promote the quarantined snapshot with the recorded reason."""
        from airflow.sdk.exceptions import AirflowFailException

        from customer_lens.guard import audit, baseline

        try:
            with audit.connect(autocommit=True) as conn:
                number = baseline.override(
                    conn, params["snapshot_id"] or None, actor=f"airflow:{dag_run.run_id}", reason=params["reason"]
                )
        except baseline.GuardError as exc:  # refused (unknown, pruned, no reason): no retry
            raise AirflowFailException(str(exc)) from exc
        print(f"override: promoted as baseline #{number}")
        return number

    override()


lens_baseline_override()
