"""
### Customer Lens — transform (dbt via Cosmos, Airflow)

Builds the dbt project (`dbt_project/`: staging, intermediate, marts, with all their tests) into
the **candidate** schema, which the guard validates before promoting it to `analytics`.

Scheduled on data: runs when the raw-layer Asset of every configured source (`x-lens://raw/sales`,
`.../service`, `.../survey` for the demo's sources file) has been updated; can also be triggered by
hand. One Cosmos `dbt build` task for the whole project (see `customer_lens.airflow.transform_dags` for why):
each model's result is logged as it finishes, returned as the task's XCom, and every mart is an Asset
updated on success.
"""

from __future__ import annotations

from airflow.sdk import dag

from customer_lens.airflow.assets import MARTS, mart_asset, raw_assets
from customer_lens.airflow.dag_defaults import DEFAULT_ARGS, START_DATE, TAG
from customer_lens.airflow.transform_dags import LensDbtBuildOperator

RAW_ASSETS = raw_assets()  # one per source of the sources file: a source you do not have is not waited for


@dag(
    dag_id="lens_transform",
    schedule=RAW_ASSETS,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[TAG, "transform", "dbt"],
    doc_md=__doc__,
)
def lens_transform():
    LensDbtBuildOperator(task_id="dbt_build", outlets=[mart_asset(name) for name in MARTS])


lens_transform()
