"""Warehouse roles: who may read and write which schema.

| role | login | may |
|---|---|---|
| ``bi_reader`` | yes | ``USAGE`` on ``analytics`` and ``SELECT`` on its views — nothing else; sessions read-only |
| ``lens_loader`` | only with a password | own the ``raw_<source>`` schemas: create, load, replace raw tables |
| ``lens_transformer`` | only with a password | read ``raw_*``; own ``analytics_candidate`` and ``lens_snapshot_<n>`` |

The pipeline's own connection user (``postgres`` on the embedded server, ``lens`` under docker-compose;
the *admin* below) runs :func:`ensure_roles`, owns ``lens_audit`` and ``analytics`` (the promotion
creates the BI views as itself) and is a member of the loader and transformer roles, so it may act as
them: the loader's connections switch with ``SET ROLE lens_loader`` (see :func:`connect_options`), dbt
with the ``role`` field of its profile. The admin inherits what those roles own, so the views it
creates in ``analytics`` can read the snapshot schemas while ``bi_reader`` reads only the views. The
switches are on by default; ``LENS_LOADER_ROLE`` / ``LENS_TRANSFORMER_ROLE`` name another role, or
switch one off when set to an empty string (the pipeline then runs as the admin). Before a load or a
build, :func:`prepare_session_role` checks that the role exists and owns its schemas, and runs
:func:`ensure_roles` when not (the first run on a new warehouse, or schemas the admin created by hand).
A ``SET ROLE`` can be undone by the session (``RESET ROLE``), so the switch confines mistakes, not
hostile code; give the roles passwords and their own URLs for that.

Everything here is idempotent: roles are created when missing, objects created by the admin before
the roles existed are handed to their owning role, grants are re-applied. Passwords come from
``LENS_BI_READER_PASSWORD``, ``LENS_LOADER_PASSWORD`` and ``LENS_TRANSFORMER_PASSWORD`` (or the
``passwords`` argument) and are hashed (SCRAM) by libpq before they are sent, so the plain text never
reaches the server's statement log.

- :func:`ensure_roles` — the whole declaration, in one transaction;
- :func:`session_role`, :func:`prepare_session_role` — which role a part of the pipeline acts as, and
  making sure it can;
- :func:`grant_reader` — make ``analytics`` readable by ``bi_reader``; the promotion calls it in its
  own transaction right after it recreates the views, and it refuses views exposing PII columns;
- :func:`apply` — ``ensure_roles`` on the configured warehouse, as lines to print (``lens roles``);
  ``python -m customer_lens.roles`` does the same (docker-compose's init service runs it).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from psycopg import errors, sql

from customer_lens.config import settings as settings_mod
from customer_lens.local import warehouse
from customer_lens.local.warehouse import Connection, one, scalar

READER = "bi_reader"
LOADER = "lens_loader"
TRANSFORMER = "lens_transformer"
ROLES = (READER, LOADER, TRANSFORMER)

ANALYTICS = "analytics"
AUDIT = "lens_audit"
CANDIDATE = "analytics_candidate"
RAW_PATTERN = r"raw\_%"
SNAPSHOT_PATTERN = r"lens\_snapshot\_%"

PASSWORD_ENV = {
    READER: "LENS_BI_READER_PASSWORD",
    LOADER: "LENS_LOADER_PASSWORD",
    TRANSFORMER: "LENS_TRANSFORMER_PASSWORD",
}
# Which role a part of the pipeline switches to: the default unless the variable is set ("" = no switch).
SESSION_ROLE_ENV = {"loader": "LENS_LOADER_ROLE", "transformer": "LENS_TRANSFORMER_ROLE"}
SESSION_ROLE_DEFAULT = {"loader": LOADER, "transformer": TRANSFORMER}
# Serialises concurrent ensure_roles calls (parallel extract tasks on a fresh warehouse).
_ADVISORY_LOCK = 0x4C454E53  # "LENS"

# Session defaults of the reader: read-only transactions (a second fence behind the privileges) and
# the BI schema first, so a BI tool's unqualified names resolve there.
_READER_SETTINGS = {"default_transaction_read_only": "on", "search_path": ANALYTICS}
# Role attributes that would let the reader step around its grants.
_DANGEROUS_ATTRIBUTES = ("rolsuper", "rolcreaterole", "rolcreatedb", "rolreplication", "rolbypassrls")
# A text column named like an e-mail address (email, requester_email, email_address, e_mail).
_EMAIL_NAME = re.compile(r"(^|_)e_?mail(_|$)")
_TEXT_TYPES = ("text", "character varying", "character", "citext", "name")
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_RELKIND_KEYWORD = {
    "r": "table",
    "p": "table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
    "S": "sequence",
}


class RoleError(warehouse.WarehouseError):
    """The roles could not be put in place; the message says what to fix."""


# -- how the pipeline switches role ----------------------------------------------------------------
def session_role(kind: str) -> str | None:
    """The role the ``loader`` or ``transformer`` part of the pipeline runs as, or None (no switch).

    Unset variable: the default role (``lens_loader`` / ``lens_transformer``); empty: no switch.
    """
    value = os.environ.get(SESSION_ROLE_ENV[kind])
    role = SESSION_ROLE_DEFAULT[kind] if value is None else (value.strip() or None)
    if role is not None and not _ROLE_NAME.fullmatch(role):
        raise RoleError(f"{SESSION_ROLE_ENV[kind]}={role!r} is not a plain lower-case role name")
    return role


def prepare_session_role(conn: Connection, kind: str, *, candidate_schema: str | None = None) -> str | None:
    """Make sure the ``kind`` role can do its work on ``conn``'s database; returns the role (or None).

    The role must exist and own its schemas (``raw_*`` for the loader, the candidate schema for the
    transformer). When one of the built-in roles does not, :func:`ensure_roles` puts it in place: the
    first load into a new warehouse, or a schema the admin created without the switch. A role named by
    the environment (not one of ours) is only checked. ``conn`` is the admin's connection.
    """
    role = session_role(kind)
    if role is None:
        return None
    candidate = candidate_schema or os.environ.get("LENS_DBT_SCHEMA") or CANDIDATE
    pattern, schema = (RAW_PATTERN, None) if kind == "loader" else (None, candidate)
    # It may create schemas in this database (ensure_roles grants that per database, with the default
    # privileges that let the transformer read what the loader creates), and its schemas, and every
    # table, view and sequence in them, are its own.
    exists, foreign = one(
        conn.execute(
            """
        with r as (select oid from pg_roles where rolname = %(role)s),
        schemas as (select oid, nspowner from pg_namespace where nspname like %(pattern)s or nspname = %(schema)s)
        select exists (select 1 from r),
               not exists (select 1 from r where has_database_privilege(r.oid, current_database(), 'CREATE'))
               or exists (select 1 from schemas s where s.nspowner is distinct from (select oid from r))
               or exists (select 1 from pg_class c join schemas s on s.oid = c.relnamespace
                          where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
                            and c.relowner is distinct from (select oid from r))
        """,
            {"role": role, "pattern": pattern, "schema": schema},
        )
    )
    if exists and not foreign:
        return role
    var = SESSION_ROLE_ENV[kind]
    if role != SESSION_ROLE_DEFAULT[kind]:
        problem = "does not exist" if not exists else "does not own its schemas"
        raise RoleError(f"role {role} ({var}) {problem}: create it and its grants, or unset {var}")
    try:
        ensure_roles(conn, passwords={}, candidate_schema=candidate)
    except RoleError as exc:
        raise RoleError(
            f"{exc}. The pipeline loads and builds as {LOADER} / {TRANSFORMER}: have an administrator run "
            f"`lens roles` once, or set LENS_LOADER_ROLE= and LENS_TRANSFORMER_ROLE= (empty) to run as the "
            "connection user"
        ) from exc
    return role


def connect_options(kind: str) -> str:
    """libpq ``options`` to append for ``kind`` (``" -c role=lens_loader"``), or ``""`` without a switch.

    ``-c role=...`` is ``SET ROLE`` at connection start: everything the session creates is owned by
    that role and every privilege check is made against it.
    """
    role = session_role(kind)
    return f" -c role={role}" if role else ""


# -- the declaration ---------------------------------------------------------------------------------
def ensure_roles(
    conn: Connection,
    *,
    passwords: dict[str, str] | None = None,
    candidate_schema: str | None = None,
) -> list[str]:
    """Create the roles if missing and (re)apply every grant; returns what changed, one line each.

    Runs in one transaction (a savepoint inside the caller's). ``passwords`` maps role names to
    passwords (default: the ``PASSWORD_ENV`` variables); a role given a password gets ``LOGIN``. A role
    not given one keeps whatever password it has. ``candidate_schema`` is the schema dbt builds into
    (default ``LENS_DBT_SCHEMA`` or ``analytics_candidate``).

    The connection user needs ``CREATEROLE`` and must own the warehouse database (or be a superuser).
    """
    if passwords is None:
        passwords = {role: os.environ[var] for role, var in PASSWORD_ENV.items() if os.environ.get(var)}
    unknown = set(passwords) - set(ROLES)
    if unknown:
        raise RoleError(f"passwords given for unknown role(s): {', '.join(sorted(unknown))}")
    candidate = candidate_schema or os.environ.get("LENS_DBT_SCHEMA") or CANDIDATE
    changes: list[str] = []
    try:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK,))
            admin, is_super = one(
                conn.execute("select current_user, rolsuper from pg_roles where rolname = current_user")
            )
            database = scalar(conn.execute("select current_database()"))
            for role in ROLES:
                if _create_role(conn, role, login=role == READER):
                    changes.append(f"created role {role}")
            _check_reader(conn)
            _apply_reader_settings(conn)
            for role, password in passwords.items():
                _set_password(conn, role, password)
                changes.append(f"password set for {role}")
            if READER not in passwords and is_super:
                changes += _reader_password_from_passfile(conn)
            if not is_super:
                changes += _grant_membership(conn, admin)
            _database_privileges(conn, database)
            changes += _loader_schemas(conn)
            changes += _transformer_schemas(conn, candidate)
            _strip_reader(conn, candidate)
            if _schema_exists(conn, ANALYTICS):
                grant_reader(conn)
    except errors.InsufficientPrivilege as exc:
        raise RoleError(
            f"the warehouse user cannot manage the Customer Lens roles: {str(exc).strip()}. Run this as a "
            "superuser, or as the database owner with CREATEROLE that created the roles (docs/operations.md)"
        ) from exc
    return changes


def _role_exists(conn: Connection, role: str) -> bool:
    return conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone() is not None


def _create_role(conn: Connection, role: str, *, login: bool) -> bool:
    """Create ``role`` unless it exists; True when it was created."""
    if _role_exists(conn, role):
        return False
    statement = sql.SQL("create role {} {}").format(sql.Identifier(role), sql.SQL("login" if login else "nologin"))
    try:
        with conn.transaction():  # roles are cluster-wide: another database's run may create it first
            conn.execute(statement)
    except (errors.DuplicateObject, errors.UniqueViolation):
        return False
    return True


def _check_reader(conn: Connection) -> None:
    """Refuse a reader that could step around its grants (superuser, other roles' privileges)."""
    attributes = one(
        conn.execute(
            sql.SQL("select {} from pg_roles where rolname = %s").format(
                sql.SQL(", ").join(map(sql.Identifier, _DANGEROUS_ATTRIBUTES))
            ),
            (READER,),
        )
    )
    granted = [name.removeprefix("rol") for name, value in zip(_DANGEROUS_ATTRIBUTES, attributes, strict=True) if value]
    memberships = [
        name
        for (name,) in conn.execute(
            "select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.roleid "
            "where m.member = (select oid from pg_roles where rolname = %s) order by 1",
            (READER,),
        )
    ]
    if granted or memberships:
        problems = [f"attribute(s) {', '.join(granted).upper()}"] if granted else []
        problems += [f"membership in {', '.join(memberships)}"] if memberships else []
        raise RoleError(
            f"role {READER} has {' and '.join(problems)}: it could read beyond the analytics schema. "
            f"Remove them (ALTER ROLE / REVOKE ... FROM {READER}) and run again"
        )


def _apply_reader_settings(conn: Connection) -> None:
    for name, value in _READER_SETTINGS.items():
        conn.execute(
            sql.SQL("alter role {} set {} = {}").format(
                sql.Identifier(READER), sql.Identifier(name), sql.Literal(value)
            )
        )


def _set_password(conn: Connection, role: str, password: str) -> None:
    # Hashed by libpq here: the statement (and so a statement log) carries a SCRAM verifier, not the password.
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    conn.execute(sql.SQL("alter role {} login password {}").format(sql.Identifier(role), sql.Literal(verifier)))


def _reader_password_from_passfile(conn: Connection) -> list[str]:
    """Give a reader without password the one the admin's password file holds for it.

    The embedded server generates ``bi_reader``'s password with its own (customer_lens.local.warehouse) and
    its URLs name that file (``passfile``), so the reader can log in as soon as the role exists.
    """
    passfile = conn.info.get_parameters().get("passfile")
    if not passfile:
        return []
    password = warehouse.read_passfile(Path(passfile)).get(READER)
    unset = conn.execute("select rolpassword is null from pg_authid where rolname = %s", (READER,)).fetchone()
    if not password or not unset or not unset[0]:
        return []
    _set_password(conn, READER, password)
    return [f"password set for {READER} (generated, in {passfile})"]


def _grant_membership(conn: Connection, admin: str) -> list[str]:
    """Let a non-superuser admin act as loader and transformer (SET) and use what they own (INHERIT)."""
    changes = []
    for role in (LOADER, TRANSFORMER):
        held = conn.execute(
            "select 1 from pg_auth_members m where m.roleid = (select oid from pg_roles where rolname = %s) "
            "and m.member = (select oid from pg_roles where rolname = %s) and m.inherit_option and m.set_option",
            (role, admin),
        ).fetchone()
        if not held:
            conn.execute(
                sql.SQL("grant {} to {} with inherit true, set true").format(
                    sql.Identifier(role), sql.Identifier(admin)
                )
            )
            changes.append(f"{admin} may act as {role}")
    return changes


def _database_privileges(conn: Connection, database: str) -> None:
    """Nobody creates schemas or temporary tables in the warehouse database but the pipeline's roles."""
    db = sql.Identifier(database)
    roles = sql.SQL(", ").join(map(sql.Identifier, ROLES))
    pipeline = sql.SQL(", ").join(map(sql.Identifier, (LOADER, TRANSFORMER)))
    conn.execute(sql.SQL("revoke connect, create, temporary on database {} from public").format(db))
    conn.execute(sql.SQL("revoke create, temporary on database {} from {}").format(db, sql.Identifier(READER)))
    conn.execute(sql.SQL("grant connect on database {} to {}").format(db, roles))
    # Loader and transformer create their schemas (a new source's raw_<name>, the candidate, snapshots);
    # the loader lands files in temporary tables.
    conn.execute(sql.SQL("grant create, temporary on database {} to {}").format(db, pipeline))
    if _schema_exists(conn, "public"):
        conn.execute("revoke create on schema public from public")
    # What the loader creates later (a new source) is readable by the transformer without a rerun.
    conn.execute(
        sql.SQL("alter default privileges for role {} grant usage on schemas to {}").format(
            sql.Identifier(LOADER), sql.Identifier(TRANSFORMER)
        )
    )
    conn.execute(
        sql.SQL("alter default privileges for role {} grant select on tables to {}").format(
            sql.Identifier(LOADER), sql.Identifier(TRANSFORMER)
        )
    )


def _schema_exists(conn: Connection, schema: str) -> bool:
    return conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone() is not None


def _schemas_like(conn: Connection, pattern: str) -> list[str]:
    return [
        name
        for (name,) in conn.execute("select nspname from pg_namespace where nspname like %s order by 1", (pattern,))
    ]


def _hand_over(conn: Connection, schema: str, role: str) -> list[str]:
    """Make ``role`` the owner of ``schema`` and of the relations in it; returns what changed."""
    changes = []
    owner = one(conn.execute("select pg_get_userbyid(nspowner) from pg_namespace where nspname = %s", (schema,)))[0]
    if owner != role:
        conn.execute(sql.SQL("alter schema {} owner to {}").format(sql.Identifier(schema), sql.Identifier(role)))
        changes.append(f"{role} owns schema {schema}")
    # Sequences owned by a column (serial, identity) follow their table and cannot move alone.
    relations = conn.execute(
        """
        select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
          and c.relowner <> (select oid from pg_roles where rolname = %s)
          and not exists (
              select 1 from pg_depend d
              where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i'))
        order by c.relkind, c.relname
        """,
        (schema, role),
    ).fetchall()
    for name, kind in relations:
        conn.execute(
            sql.SQL("alter {} {} owner to {}").format(
                sql.SQL(_RELKIND_KEYWORD[kind]), sql.Identifier(schema, name), sql.Identifier(role)
            )
        )
    if relations:
        changes.append(f"{role} owns {len(relations)} relation(s) in {schema}")
    return changes


def _loader_schemas(conn: Connection) -> list[str]:
    changes = []
    for schema in _schemas_like(conn, RAW_PATTERN):
        changes += _hand_over(conn, schema, LOADER)
        ident, transformer = sql.Identifier(schema), sql.Identifier(TRANSFORMER)
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(ident, transformer))
        conn.execute(sql.SQL("grant select on all tables in schema {} to {}").format(ident, transformer))
        # Tables the admin itself adds there later (loader role switch off) stay readable too.
        conn.execute(
            sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(ident, transformer)
        )
    return changes


def _transformer_schemas(conn: Connection, candidate: str) -> list[str]:
    changes = []
    schemas = ([candidate] if _schema_exists(conn, candidate) else []) + _schemas_like(conn, SNAPSHOT_PATTERN)
    for schema in schemas:
        changes += _hand_over(conn, schema, TRANSFORMER)
    return changes


def _strip_reader(conn: Connection, candidate: str) -> None:
    """Take back anything the reader was ever granted outside ``analytics`` (declared state, not history)."""
    schemas = [AUDIT, candidate, *_schemas_like(conn, RAW_PATTERN), *_schemas_like(conn, SNAPSHOT_PATTERN)]
    reader = sql.Identifier(READER)
    for schema in schemas:
        if not _schema_exists(conn, schema):
            continue
        ident = sql.Identifier(schema)
        conn.execute(sql.SQL("revoke all on schema {} from {}").format(ident, reader))
        conn.execute(sql.SQL("revoke all on all tables in schema {} from {}").format(ident, reader))
        conn.execute(sql.SQL("revoke all on all sequences in schema {} from {}").format(ident, reader))


# -- the BI schema ---------------------------------------------------------------------------------------
def pii_columns(dbt_dir: Path | None = None) -> set[str]:
    """Names of the columns the dbt project marks ``meta: {pii: true}`` (in any model's yml)."""
    import yaml

    dbt_dir = dbt_dir or settings_mod.load().dbt_dir
    names: set[str] = set()
    for path in sorted((dbt_dir / "models").rglob("*.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        for model in document.get("models") or []:
            for column in model.get("columns") or []:
                meta = {**(column.get("meta") or {}), **((column.get("config") or {}).get("meta") or {})}
                if meta.get("pii") is True:
                    names.add(column["name"])
    return names


def exposed_pii(conn: Connection, schema: str = ANALYTICS, pii: Iterable[str] | None = None) -> list[str]:
    """``relation.column`` of every PII column in ``schema``: a dbt PII name, or a text column named e-mail."""
    pii = set(pii_columns() if pii is None else pii)
    rows = conn.execute(
        """
        select c.relname, a.attname, format_type(a.atttypid, null)
        from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f') and a.attnum > 0 and not a.attisdropped
        order by 1, 2
        """,
        (schema,),
    ).fetchall()
    return [
        f"{relation}.{column}"
        for relation, column, type_name in rows
        if column in pii or (_EMAIL_NAME.search(column) and type_name in _TEXT_TYPES)
    ]


def grant_reader(conn: Connection, schema: str = ANALYTICS, *, pii: Iterable[str] | None = None) -> int:
    """Make every view and table in ``schema`` readable by ``bi_reader`` — and nothing more.

    Called by the promotion inside its transaction, right after it recreates the views, as the user
    who owns them; the grants commit or roll back with the views. Refuses (``RoleError``) when a
    relation in ``schema`` exposes a PII column (``pii``: column names, default the dbt project's
    ``meta.pii`` columns; text columns named like an e-mail address always count), so a promotion that
    would leak them fails instead. Also sets default privileges, so a relation the same user creates
    in ``schema`` later is readable at once. Creates ``schema`` and the reader role when missing.
    Returns the number of relations the reader can select from.
    """
    reader = sql.Identifier(READER)
    ident = sql.Identifier(schema)
    with conn.transaction():
        leaks = exposed_pii(conn, schema, pii)
        if leaks:
            raise RoleError(
                f"{schema} exposes PII column(s) {', '.join(leaks)}: leave them out of the views; "
                f"nothing was granted to {READER}"
            )
        if _create_role(conn, READER, login=True):
            _apply_reader_settings(conn)
        conn.execute(sql.SQL("create schema if not exists {}").format(ident))
        conn.execute(sql.SQL("revoke create on schema {} from public, {}").format(ident, reader))
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(ident, reader))
        # Revoke first: whatever else the reader was granted there (INSERT, TRUNCATE, ...) goes.
        conn.execute(sql.SQL("revoke all on all tables in schema {} from {}").format(ident, reader))
        conn.execute(sql.SQL("grant select on all tables in schema {} to {}").format(ident, reader))
        conn.execute(
            sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(ident, reader)
        )
        readable: int = scalar(
            conn.execute(
                "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f') "
                "and has_table_privilege(%s, c.oid, 'select')",
                (schema, READER),
            )
        )
        return readable


# -- lens roles -----------------------------------------------------------------------------------------
def _describe(conn: Connection) -> list[str]:
    def login(role: str) -> str:
        (can_login,) = one(conn.execute("select rolcanlogin from pg_roles where rolname = %s", (role,)))
        return "login" if can_login else "no login (used through SET ROLE)"

    def owned(role: str) -> str:
        rows = conn.execute(
            "select nspname from pg_namespace where pg_get_userbyid(nspowner) = %s order by 1", (role,)
        ).fetchall()
        return ", ".join(name for (name,) in rows) or "nothing yet"

    (readable,) = one(
        conn.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f') "
            "and has_table_privilege(%s, c.oid, 'select')",
            (ANALYTICS, READER),
        )
    )
    return [
        f"roles       {READER}: {login(READER)}; reads {ANALYTICS} only ({readable} relations)",
        f"            {LOADER}: {login(LOADER)}; owns {owned(LOADER)}",
        f"            {TRANSFORMER}: {login(TRANSFORMER)}; reads raw_*, owns {owned(TRANSFORMER)}",
    ]


def apply(cfg: settings_mod.Settings | None = None) -> list[str]:
    """``lens roles``: put the roles in place on the configured warehouse; returns the lines to print.

    Besides :func:`ensure_roles` it creates the (empty) ``analytics`` schema if no promotion has yet,
    so a BI tool connected now finds its schema and sees the views from the first promotion on.
    """
    import psycopg

    cfg = cfg or settings_mod.load()
    warehouse.ensure_running(cfg)
    url = warehouse.url(cfg=cfg)
    with psycopg.connect(url) as conn:
        changes = ensure_roles(conn)
        if not _schema_exists(conn, ANALYTICS):
            grant_reader(conn)
            changes.append(f"created schema {ANALYTICS} (empty until the first promotion)")
        lines = _describe(conn)
        admin = scalar(conn.execute("select current_user"))
    lines += [f"            {change}" for change in changes] or ["            (no changes)"]
    for kind, variable in SESSION_ROLE_ENV.items():
        role = session_role(kind)
        acting = f"switch to {role}" if role else f"run as {admin}"
        lines.append(f"pipeline    {kind} connections {acting} ({variable})")
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 5432}{parts.path}"
    passfile = parse_qs(parts.query).get("passfile")
    secret = f"in {passfile[-1]}" if passfile else f"${PASSWORD_ENV[READER]}"
    lines.append(f"BI          connect as postgresql://{READER}@{where} (password: {secret})")
    return lines


def main() -> int:
    """``python -m customer_lens.roles``: :func:`apply`, printed; exit 1 with one line on failure."""
    from customer_lens.config import environment

    logging.basicConfig(level=logging.WARNING)
    environment.apply()
    try:
        for line in apply():
            print(line)
    except warehouse.WarehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
