"""
### Customer Lens — restate closed periods (operator action, Airflow)

Closed periods of the period marts keep the figures they were reported with; what has arrived for them
since is listed in `analytics.restatements_pending`. This DAG records a restatement from `from_month` on
in `lens_audit.restatements` (who and why), then builds the dbt project into the candidate schema, where
the period marts recompute those periods. The build's mart Assets start `lens_guard`, which accepts the
change of the restated periods (and of no earlier one) and promotes the snapshot. Same as
`lens restate --from YYYY-MM --reason ...`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from customer_lens.airflow.assets import MARTS, mart_asset
from customer_lens.airflow.dag_defaults import DEFAULT_ARGS, START_DATE, TAG
from customer_lens.airflow.transform_dags import LensDbtBuildOperator


@dag(
    dag_id="lens_restate",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[TAG, "transform", "operator-action"],
    doc_md=__doc__,
    params={
        "from_month": Param(
            "", type="string", pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="First closed period to recompute."
        ),
        "reason": Param("", type="string", minLength=3, description="Why (recorded in the audit trail)."),
    },
)
def lens_restate():
    @task
    def record(params: dict | None = None, dag_run=None) -> int:
        """Record the request: every build recomputes from that month until a baseline carries it."""
        import datetime as dt

        from airflow.sdk.exceptions import AirflowFailException

        from customer_lens.guard import audit
        from customer_lens.transform import builds

        first = dt.date.fromisoformat(f"{params['from_month']}-01")
        if first > dt.date.today():
            raise AirflowFailException(f"from_month {params['from_month']} is in the future: nothing is closed")
        schema = builds.dbt_env()["LENS_DBT_SCHEMA"]
        with audit.connect(autocommit=True) as conn:
            number = audit.record_restatement(conn, first, params["reason"], f"airflow:{dag_run.run_id}", schema)
        print(f"restatement #{number} of {schema} from {first:%Y-%m}")
        return number

    record() >> LensDbtBuildOperator(task_id="dbt_build", outlets=[mart_asset(name) for name in MARTS])


lens_restate()
