"""What the report is made of: a header, and sections of charts, tables and notes (what the template draws)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Chart:
    name: str
    html: str
    kind: str = "chart"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]  # a cell is a string, or (text, css class), or (text, css class, small note)
    numeric: frozenset[int] = frozenset()  # right-aligned columns
    caption: str | None = None
    kind: str = "table"


@dataclass
class Note:
    text: str
    tone: str = "info"  # info | ok | warn | bad
    link: str | None = None  # a local file (file:// URI) shown after the text
    kind: str = "note"


Block = Chart | Table | Note


@dataclass
class Section:
    key: str
    nav: str
    title: str
    intro: str
    blocks: list[Block] = field(default_factory=list)
    empty: str | None = None
    error: str | None = None
    not_applicable: str | None = None  # no source gives what the section shows (it is not missing data)


@dataclass
class KpiCard:
    label: str
    value: str
    vs_previous: tuple[str, str] | None  # (text, css class)
    vs_first: tuple[str, str] | None


@dataclass
class Header:
    generated_at: dt.datetime
    baseline: dict[str, Any] | None
    as_of: dt.date | None
    cards: list[KpiCard]
    quarantined: dict[str, Any] | None = None  # the latest validation, when it failed
