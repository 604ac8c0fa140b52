"""The project's own sources file pointed at a demo generation, and loading it, for tests that build dbt."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from customer_lens import extract, source_config

REPO = Path(__file__).resolve().parents[1]


def sources_document(sales_url: str, files: Path) -> dict:
    """``config/sources.yml`` as a dict, reading the demo's sales database and export folders."""
    document = yaml.safe_load((REPO / "config" / "sources.yml").read_text())
    document["sources"]["sales"]["url"] = sales_url
    for name in ("service", "survey"):
        document["sources"][name]["location"] = str(files / name)
    return document


def load(document: dict, start: dt.datetime, end: dt.datetime, wh: str, history: bool) -> None:
    """Extract every source of ``document`` for ``[start, end)``, month by month, into ``wh``."""
    for source in source_config.parse(document).values():
        extract.extract_range(source, start, end, step="month", warehouse_url=wh, history=history)
