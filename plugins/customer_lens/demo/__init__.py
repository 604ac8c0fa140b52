"""Demo source systems for Customer Lens: a sales OLTP database and helpdesk/survey file exports.

``generate`` writes three years of synthetic but realistic history for a B2B supplier: customers,
products, orders and annual contracts in PostgreSQL; helpdesk ticket versions as daily NDJSON
files; NPS/CSAT/renewal/exit survey responses as daily CSV files. Optionally it adds a documented
catalogue of bad records (``faults``). See ``docs/demo-data.md`` for what the data shows and why.

Modules: ``scales`` (how big), ``population`` (customers, products), ``lifecycle`` (churn and
win-back), ``sales`` (orders, lines, contracts), ``service`` (tickets), ``survey`` (responses),
``phrases`` (multilingual texts), ``faults`` (bad records), ``database`` and ``exports`` (atomic
writing), ``formats`` (bytes), ``timeline`` (calendar, seasonality), ``streams`` (seeded
randomness), ``generator`` (the run).
"""

from customer_lens.demo.generator import (
    GENERATOR_VERSION,
    Summary,
    fingerprint,
    generate,
    installed_fingerprint,
)
from customer_lens.demo.scales import SCALES, Scale

__all__ = [
    "GENERATOR_VERSION",
    "SCALES",
    "Scale",
    "Summary",
    "fingerprint",
    "generate",
    "installed_fingerprint",
]
