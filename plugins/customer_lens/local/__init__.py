"""Services on this machine: the embedded PostgreSQL warehouse (``warehouse``, which also resolves an
external one by URL), Airflow's CLI and a standalone stack for tests (``airflow_cli``), and ``lens airflow``,
a local Airflow with its UI, connections and login (``airflow_ui``)."""
