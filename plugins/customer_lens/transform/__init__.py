"""Transformation: the dbt build of the candidate marts (``builds``: the dbt environment, in-process runs,
the inputs a build needs, pending restatements)."""
