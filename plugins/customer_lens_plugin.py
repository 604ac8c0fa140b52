"""Customer Lens in the Airflow 3 UI: a "Customer Lens" entry in the navigation bar.

The page shows the baseline history, the headline KPIs of the current baseline against the previous
one and the first, the latest validation with its failures, and links to the HTML report and the
validation docs (``customer_lens.airflow.plugin_page``).

Airflow imports this file in every component (scheduler, DAG processor, triggerer, each task), so it
only declares: the FastAPI app behind the page is built the first time the API server asks for it.
"""

from __future__ import annotations

from functools import cache

from airflow.plugins_manager import AirflowPlugin

from customer_lens.airflow.plugin_page import URL_PREFIX, URL_ROUTE


@cache
def _fastapi_apps() -> list[dict]:
    from customer_lens.airflow.plugin_page.routes import create_app

    return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Customer Lens"}]


class CustomerLensPlugin(AirflowPlugin):
    """The page (a FastAPI app under ``/customer-lens``) and its navigation entry (an external view)."""

    name = "customer_lens"
    external_views = [  # noqa: RUF012 - Airflow's own class attribute, read as a list
        {
            "name": "Customer Lens",
            "href": f"{URL_PREFIX}/",
            "url_route": URL_ROUTE,
            "destination": "nav",
            "nav_top_level": True,
            "icon": f"{URL_PREFIX}/icon.svg",
        }
    ]

    @property
    def fastapi_apps(self) -> list[dict]:  # type: ignore[override]
        return _fastapi_apps()
