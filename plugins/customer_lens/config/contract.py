"""The Customer Lens data contract: the canonical entities and columns the dbt project is built from.

Each source entity of ``config/sources.yml`` named like a canonical entity (``sales.order_lines``,
``survey.responses``...) feeds it. Its declared columns land in the raw layer under their own names;
a column the contract needs but the source lacks, names differently or encodes differently is given by
the entity's ``map`` section, applied in the staging models (so the raw layer keeps what the source
said, and the mapping shows in the compiled SQL and in dbt docs):

.. code-block:: yaml

    map:
      csat_score: score                              # a declared column
      kind: {value: csat}                            # a constant
      channel: {column: medium, values: {Phone: phone, IVR: phone}, default: web}   # a value map
      nps_score: {sql: "case when scale = '0-10' then score end"}     # a SQL expression over the columns

Keys (ids, the version cursor) are not mapped: the incremental models read them from the raw tables
directly, so they are declared columns (``source:`` renames one) or derived from a text id
(``key_from:``, a generated column of the raw table). A reference to another entity's id (a ticket's
``customer_id``, the ``order_id`` a survey answer rates) may use ``key_from:`` too: the same text gives
the same id as the key derived from it in the other entity. The
contract itself is documented in docs/data-contract.md; :data:`ENTITIES` is its executable form.
"""

from __future__ import annotations

import collections.abc
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from psycopg import Connection, errors, sql


class MappingError(ValueError):
    """A ``map`` entry cannot be applied; the message names the source, entity and column."""


@dataclass(frozen=True)
class Field:
    """One canonical column: its type, whether a build needs it, and whether it is a key."""

    name: str
    type: str
    required: bool = False
    key: bool = False
    values: tuple[str, ...] = ()  # a fixed list the marts reason about (reached through a value map)


# What the contract reads of the sources configuration (customer_lens.config.source_config, which imports
# this module): its Source, Entity and Column are these.
class ColumnLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...


class EntityLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def columns(self) -> Sequence[ColumnLike]: ...

    @property
    def mappings(self) -> tuple[Mapping, ...]: ...


class SourceLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def raw_schema(self) -> str: ...

    @property
    def entities(self) -> Sequence[EntityLike]: ...


Sources = collections.abc.Mapping[str, SourceLike]


def _fields(*specs: tuple[Any, ...]) -> dict[str, Field]:
    return {spec[0]: Field(*spec) for spec in specs}


_TIMESTAMPS = (("created_at", "timestamptz", True, True), ("updated_at", "timestamptz", True, True))

ENTITIES: dict[str, dict[str, Field]] = {
    "sales.customers": _fields(
        ("customer_id", "bigint", True, True),
        ("email", "text"),
        ("name", "text"),
        ("country", "text"),
        ("region", "text"),
        ("industry", "text"),
        ("company_size", "text"),
        ("acquisition_channel", "text"),
        ("referred_by_customer_id", "bigint"),
        *_TIMESTAMPS,
    ),
    "sales.products": _fields(
        ("product_id", "integer", True, True),
        ("sku", "text"),
        ("name", "text"),
        ("category", "text"),
        ("list_price", "numeric"),
        ("unit_cost", "numeric"),
        *_TIMESTAMPS,
    ),
    "sales.orders": _fields(
        ("order_id", "bigint", True, True),
        ("customer_id", "bigint", True, True),
        ("ordered_at", "timestamptz", True),
        ("status", "text", False, False, ("completed", "cancelled", "returned")),
        ("sales_channel", "text"),
        *_TIMESTAMPS,
    ),
    "sales.order_lines": _fields(
        ("order_line_id", "bigint", True, True),
        ("order_id", "bigint", True, True),
        ("product_id", "integer"),
        ("quantity", "integer", True),
        ("unit_price", "numeric", True),
        ("discount_pct", "numeric"),
        ("unit_cost", "numeric"),
        *_TIMESTAMPS,
    ),
    "sales.contracts": _fields(
        ("contract_id", "bigint", True, True),
        ("customer_id", "bigint", True, True),
        ("plan", "text"),
        ("start_date", "date"),
        ("end_date", "date"),
        ("annual_value", "numeric"),
        ("status", "text", False, False, ("active", "renewed", "expired", "cancelled")),
        ("renewed_from_contract_id", "bigint"),
        ("renewal_reason", "text"),
        ("cancellation_reason", "text"),
        *_TIMESTAMPS,
    ),
    # One transaction-line grain instead of orders and order lines (an invoice-line export): the orders and
    # their lines are derived from it (customer_lens.extract.raw), ids from the order reference. No column is a key
    # (the derived views read them, not the incremental models), so each may be mapped.
    "sales.transactions": _fields(
        ("order_ref", "text"),
        ("customer_id", "bigint", True),
        ("ordered_at", "timestamptz", True),
        ("quantity", "integer", True),
        ("unit_price", "numeric", True),
        ("discount_pct", "numeric"),
        ("unit_cost", "numeric"),
        ("product_id", "integer"),
        ("status", "text", False, False, ("completed", "cancelled", "returned")),
        ("sales_channel", "text"),
    ),
    "service.tickets": _fields(
        ("ticket_id", "bigint", True, True),
        ("requester_email", "text"),
        ("customer_id", "bigint"),
        *_TIMESTAMPS,
        ("first_reply_at", "timestamptz"),
        ("solved_at", "timestamptz"),
        ("status", "text"),
        ("channel", "text", False, False, ("email", "phone", "chat", "web", "social")),
        ("type", "text"),
        ("category", "text"),
        ("priority", "text"),
        ("reopen_count", "integer"),
        ("satisfaction", "text"),
        ("subject", "text"),
        ("description", "text"),
    ),
    "survey.responses": _fields(
        ("response_id", "text", True, True),
        ("customer_ref", "text"),
        ("order_id", "bigint"),
        ("submitted_at", "timestamptz", True),
        ("kind", "text", True, False, ("nps", "csat", "renewal", "exit")),
        ("nps_score", "integer"),
        ("csat_score", "integer"),
        ("reason", "text"),
        ("would_refer", "text"),
        ("comment", "text"),
        ("language", "text"),
    ),
}


