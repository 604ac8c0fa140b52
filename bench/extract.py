"""Benchmark: every source kind loaded as ``lens run`` loads it, against ``psql \\copy`` of the same rows.

    python bench/extract.py [--scale medium] [--seed 7] [--repeat 1]

In one run, on a throwaway embedded server (or ``LENS_BENCH_URL``'s server), with the demo sources
generated at the chosen scale, for each source kind:

- **postgres**: the *sales* database (customers, products, orders, order lines, contracts);
- **ndjson**: the helpdesk's *service* export (one file per day);
- **csv**: the *survey* tool's export (one file per day);
- **parquet**: the same survey export written as one parquet file per day (``survey_parquet``).

1. **lens**: ``extract.extract_range`` over the whole demo history in month batches with the history
   before it as a first batch — what ``lens run`` does — in a child process, so its peak RSS is the
   loader's own. Timed end to end, per source.
2. **psql \\copy**: the rows the loader wrote (its declared columns and load metadata) piped as CSV from
   ``psql \\copy (select ...) to stdout`` into ``psql \\copy ... from stdin`` into a fresh table of the raw
   table's shape (``like ... including all``): the same rows into the same kind of table by hand.
3. **an empty day**: ``extract_range`` for a day with no data, per entity batch (best of five): the
   fixed cost every daily run and every batch of a backfill pays.

Targets (issue #28): every kind >= 0.5x psql \\copy of the same rows end to end, sales >= 0.8x; peak RSS
<= 300 MB; an empty day's batch < 50 ms. Writes ``bench/results/extract-<scale>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import record
import yaml

from customer_lens import demo, extract
from customer_lens.config import environment, source_config
from customer_lens.local import warehouse

HERE = Path(__file__).resolve().parent
KINDS = {"sales": "postgres", "service": "ndjson", "survey": "csv", "survey_parquet": "parquet"}
TARGETS = {"sales": 0.8, "service": 0.5, "survey": 0.5, "survey_parquet": 0.5}
METADATA = ("_batch_id", "_interval_start", "_interval_end", "_loaded_at", "_source_file", "_source_line", "_extra")

CHILD = """
import datetime as dt, json, sys, time
from pathlib import Path
from customer_lens import extract
from customer_lens.config import source_config
source = source_config.load(Path(sys.argv[1]))[sys.argv[2]]
start, end = dt.datetime.fromisoformat(sys.argv[4]), dt.datetime.fromisoformat(sys.argv[5])
began = time.perf_counter()
results = extract.extract_range(source, start, end, step="month", history=True, warehouse_url=sys.argv[3])
seconds = time.perf_counter() - began
# VmHWM: this process's own peak (ru_maxrss would include the parent's, inherited across exec).
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({
    "seconds": seconds, "batches": len(results), "rows": sum(r.rows_loaded for r in results),
    "rejected": sum(r.rows_rejected for r in results), "peak_rss_mb": int(hwm.split()[1]) / 1024,
}))
"""


def _server(tmp: Path) -> tuple[str, warehouse.EmbeddedServer | None]:
    if os.environ.get("LENS_BENCH_URL"):
        return os.environ["LENS_BENCH_URL"], None
    server = warehouse.EmbeddedServer(tmp / "warehouse")
    server.start()
    return server.url("postgres"), server


def _fresh_db(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f"create database \"{name}\" template template0 encoding 'UTF8'")
    return warehouse.with_database(server_url, name)


def _psql() -> str:
    return warehouse.client_binary("psql")


def _parquet_copy(csv_dir: Path, target: Path) -> None:
    """The survey's day files as parquet, every column text (a survey tool's parquet export)."""
    target.mkdir()
    for path in sorted(csv_dir.glob("responses_*.csv")):
        names = path.read_text().splitlines()[0].split(",")
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, "string"), strings_can_be_null=True),
        )
        pq.write_table(table, target / path.with_suffix(".parquet").name)


def _sources_document(src_url: str, files: Path) -> dict:
    document = yaml.safe_load(source_config.default_path().read_text())
    sources = document["sources"]
    sources["sales"]["url"] = src_url
    sources["service"]["location"] = str(files / "service")
    sources["survey"]["location"] = str(files / "survey")
    parquet = json.loads(json.dumps(sources["survey"]))
    parquet |= {"format": "parquet", "location": str(files / "survey_parquet")}
    parquet["entities"]["responses"] |= {"glob": "responses_*.parquet", "file_date": "responses_%Y-%m-%d.parquet"}
    sources["survey_parquet"] = parquet
    return document


def bench_lens(config: Path, name: str, wh_url: str, start: dt.datetime, end: dt.datetime) -> dict:
    with psycopg.connect(wh_url, autocommit=True) as conn:  # every repetition loads into a fresh raw layer
        conn.execute(f"drop schema if exists raw_{name} cascade")
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(config), name, wh_url, start.isoformat(), end.isoformat()],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode:
        raise RuntimeError(f"loading {name} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def bench_psql(wh_url: str, source: source_config.Source) -> dict:
    """psql \\copy of the rows the loader wrote, as CSV, into fresh tables of the raw tables' shape."""
    psql = _psql()
    seconds, rows = 0.0, 0
    with psycopg.connect(wh_url, autocommit=True) as conn:
        conn.execute("drop schema if exists bench_copy cascade; create schema bench_copy")
        for entity in source.entities:
            raw_table = f"{source.raw_schema}.{entity.name}"
            conn.execute(f"create table bench_copy.{entity.name} (like {raw_table} including all)")
            names = ", ".join(f'"{c}"' for c in [*(c.name for c in entity.columns), *METADATA])
            began = time.perf_counter()
            producer = subprocess.Popen(
                [psql, wh_url, "-Xqc", f"\\copy (select {names} from {raw_table}) to stdout (format csv)"],
                stdout=subprocess.PIPE,
            )
            subprocess.run(
                [psql, wh_url, "-Xqc", f"\\copy bench_copy.{entity.name} ({names}) from stdin (format csv)"],
                stdin=producer.stdout,
                check=True,
            )
            producer.stdout.close()
            producer.wait()
            seconds += time.perf_counter() - began
            rows += conn.execute(f"select count(*) from bench_copy.{entity.name}").fetchone()[0]
        conn.execute("drop schema bench_copy cascade")
    return {"seconds": seconds, "rows": rows}


