"""Where every benchmark writes its figures: ``bench/results/<name>.json``, stamped with the time measured."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write(name: str, document: dict) -> Path:
    """Write ``document`` (plus ``measured_at``) to ``bench/results/<name>.json`` and say where."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(document | {"measured_at": dt.datetime.now(dt.UTC).isoformat()}, indent=2))
    print(f"\nwritten {out}")
    return out
