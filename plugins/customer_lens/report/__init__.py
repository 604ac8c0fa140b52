"""The Customer Lens report: one self-contained HTML file drawn from the current baseline.

``lens report`` (and the end of ``lens run``) calls :func:`render`. The report reads only what BI reads —
the ``analytics`` views of the current baseline (no PII columns: customers appear by ``customer_id``),
``analytics.baseline_kpis`` and the ``lens_audit`` tables — and shows:

1. segment sizes and value (RFM segments, value tiers, segment sizes over time);
2. segment migrations between the last two snapshots;
3. complaint trends per category, month over month and year over year;
4. the five guerrilla metrics per customer group over time, and why customers renew;
5. NPS and CSAT by segment;
6. the lost-customer review: the ten most valuable customers lost in the last complete month;
7. baseline history: every KPI against the previous and the first baseline;
8. the latest validation result.

Every figure is aggregated in PostgreSQL; Python only reshapes a few hundred rows at most. A section whose
views are missing or empty says "no data yet" instead of failing, and a report written before the first
baseline says so at the top. Charts are Plotly figures; plotly.js is inlined once, so the file opens
offline (no CDN, no request leaves the file).

- :mod:`.queries` is the SQL against the baseline (plain rows);
- :mod:`.sections` reshapes each section's rows into notes, tables and charts (and the header);
- :mod:`.charts` draws the Plotly figures (colours, the template, a builder per chart);
- :mod:`.formatting` writes numbers, dates, KPIs and codes; :mod:`.blocks` is what a section is made of;
- :mod:`.document` reads every section in one transaction and writes the file from
  ``templates/report.html.j2``.

Plotly and Jinja are imported inside functions: Airflow DAG files import this package.
"""

from customer_lens.report.document import SECTIONS, ReportError, default_path, render

__all__ = ["SECTIONS", "ReportError", "default_path", "render"]
