"""The guard: a freshly built candidate becomes the baseline only if it passes.

``baseline`` freezes the candidate into a snapshot schema, validates it and promotes or quarantines it;
``quality`` builds the Great Expectations suites (from the dbt manifest and the baseline) and runs them;
``audit`` keeps the ``lens_audit`` history (builds, snapshots, restatements); ``alerts`` tells a human.
"""
