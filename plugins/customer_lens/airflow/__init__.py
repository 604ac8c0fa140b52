"""What the DAG files in ``dags/`` import, so that they stay thin: shared defaults (``dag_defaults``), the
extract DAG factory (``extract_dags``), the Cosmos transform operator and the mart assets
(``transform_dags``), the DAG integrity check (``dag_integrity``) and the Customer Lens page of the
Airflow UI (``plugin_page``)."""