# A canonical entity no source configures is an empty raw table of its contract shape (customer_lens.extract.raw),
# so every model builds and the marts that need it are empty; these are derived instead, from the entity
# named, when that one is given (or derived itself): the customer list from the orders' customer ids, the
# orders and their lines from a transaction-line grain.
DERIVED_FROM = {
    "sales.orders": "sales.transactions",
    "sales.order_lines": "sales.transactions",
    "sales.customers": "sales.orders",
}
# Entities that only stand in for others: never an empty stand-in of their own.
ALTERNATIVES = ("sales.transactions",)
# The least a configuration must give for the marts to mean anything: the sales transactions.
MINIMUM = ("sales.orders", "sales.order_lines")
# Entities that need one of several optional columns: who a survey answer is from (a customer id or
# e-mail), or the order it rates (the customer is the order's).
ONE_OF = {"survey.responses": ("customer_ref", "order_id")}


def configured(sources: Sources) -> set[str]:
    """The canonical entities (``source.entity``) the sources configuration gives."""
    return {f"{s.name}.{e.name}" for s in sources.values() for e in s.entities if f"{s.name}.{e.name}" in ENTITIES}


def derived(sources: Sources) -> dict[str, str]:
    """``{entity: the entity it is derived from}`` for the entities this configuration derives."""
    available = configured(sources)
    result: dict[str, str] = {}
    for key, origin in DERIVED_FROM.items():  # in dependency order: customers come from derived orders too
        if key not in available and origin in available:
            result[key] = origin
            available.add(key)
    return result


def unconfigured(sources: Sources) -> list[str]:
    """The canonical entities no source gives (empty stand-ins, or derived: see :func:`derived`)."""
    given = configured(sources)
    return [key for key in ENTITIES if key not in given and key not in ALTERNATIVES]


def absent(sources: Sources) -> list[str]:
    """The canonical entities that are empty in the warehouse: unconfigured and not derived."""
    made = derived(sources)
    return [key for key in unconfigured(sources) if key not in made]


def problems(sources: Sources) -> list[str]:
    """What keeps the configured canonical entities from feeding the marts: required columns neither
    declared nor mapped (keys must be declared). One line each, naming the source, entity and column."""
    found = []
    for source in sources.values():
        for entity in source.entities:
            fields = ENTITIES.get(f"{source.name}.{entity.name}")
            if fields is None:
                continue
            declared = {column.name for column in entity.columns}
            mapped = {mapping.target for mapping in entity.mappings}
            for field in fields.values():
                if not field.required or field.name in declared or field.name in mapped:
                    continue
                how = "declare it, or derive it from a text id with key_from:" if field.key else "declare it or map it"
                found.append(
                    f"sources.{source.name}.entities.{entity.name}: {field.name} ({field.type}) is required by "
                    f"the data contract: {how} (docs/data-contract.md)"
                )
            alternatives = ONE_OF.get(f"{source.name}.{entity.name}", ())
            if alternatives and not set(alternatives) & (declared | mapped):
                found.append(
                    f"sources.{source.name}.entities.{entity.name}: the data contract needs one of "
                    f"{' or '.join(alternatives)}: declare or map it (docs/data-contract.md)"
                )
    return found


