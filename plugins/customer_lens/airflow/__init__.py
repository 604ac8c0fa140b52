"""What the DAG files in ``dags/`` import, so that they stay thin: shared defaults (``dag_defaults``), the
Assets that chain the DAGs (``assets``), the extract DAG factory (``extract_dags``), the Cosmos transform
operator (``transform_dags``), the DAG integrity check (``dag_integrity``) and the Customer Lens page of the
Airflow UI (``plugin_page``)."""
