"""Sources as configuration: one YAML file declares every source the extraction DAGs load.

A source has a ``kind``:

- ``postgres`` — any libpq URL; each entity is a table (or query) with a cursor column
  (``updated_at``): a run loads the rows whose cursor is in its data interval ``[start, end)``.
- ``files`` — a folder of ``csv``, ``ndjson`` or ``parquet`` files; an entity selects files by a
  glob, and either takes the date from the file name (``file_date``: a strptime pattern; a run
  loads the files of its interval's days) or, for one big file, filters rows on a ``cursor`` column.
- ``http`` — JSON pages from an API with a cursor (``next`` link or token), filtered by the
  interval on the server side (``since``/``until`` parameters).

Every entity lists its columns with a type (``text``, ``bigint``, ``integer``, ``numeric``,
``boolean``, ``date``, ``timestamptz``, ``jsonb``) and optionally ``source`` (the column's name in
the source, when it differs), ``required: true`` (a row or file without it is rejected / fails) and
``min``/``max`` (out-of-range rows are rejected). ``flags`` are SQL boolean expressions over the
loaded columns, stored as extra columns (e.g. ``is_cancellation``). ``map`` gives the canonical columns of
the Customer Lens data contract the entity lacks or names differently (:mod:`customer_lens.config.contract`,
docs/data-contract.md); it is applied in staging, the raw layer keeps the declared columns. Values may use
``${VAR}`` / ``${VAR:-default}``; ``LENS_*`` variables default to the project settings, and the
URL ``warehouse:NAME`` means database NAME on the warehouse server. ``date_order`` (``DMY``, ``MDY``,
``YMD``) says how a source's ambiguous text dates read (``13/01/2024 10:00`` is ``DMY``);
``null_values`` lists the texts a file source writes for "no value" (``?``, ``N/A``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from customer_lens.config import contract
from customer_lens.config import settings as settings_mod

TYPES = frozenset(
    {"text", "bigint", "integer", "numeric", "boolean", "date", "timestamptz", "jsonb", "double precision"}
)
# How PostgreSQL's format_type() spells the configuration's types (where it differs).
PG_TYPE_NAMES = {"timestamptz": "timestamp with time zone"}
KINDS = frozenset({"postgres", "files", "http"})
FORMATS = frozenset({"csv", "ndjson", "parquet"})
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The sources file is invalid; the message names the source, entity and key."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    source: str
    required: bool = False
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Entity:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    cursor: str | None = None
    table: str | None = None  # postgres: schema.table in the source
    glob: str | None = None  # files
    file_date: str | None = None  # files: strptime pattern of the file name
    path: str | None = None  # http: endpoint path
    flags: dict[str, str] = field(default_factory=dict)
    mappings: tuple[contract.Mapping, ...] = ()  # canonical columns computed in staging (customer_lens.config.contract)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class Source:
    name: str
    kind: str
    entities: tuple[Entity, ...]
    url: str | None = None  # postgres / http
    location: Path | None = None  # files
    format: str | None = None  # files
    encoding: str = "utf-8"
    schedule: str = "0 0 * * *"
    start_date: str = "2023-01-01"
    end_date: str | None = None  # the last day of a historical source (an export that no longer grows)
    date_order: str | None = None  # DMY, MDY or YMD: how ambiguous dates in the source's text are read
    null_values: tuple[str, ...] = ()  # files: texts that mean "no value" ("?", "N/A"), loaded as null
    max_reject_ratio: float = 0.05
    reject_ratio_min_rows: int = 100  # below it a batch fails only when every row is rejected
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def raw_schema(self) -> str:
        return f"raw_{self.name}"

    def connection_url(self, cfg: settings_mod.Settings | None = None) -> str:
        """The source URL, with ``warehouse:NAME`` resolved (lazily: DAG parsing must not need it)."""
        if self.url and self.url.startswith("warehouse:"):
            from customer_lens.local import warehouse

            return warehouse.url(self.url.removeprefix("warehouse:"), cfg)
        if not self.url:
            raise ConfigError(f"source {self.name!r} has no url")
        return self.url

    def load_range(self, start: dt.date | None = None, end: dt.date | None = None) -> tuple[dt.datetime, dt.datetime]:
        """``[start, end)`` to load, as UTC datetimes: the given days, else ``start_date`` to the day after
        ``end_date`` (a historical source) or to today (the last complete day is yesterday)."""
        lower = start or dt.date.fromisoformat(self.start_date)
        if end is None:
            end = (
                dt.date.fromisoformat(self.end_date) + dt.timedelta(days=1)
                if self.end_date
                else dt.datetime.now(dt.UTC).date()
            )
        if lower >= end:
            raise ConfigError(f"sources.{self.name}: nothing to load from {lower} to {end} (start is not before end)")

        def as_utc(day: dt.date) -> dt.datetime:
            return dt.datetime.combine(day, dt.time(), dt.UTC)

        return as_utc(lower), as_utc(end)

    def entity(self, name: str) -> Entity:
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise KeyError(f"source {self.name!r} has no entity {name!r}")


def default_path(cfg: settings_mod.Settings | None = None) -> Path:
    """``$LENS_SOURCES_CONFIG`` or the project's ``config/sources.yml``."""
    cfg = cfg or settings_mod.load()
    return Path(os.environ.get("LENS_SOURCES_CONFIG") or cfg.home / "config" / "sources.yml")


