"""The report as one file: read every section in one transaction, render the template, write it.

Plotly and Jinja are imported inside the functions: Airflow DAG files import this package.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from customer_lens.config import settings as settings_mod
from customer_lens.local import warehouse
from customer_lens.report import queries, sections
from customer_lens.report.blocks import Block, Header, Section
from customer_lens.report.queries import Db, NoData

log = logging.getLogger(__name__)

REPORT_NAME = "customer_lens.html"
TEMPLATES_DIR = Path(__file__).with_name("templates")

# Sections that show one source's data: without that input configured they are "not applicable".
SECTION_INPUTS = {"complaints": "service.tickets", "nps": "survey.responses"}


class ReportError(RuntimeError):
    """The report could not be written; the message says what failed and where to look."""


# key (HTML anchor), short name for the navigation, title, one-line intro, builder.
SECTIONS: list[tuple[str, str, str, str, Callable[[Db], list[Block]]]] = [
    (
        "segments",
        "Segments",
        "Segments: size and value",
        "Who the customers are and what they bring.",
        sections.segments,
    ),
    (
        "migrations",
        "Migrations",
        "Segment migrations",
        "Where customers moved between the last two snapshots.",
        sections.migrations,
    ),
    (
        "complaints",
        "Complaints",
        "Complaint trends",
        "Complaints per category, month over month and year over year.",
        sections.complaints,
    ),
    (
        "guerrilla",
        "Guerrilla metrics",
        "The five guerrilla metrics",
        "New customers, lost customers, renewals, revenue and profitability, referrals — per customer group.",
        sections.guerrilla,
    ),
    ("nps", "NPS & CSAT", "NPS and CSAT by segment", "How customers rate us, segment by segment.", sections.nps),
    (
        "lost",
        "Lost customers",
        "Lost-customer review",
        "The most valuable customers lost in the last complete month, and why customers leave.",
        sections.lost,
    ),
    (
        "history",
        "Baseline history",
        "Baseline history",
        "Each KPI against the previous and the first baseline.",
        sections.history,
    ),
    (
        "validation",
        "Validation",
        "Latest validation",
        "What the quality guard said about the last snapshot.",
        sections.validation,
    ),
]


def default_path(cfg: settings_mod.Settings | None = None) -> Path:
    """Where :func:`render` writes by default: ``$LENS_STATE_DIR/reports/customer_lens.html``."""
    return (cfg or settings_mod.load()).state_dir / "reports" / REPORT_NAME


def render(
    cfg: settings_mod.Settings | None = None,
    *,
    out: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the Customer Lens report (one self-contained HTML file) and return its path.

    ``out`` defaults to :func:`default_path`. ``progress`` receives a line per section drawn. Raises
    :class:`ReportError` when the warehouse cannot be reached; sections without data say so in the report.
    """
    import psycopg

    cfg = cfg or settings_mod.load()
    if out is not None and not Path(out).resolve().parent.is_dir():
        raise ReportError(f"cannot write {out}: the folder {Path(out).resolve().parent} does not exist")
    out = Path(out).resolve() if out else default_path(cfg)
    say = progress or (lambda _line: None)
    with _connect(cfg) as conn, conn.transaction():
        queries.lock_analytics(conn)
        db = Db(conn, base=out.parent)
        try:
            header = sections.header(db)
        except psycopg.Error as exc:
            raise ReportError(f"could not read the current baseline: {_first_line(exc)}") from exc
        drawn = _draw_sections(db, _absent_inputs(cfg), say)
    _write(out, _html(header, drawn))
    return out


def _connect(cfg: settings_mod.Settings) -> warehouse.Connection:
    import psycopg

    url = warehouse.url(cfg=cfg)
    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        where = "LENS_WAREHOUSE_URL" if cfg.warehouse_url else "`lens warehouse status`"
        raise ReportError(f"cannot reach the warehouse ({_first_line(exc)}); check {where}") from exc
    conn.read_only = True
    return conn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _absent_inputs(cfg: settings_mod.Settings) -> set[str]:
    """The data contract's entities no configured source gives (none when the sources file cannot be read)."""
    from customer_lens.config import contract, source_config

    try:
        return set(contract.absent(source_config.load(cfg=cfg)))
    except source_config.ConfigError as exc:
        log.warning("report: the sources file cannot be read (%s); every section is drawn", exc)
        return set()


def _draw_sections(db: Db, absent: set[str], say: Callable[[str], None]) -> list[Section]:
    """Every section in :data:`SECTIONS` order; one whose source is not configured is "not applicable"."""
    drawn = []
    for key, nav, title, intro, build in SECTIONS:
        say(f"report      {title.lower()}")
        if SECTION_INPUTS.get(key) in absent:
            source, entity = SECTION_INPUTS[key].split(".")
            reason = f"no {source} source configured (the sources file gives no {source}.{entity})"
            drawn.append(Section(key, nav, title, intro, not_applicable=reason))
            continue
        drawn.append(_build_section(db, key, nav, title, intro, build))
    return drawn


def _build_section(db: Db, key: str, nav: str, title: str, intro: str, build: Callable[[Db], list[Block]]) -> Section:
    import psycopg

    section = Section(key, nav, title, intro)
    try:
        with db.conn.transaction():  # a savepoint: a failed query leaves the other sections readable
            section.blocks = build(db)
    except NoData as exc:
        section.empty = str(exc)
    except psycopg.Error as exc:
        # A broken section must not hide the others; it shows its error and the log says where.
        log.warning("report section %s failed: %s", key, exc)
        section.error = _first_line(exc)
    return section


def _html(header: Header, drawn: list[Section]) -> str:
    import jinja2
    from markupsafe import Markup
    from plotly.offline import get_plotlyjs

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(
        header=header,
        sections=drawn,
        plotly_js=Markup(get_plotlyjs()),  # plotly's own bundled library, inlined once
    )


def _write(out: Path, html: str) -> None:
    """Write ``out`` whole or not at all (a temporary file beside it, then renamed over it)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
