"""Defaults every Customer Lens DAG shares: owner, retries, start date, tags.

Imported at DAG parse time, so it must stay cheap: standard library and pendulum only.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

from customer_lens.guard.alerts import on_task_failure

OWNER = "customer-lens"
TAG = "customer-lens"
# A fixed, timezone-aware start: the first day the demo history can begin. Schedules are daily in UTC.
START_DATE = pendulum.datetime(2023, 1, 1, tz="UTC")
DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    # Log always; webhook / e-mail when configured (customer_lens.guard.alerts).
    "on_failure_callback": on_task_failure,
}