def empty_day_ms(source: source_config.Source, wh_url: str, day: dt.datetime) -> float:
    """Milliseconds per entity batch of a day without data (best of five)."""
    runs = []
    for _ in range(5):
        began = time.perf_counter()
        extract.extract_range(source, day, day + dt.timedelta(days=1), step="day", warehouse_url=wh_url)
        runs.append((time.perf_counter() - began) * 1000 / len(source.entities))
    return min(runs)


def _checks(name: str, m: dict) -> dict[str, dict]:
    """One source's figures against the targets: speed against psql, peak RSS, an empty day's cost."""
    lens, psql = m["lens"], m["psql_copy"]
    ratio = psql["seconds"] / lens["seconds"]  # the loader's speed as a share of psql's
    return {
        f"{name}_vs_psql_copy": {"value": ratio, "target": f">= {TARGETS[name]}", "pass": ratio >= TARGETS[name]},
        f"{name}_peak_rss_mb": {
            "value": lens["peak_rss_mb"],
            "target": "<= 300",
            "pass": lens["peak_rss_mb"] <= 300,
        },
        f"{name}_empty_day_batch_ms": {
            "value": m["empty_day_batch_ms"],
            "target": "< 50",
            "pass": m["empty_day_batch_ms"] < 50,
        },
    }


def _print_row(name: str, m: dict) -> None:
    lens, psql = m["lens"], m["psql_copy"]
    ratio = psql["seconds"] / lens["seconds"]
    print(
        f"{name:<16}{m['kind']:<9}{lens['rows']:>11,}{lens['batches']:>9}{lens['seconds']:>9.1f}"
        f"{psql['seconds']:>9.1f}{ratio:>8.2f}{TARGETS[name]:>8}{lens['peak_rss_mb']:>8.0f}"
        f"{m['empty_day_batch_ms']:>10.1f}"
    )
    if psql["rows"] != lens["rows"]:
        print(f"  (psql copied {psql['rows']:,} rows, the loader wrote {lens['rows']:,})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=sorted(demo.SCALES))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-date", default="2026-10-31")
    parser.add_argument("--repeat", type=int, default=1, help="runs per loader; the best of each is compared")
    args = parser.parse_args()
    environment.apply()

    measured: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="lens-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server_url, server = _server(tmp)
        try:
            src_url = _fresh_db(server_url, "bench_sales_src")
            wh_url = _fresh_db(server_url, "bench_warehouse")
            end_date = dt.date.fromisoformat(args.end_date)
            print(f"generating the {args.scale} demo sources ...", flush=True)
            files = tmp / "files"
            demo.generate(scale=args.scale, seed=args.seed, end_date=end_date, sales_url=src_url, files_dir=files)
            _parquet_copy(files / "survey", files / "survey_parquet")
            meta = json.loads((files / "demo_generation.json").read_text())
            start = dt.datetime.combine(dt.date.fromisoformat(meta["start_date"]), dt.time(), dt.UTC)
            end = dt.datetime.combine(end_date, dt.time(), dt.UTC) + dt.timedelta(days=1)
            config = tmp / "sources.yml"
            config.write_text(yaml.safe_dump(_sources_document(src_url, files)))
            sources = source_config.load(config)

            for name, kind in KINDS.items():
                lens_runs, psql_runs = [], []
                for repetition in range(1, args.repeat + 1):
                    print(f"{name} ({kind}) {repetition}/{args.repeat}: lens, then psql \\copy ...", flush=True)
                    lens_runs.append(bench_lens(config, name, wh_url, start, end))
                    psql_runs.append(bench_psql(wh_url, sources[name]))
                lens = min(lens_runs, key=lambda run: run["seconds"])
                psql = min(psql_runs, key=lambda run: run["seconds"])
                empty = empty_day_ms(sources[name], wh_url, end + dt.timedelta(days=30))
                measured[name] = {"kind": kind, "lens": lens, "psql_copy": psql, "empty_day_batch_ms": empty}
        finally:
            if server:
                server.stop()

    print(f"\n{args.scale} scale, whole history in month batches, best of {args.repeat}\n")
    print(
        f"{'source':<16}{'kind':<9}{'rows':>11}{'batches':>9}{'lens s':>9}{'psql s':>9}{'ratio':>8}{'target':>8}"
        f"{'RSS MB':>8}{'empty ms':>10}"
    )
    checks = {}
    for name, m in measured.items():
        checks |= _checks(name, m)
        _print_row(name, m)
    print()
    for name, check in checks.items():
        print(f"{name:<36}{check['value']:>10.2f}  target {check['target']:<7} {'PASS' if check['pass'] else 'FAIL'}")

    record.write(
        f"extract-{args.scale}",
        {"scale": args.scale, "repetitions": args.repeat, "sources": measured, "checks": checks},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