def _interpolate(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name: str = match.group(1)
            default: str | None = match.group(2)
            if name in variables and variables[name] != "":
                return variables[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set and has no default")

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, variables) for v in value]
    return value


def _variables(cfg: settings_mod.Settings) -> dict[str, str]:
    base = {
        "LENS_HOME": str(cfg.home),
        "LENS_STATE_DIR": str(cfg.state_dir),
        "LENS_SOURCES_DIR": str(cfg.sources_dir),
    }
    return base | dict(os.environ)


def _require(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise ConfigError(f"{where}: missing key {key!r}")
    return mapping[key]


def _ident(name: str, where: str) -> str:
    if not _IDENT.match(str(name)):
        raise ConfigError(f"{where}: {name!r} is not a lower-case SQL identifier")
    return name


def _parse_columns(raw: dict[str, Any], where: str) -> tuple[Column, ...]:
    """The ``columns`` section of an entity: each a type name, or a mapping with ``type`` and options."""
    columns = []
    for col_name, spec in _require(raw, "columns", where).items():
        spec = {"type": spec} if isinstance(spec, str) else dict(spec)
        col_where = f"{where}.columns.{col_name}"
        col_type = _require(spec, "type", col_where)
        if col_type not in TYPES:
            raise ConfigError(f"{col_where}: unknown type {col_type!r} (one of {', '.join(sorted(TYPES))})")
        columns.append(
            Column(
                name=_ident(col_name, col_where),
                type=col_type,
                source=str(spec.get("source", col_name)),
                required=bool(spec.get("required", False)),
                min=spec.get("min"),
                max=spec.get("max"),
            )
        )
    return tuple(columns)


def _check_kind_needs(entity: Entity, source_kind: str, where: str) -> None:
    """What an entity of each kind of source must give to be loaded."""
    if source_kind == "postgres" and not (entity.table and entity.cursor):
        raise ConfigError(f"{where}: a postgres entity needs 'table' and 'cursor'")
    if source_kind == "files" and not entity.glob:
        raise ConfigError(f"{where}: a files entity needs 'glob'")
    if source_kind == "files" and not (entity.file_date or entity.cursor):
        raise ConfigError(f"{where}: a files entity needs 'file_date' (a pattern) or 'cursor' (a column)")
    if source_kind == "http" and not (entity.path and entity.cursor):
        raise ConfigError(f"{where}: an http entity needs 'path' and 'cursor'")


def _parse_entity(name: str, raw: dict[str, Any], source_kind: str, where: str) -> Entity:
    source_name = where.removeprefix("sources.")
    where = f"{where}.entities.{name}"
    _ident(name, where)
    columns = _parse_columns(raw, where)
    names = {c.name for c in columns}
    primary_key = tuple(raw.get("primary_key") or ())
    for key in primary_key:
        if key not in names:
            raise ConfigError(f"{where}.primary_key: {key!r} is not a declared column")
    cursor = raw.get("cursor")
    if cursor and cursor not in names:
        raise ConfigError(f"{where}.cursor: {cursor!r} is not a declared column")
    entity = Entity(
        name=name,
        columns=columns,
        primary_key=primary_key,
        cursor=cursor,
        table=raw.get("table"),
        glob=raw.get("glob"),
        file_date=raw.get("file_date"),
        path=raw.get("path"),
        flags={_ident(k, f"{where}.flags"): str(v) for k, v in (raw.get("flags") or {}).items()},
    )
    try:
        mappings = contract.parse_mappings(raw.get("map"), f"{source_name}.{name}", names, where)
    except contract.MappingError as exc:
        raise ConfigError(str(exc)) from None
    entity = replace(entity, mappings=mappings)
    _check_kind_needs(entity, source_kind, where)
    return entity


def _date_order(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if str(value).upper() not in ("DMY", "MDY", "YMD"):
        raise ConfigError(f"{where}: {value!r} is not one of DMY (13/01/2024), MDY (01/13/2024), YMD")
    return str(value).upper()


def _date(value: Any, where: str) -> str:
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def parse(document: dict[str, Any], cfg: settings_mod.Settings | None = None) -> dict[str, Source]:
    """Validate a loaded YAML document into :class:`Source` objects (keyed by name)."""
    cfg = cfg or settings_mod.load()
    document = _interpolate(document, _variables(cfg))
    defaults = document.get("defaults") or {}
    sources: dict[str, Source] = {}
    for name, raw in (_require(document, "sources", "sources file") or {}).items():
        where = f"sources.{name}"
        _ident(name, where)
        raw = defaults | raw
        kind = _require(raw, "kind", where)
        if kind not in KINDS:
            raise ConfigError(f"{where}.kind: {kind!r} is not one of {', '.join(sorted(KINDS))}")
        fmt = raw.get("format")
        if kind == "files" and fmt not in FORMATS:
            raise ConfigError(f"{where}.format: {fmt!r} is not one of {', '.join(sorted(FORMATS))}")
        entities = tuple(
            _parse_entity(entity_name, spec, kind, where)
            for entity_name, spec in _require(raw, "entities", where).items()
        )
        url = raw.get("url")
        if kind in ("postgres", "http") and not url:
            raise ConfigError(f"{where}: a {kind} source needs 'url'")
        location = raw.get("location")
        if kind == "files" and not location:
            raise ConfigError(f"{where}: a files source needs 'location' (a folder)")
        sources[name] = Source(
            name=name,
            kind=kind,
            entities=entities,
            url=url,
            location=(cfg.home / location).resolve() if location else None,
            format=fmt,
            encoding=raw.get("encoding", "utf-8"),
            schedule=str(raw.get("schedule", "0 0 * * *")),
            start_date=_date(raw.get("start_date", "2023-01-01"), f"{where}.start_date"),
            end_date=_date(raw["end_date"], f"{where}.end_date") if raw.get("end_date") else None,
            date_order=_date_order(raw.get("date_order"), f"{where}.date_order"),
            null_values=tuple(str(v) for v in (raw.get("null_values") or ())),
            max_reject_ratio=float(raw.get("max_reject_ratio", 0.05)),
            reject_ratio_min_rows=int(raw.get("reject_ratio_min_rows", 100)),
            options=dict(raw.get("options") or {}),
        )
    return sources


def load(path: Path | None = None, cfg: settings_mod.Settings | None = None) -> dict[str, Source]:
    """Read and validate the sources file (default: :func:`default_path`)."""
    path = path or default_path(cfg)
    try:
        document = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"sources file not found: {path}") from None
    return parse(document or {}, cfg)
