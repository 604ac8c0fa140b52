"""Benchmark: how fast the demo data generator writes, and how much memory it needs.

    python bench/generate.py [--scale medium] [--seed 7] [--end-date 2026-10-31] [--bad-records]

Generates the demo sources at the chosen scale into a throwaway embedded PostgreSQL server (or,
when ``LENS_BENCH_URL`` is set, into a fresh database ``lens_bench_generate`` on that server) and
a temporary export directory, then prints the rows per entity, rows/s per entity and overall
(rows over the whole elapsed time: the phases run interleaved, chunk by chunk), the time spent
per phase, and the peak RSS of this process (``ru_maxrss``; the PostgreSQL server's own memory is
not included). The figures are also written to ``bench/results/generate-<scale>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from customer_lens import demo
from customer_lens.config import environment
from customer_lens.local import warehouse

HERE = Path(__file__).resolve().parent
DATABASE = "lens_bench_generate"
ENTITIES = (
    "customers", "products", "orders", "order_lines", "contracts", "tickets", "ticket_versions", "survey_responses",
)  # fmt: skip
# Entities that are rows somewhere (tickets are counted through their versions).
WRITTEN = ("customers", "products", "orders", "order_lines", "contracts", "ticket_versions", "survey_responses")


def _fresh_database(server_url: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(DATABASE)))
        conn.execute(sql.SQL("create database {} template template0 encoding 'UTF8'").format(sql.Identifier(DATABASE)))
    return warehouse.with_database(server_url, DATABASE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=list(demo.SCALES))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-date", default="2026-10-31", type=dt.date.fromisoformat)
    parser.add_argument("--bad-records", action="store_true")
    args = parser.parse_args()
    environment.apply()

    with tempfile.TemporaryDirectory(prefix="lens-bench-generate-") as tmp_name:
        tmp = Path(tmp_name)
        server = None
        server_url = os.environ.get("LENS_BENCH_URL")
        if not server_url:
            server = warehouse.EmbeddedServer(tmp / "warehouse")
            server.start()
            server_url = server.url("postgres")
        try:
            sales_url = _fresh_database(server_url)
            summary = demo.generate(
                scale=args.scale,
                seed=args.seed,
                end_date=args.end_date,
                sales_url=sales_url,
                files_dir=tmp / "sources",
                bad_records=args.bad_records,
                progress=True,
            )
            export_bytes = sum(p.stat().st_size for p in (tmp / "sources").rglob("*") if p.is_file())
            with psycopg.connect(sales_url) as conn:
                database_bytes = conn.execute("select pg_database_size(current_database())").fetchone()[0]
            if not server:
                with psycopg.connect(server_url, autocommit=True) as conn:
                    conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(DATABASE)))
        finally:
            if server:
                server.stop()

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = summary.elapsed_seconds
    counts = summary.counts()
    total_rows = sum(counts[e] for e in WRITTEN)
    print(f"\ndemo data, {args.scale} scale, seed {args.seed}, end {args.end_date}: {seconds:.1f} s\n")
    print(f"{'entity':<18}{'rows':>12}{'rows/s of run':>16}")
    for entity in ENTITIES:
        print(f"{entity:<18}{counts[entity]:>12,}{counts[entity] / seconds:>14,.0f}")
    print(f"{'all rows':<18}{total_rows:>12,}{total_rows / seconds:>14,.0f}")
    print("\nphase seconds:  " + ", ".join(f"{k} {v:.1f}" for k, v in summary.phase_seconds.items()))
    print(f"files written:  {summary.files_written:,} ({export_bytes / 2**20:,.0f} MB)")
    print(f"database size:  {database_bytes / 2**20:,.0f} MB")
    print(f"peak RSS:       {peak_rss_mb:,.0f} MB")

    results = {
        "scale": args.scale,
        "seed": args.seed,
        "end_date": args.end_date.isoformat(),
        "bad_records": args.bad_records,
        "elapsed_seconds": round(seconds, 2),
        "rows": counts,
        "rows_per_second": {e: round(counts[e] / seconds) for e in ENTITIES} | {"all": round(total_rows / seconds)},
        "phase_seconds": summary.phase_seconds,
        "files_written": summary.files_written,
        "faults_injected": summary.faults_injected,
        "export_mb": round(export_bytes / 2**20, 1),
        "database_mb": round(database_bytes / 2**20, 1),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    out = HERE / "results" / f"generate-{args.scale}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
