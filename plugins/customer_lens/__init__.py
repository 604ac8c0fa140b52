"""Customer Lens: the shared code that the DAGs, the tests and the ``lens`` CLI import.

Modules are named after what they do: ``settings`` (where things live), ``warehouse`` (the
embedded or external PostgreSQL), ``demo`` (the demo source systems), ``cli`` (the ``lens``
command), ``dag_integrity`` (checks every DAG file loads cleanly and cheaply).
"""

__version__ = "0.1.0"
