"""The "Customer Lens" page of the Airflow UI (served by ``plugins/customer_lens_plugin.py``).

- :mod:`.queries` reads the baseline history, the KPIs and the validations from ``lens_audit``;
- :mod:`.render` turns them into one self-contained HTML page;
- :mod:`.routes` is the FastAPI app the API server mounts: the page, and the HTML report and
  validation docs under ``$LENS_STATE_DIR/reports/`` (nothing else is served).

Module names avoid standard-library names on purpose: until ``plugins/.airflowignore`` excludes this
package, Airflow's plugin loader imports every file under ``plugins/`` as a top-level module.
"""

URL_PREFIX = "/customer-lens"  # where the API server mounts the page
URL_ROUTE = "customer-lens"  # the UI shows it in a frame at /plugin/<URL_ROUTE>
