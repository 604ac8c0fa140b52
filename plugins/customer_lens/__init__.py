"""Customer Lens: the shared code that the DAGs, the tests and the ``lens`` CLI import.

One folder per stage of the pipeline, in the order data flows through it:

- ``config``: where things live (``settings``, ``environment``), the sources file (``source_config``) and
  the data contract (``contract``);
- ``demo``: the demo source systems (a sales database, helpdesk and survey exports);
- ``extract``: each source entity per data interval into the raw layer (``raw``); ``run`` picks the kind,
  ``batch`` is what the kinds share;
- ``transform``: the dbt build of the candidate marts (``builds``);
- ``guard``: freeze, validate with Great Expectations (``quality``), promote or quarantine (``baseline``),
  the ``lens_audit`` history (``audit``), ``alerts``;
- ``report``: the offline HTML report of a baseline (``queries``, ``sections``, ``charts``, ``document``);
- ``airflow``: what the DAG files use (DAG factories, shared defaults, assets, the integrity check, the
  Customer Lens page);
- ``local``: services on this machine (the embedded warehouse, Airflow's CLI, a local Airflow with its UI).

Beside them: ``cli`` (the ``lens`` command), ``pipeline`` (the whole job ``lens run`` does), ``roles`` (the
warehouse roles and their privileges) and ``progress`` (progress on the terminal).
"""

__version__ = "0.1.0"