def missing_minimum(sources: Sources) -> list[str]:
    """What of :data:`MINIMUM` this configuration neither gives nor derives."""
    available = configured(sources) | set(derived(sources))
    return [key for key in MINIMUM if key not in available]


@dataclass(frozen=True)
class Mapping:
    """How one canonical column is computed from a source entity's declared columns."""

    target: str
    kind: str  # column | value | values | sql | key
    column: str | None = None
    value: Any = None
    values: tuple[tuple[str, str], ...] = ()
    default: str | None = None  # values: what a value outside the map becomes (None: kept as it is)
    expression: str | None = None

    def render(self, target_type: str) -> str:
        """The SQL expression over the raw table's columns, cast to the canonical type."""
        if self.kind == "column":
            body = self._quoted_column()
        elif self.kind == "value":
            body = "null" if self.value is None else _quote_literal(self.value)
        elif self.kind == "values":
            cases = " ".join(f"when {_quote_literal(k)} then {_quote_literal(v)}" for k, v in self.values)
            other = self._quoted_column() + "::text" if self.default is None else _quote_literal(self.default)
            body = f"case {self._quoted_column()}::text {cases} else {other} end"
        elif self.kind == "key":
            return text_key(f"{self._quoted_column()}::text")
        else:
            assert self.expression is not None  # an sql mapping has one (parse_mappings)
            body = self.expression
        return f"({body})::{target_type}"

    def _quoted_column(self) -> str:
        assert self.column is not None  # column, values and key mappings name one (parse_mappings)
        return _quote_ident(self.column)


def text_key(expression: str) -> str:
    """A stable non-negative bigint id from a text id (63 bits of its MD5): same text, same id, everywhere."""
    return f"((('x' || left(md5({expression}), 16))::bit(64)::bigint) & 9223372036854775807)"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def parse_mappings(raw: Any, entity_key: str, declared: set[str], where: str) -> tuple[Mapping, ...]:
    """Validate an entity's ``map`` section against the contract and the entity's declared columns."""
    if not raw:
        return ()
    where = f"{where}.map"
    fields = ENTITIES.get(entity_key)
    if fields is None:
        known = ", ".join(sorted(ENTITIES))
        raise MappingError(f"{where}: {entity_key} is not a Customer Lens entity, so nothing maps to it ({known})")
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: expected a mapping of canonical column to its source")
    return tuple(
        _parse_entry(entity_key, fields, target, spec, declared, f"{where}.{target}") for target, spec in raw.items()
    )


def _parse_entry(
    entity_key: str, fields: dict[str, Field], target: Any, spec: Any, declared: set[str], at: str
) -> Mapping:
    """One entry of a ``map`` section: ``target`` (a canonical column) from ``spec``."""
    field = fields.get(target)
    if field is None:
        raise MappingError(f"{at}: {entity_key} has no column {target!r} (one of {', '.join(fields)})")
    _check_mappable(field, target, spec, declared, at)
    mapping = _parse_one(target, spec, declared, at)
    if mapping.kind == "key" and not field.key:
        # a reference to another entity's id (a ticket's customer, the order an answer rates): the same
        # text gives the same id as the key derived from it there; applied in staging like any mapping
        mapping = Mapping(target, "sql", expression=text_key(f"{mapping._quoted_column()}::text"))
    _check_produced_values(field, mapping, at)
    return mapping


def _check_mappable(field: Field, target: str, spec: Any, declared: set[str], at: str) -> None:
    """Refuse a map entry for a key (unless from a text id), ``key_from:`` for a non-id, and a declared column."""
    if field.key and not (isinstance(spec, dict) and set(spec) == {"key_from"}):
        raise MappingError(
            f"{at}: {target} is a key, read from the raw table itself; declare it as a column "
            f"(`{target}: {{source: <name in the source>, type: {field.type}}}`), or, for a text id "
            f"(INC0012345), give {{key_from: <declared column>}}"
        )
    if not field.key and not _is_id(field) and isinstance(spec, dict) and "key_from" in spec:
        raise MappingError(f"{at}: key_from: is for ids; {target} is not one (map it with sql: or values:)")
    if target in declared:
        raise MappingError(f"{at}: {target} is also a declared column; map it or declare it, not both")


def _check_produced_values(field: Field, mapping: Mapping, at: str) -> None:
    """Refuse a mapping that produces a value outside the column's fixed list of values."""
    produced = [v for _, v in mapping.values] + ([mapping.default] if mapping.default is not None else [])
    if mapping.kind == "value" and mapping.value is not None:
        produced.append(str(mapping.value))
    outside = [v for v in produced if field.values and v not in field.values]
    if outside:
        raise MappingError(f"{at}: {outside[0]!r} is not one of {', '.join(field.values)}")


def _is_id(field: Field) -> bool:
    return field.type == "bigint" and field.name.endswith("_id")


def _parse_one(target: str, spec: Any, declared: set[str], at: str) -> Mapping:
    def known(column: object) -> str:
        if column not in declared or not isinstance(column, str):
            raise MappingError(
                f"{at}: {column!r} is not a declared column of this entity ({', '.join(sorted(declared))})"
            )
        return column

    if isinstance(spec, str):
        return Mapping(target, "column", column=known(spec))
    if isinstance(spec, dict) and set(spec) == {"key_from"}:
        return Mapping(target, "key", column=known(spec["key_from"]))
    if not isinstance(spec, dict) or len({"value", "sql", "values"} & set(spec)) != 1:
        raise MappingError(f"{at}: give a column name, or exactly one of value:, sql:, or column: with values:")
    if "value" in spec:
        return Mapping(target, "value", value=spec["value"])
    if "sql" in spec:
        expression = str(spec["sql"]).strip()
        if not expression or ";" in expression:
            raise MappingError(f"{at}: sql: must be one SQL expression over the entity's columns")
        return Mapping(target, "sql", expression=expression)
    values = spec["values"]
    if not isinstance(values, dict) or not values:
        raise MappingError(f"{at}: values: must map source values to canonical ones")
    default = spec.get("default")
    return Mapping(
        target,
        "values",
        column=known(spec.get("column", target)),
        values=tuple((str(k), str(v)) for k, v in values.items()),
        default=None if default is None else str(default),
    )


def rendered(entity_key: str, mappings: tuple[Mapping, ...]) -> dict[str, str]:
    """``{canonical column: SQL}`` for an entity's mappings."""
    fields = ENTITIES[entity_key]
    return {m.target: m.render(fields[m.target].type) for m in mappings}


def dbt_mappings(sources: Sources) -> str:
    """The mappings of every configured source as JSON for dbt, keyed by raw table (``raw_survey.responses``).

    The staging models read it through the ``source_column``/``optional_column`` macros. Keys from text ids
    (``key_from``) are not among them: they are generated columns of the raw table (:func:`key_columns`).
    """
    result: dict[str, dict[str, str]] = {}
    for source in sources.values():
        for entity in source.entities:
            staged = tuple(m for m in entity.mappings if m.kind != "key")
            if staged:
                result[f"{source.raw_schema}.{entity.name}"] = rendered(f"{source.name}.{entity.name}", staged)
    return json.dumps(result, sort_keys=True)


def key_columns(entity: EntityLike) -> dict[str, str]:
    """``{key: SQL}`` of the keys an entity derives from text ids: stored generated columns of its raw table,
    so the incremental models' direct reads of the raw keys find them."""
    return {m.target: m.render("bigint") for m in entity.mappings if m.kind == "key"}


def check(conn: Connection, source: SourceLike, entity: EntityLike) -> None:
    """Try the entity's mapped expressions on an empty row of its declared columns, before any data moves.

    A bad expression (unknown column, syntax, a type that does not cast) is a :class:`MappingError`
    naming the source, entity and column, with PostgreSQL's own words.
    """
    if not entity.mappings:
        return
    row = sql.SQL(", ").join(
        sql.SQL("null::{} as {}").format(sql.SQL(column.type), sql.Identifier(column.name)) for column in entity.columns
    )
    for target, expression in rendered(f"{source.name}.{entity.name}", entity.mappings).items():
        query = sql.SQL("select {} from (select {}) as raw limit 0").format(sql.SQL(expression), row)
        try:
            with conn.transaction():
                conn.execute(query)
        except errors.Error as exc:
            message = str(exc).strip().splitlines()[0]
            raise MappingError(f"sources.{source.name}.entities.{entity.name}.map.{target}: {message}") from None
