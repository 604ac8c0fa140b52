"""Warehouse roles against a real PostgreSQL: what bi_reader, lens_loader and lens_transformer can and cannot do.

Each test builds a small warehouse world in its own database — raw, candidate, snapshot, audit and an
``analytics`` schema of views over the snapshot without the PII columns — then applies the roles and
acts as each role: ``bi_reader`` logs in (trust on the embedded server), loader and transformer are
reached the way the pipeline reaches them, ``-c role=...`` on a connection of the admin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import errors

from customer_lens import roles
from customer_lens.config import settings
from customer_lens.local import warehouse

REPO = Path(__file__).resolve().parents[1]
INIT_SCRIPT = REPO / "docker" / "warehouse-init" / "10-lens-databases.sh"

WORLD_DDL = """
create schema raw_sales;
create table raw_sales.customers (customer_id bigint primary key, email text, company text);
insert into raw_sales.customers values (1, 'ann@example.com', 'Acme'), (2, 'bob@example.com', 'Bolt');
create table raw_sales._batches (batch_no bigint generated always as identity primary key, entity text);
insert into raw_sales._batches (entity) values ('customers');

create schema analytics_candidate;
create table analytics_candidate.customers (customer_id bigint, customer_name text, email text, revenue numeric);
insert into analytics_candidate.customers values (1, 'Acme', 'ann@example.com', 10);

create schema lens_snapshot_1;
create table lens_snapshot_1.customers (customer_id bigint, customer_name text, email text, revenue numeric);
insert into lens_snapshot_1.customers values (1, 'Acme', 'ann@example.com', 10), (2, 'Bolt', 'bob@example.com', 20);

create schema lens_audit;
create table lens_audit.baseline_kpi_values (baseline_no integer, kpi text, value numeric);
insert into lens_audit.baseline_kpi_values values (1, 'revenue', 30);

-- What the promotion builds: views over the current snapshot, PII left out, owned by the admin.
create schema analytics;
create view analytics.customers as select customer_id, revenue from lens_snapshot_1.customers;
create view analytics.baseline_kpis as select baseline_no, kpi, value from lens_audit.baseline_kpi_values;
-- A mart materialised as a table in analytics (grant_reader covers tables as well).
create table analytics.kpi_definitions (kpi text primary key, meaning text);
insert into analytics.kpi_definitions values ('revenue', 'net sales');
"""

LENS_SCHEMAS = ("raw_sales", "analytics_candidate", "lens_snapshot_1", "lens_audit", "analytics")


@dataclass(frozen=True)
class World:
    url: str  # the admin's (superuser's) URL of the world's database

    def as_user(self, user: str) -> str:
        parts = urlsplit(self.url)
        netloc = f"{user}@{parts.hostname}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def admin(self, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, **kwargs)

    def reader(self) -> psycopg.Connection:
        return psycopg.connect(self.as_user(roles.READER), autocommit=True)

    def acting_as(self, kind: str, monkeypatch: pytest.MonkeyPatch, role: str) -> psycopg.Connection:
        """A connection the way the pipeline's ``kind`` part opens it with the role switch on."""
        monkeypatch.setenv(roles.SESSION_ROLE_ENV[kind], role)
        return psycopg.connect(self.url, autocommit=True, options=f"-c TimeZone=UTC{roles.connect_options(kind)}")


def _build_world(url: str, *, apply_roles: bool) -> World:
    world = World(url)
    with world.admin() as conn:
        conn.execute(WORLD_DDL)
    if apply_roles:
        for _ in range(2):  # twice: the second run must not change anything (tested on its own below)
            with world.admin() as conn:
                roles.ensure_roles(conn, passwords={})
                roles.grant_reader(conn)
    return world


@pytest.fixture
def make_world(make_database: Callable[[str], str]) -> Callable[[str], World]:
    """A fresh world without roles applied."""
    return lambda name: _build_world(make_database(name), apply_roles=False)


@pytest.fixture(scope="module")
def shared_world(make_database: Callable[[str], str]) -> World:
    """A world with the roles applied, for the tests that change nothing in it."""
    return _build_world(make_database("roles_shared"), apply_roles=True)


@pytest.fixture
def world(make_database: Callable[[str], str]) -> World:
    """A world with the roles applied, for one test that changes it."""
    return _build_world(make_database("roles_world"), apply_roles=True)


def denied(conn: psycopg.Connection, statement: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def acl_state(url: str) -> list[tuple]:
    """Owners, ACL entries and default privileges of the world's schemas, relations and database."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            """
            select 'schema', n.nspname, '', pg_get_userbyid(n.nspowner),
                   coalesce((select array_agg(a.grantor::regrole || ':' || a.grantee::regrole || ':' || a.privilege_type
                                               order by 1)
                             from aclexplode(n.nspacl) a), '{}')
            from pg_namespace n where n.nspname = any(%(schemas)s) or n.nspname = 'public'
            union all
            select 'relation', n.nspname, c.relname, pg_get_userbyid(c.relowner),
                   coalesce((select array_agg(a.grantor::regrole || ':' || a.grantee::regrole || ':' || a.privilege_type
                                               order by 1)
                             from aclexplode(c.relacl) a), '{}')
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = any(%(schemas)s)
            union all
            select 'database', d.datname, '', pg_get_userbyid(d.datdba),
                   coalesce((select array_agg(a.grantor::regrole || ':' || a.grantee::regrole || ':' || a.privilege_type
                                               order by 1)
                             from aclexplode(d.datacl) a), '{}')
            from pg_database d where d.datname = current_database()
            union all
            select 'default', coalesce(n.nspname, ''), d.defaclobjtype::text, pg_get_userbyid(d.defaclrole),
                   coalesce((select array_agg(a.grantor::regrole || ':' || a.grantee::regrole || ':' || a.privilege_type
                                               order by 1)
                             from aclexplode(d.defaclacl) a), '{}')
            from pg_default_acl d left join pg_namespace n on n.oid = d.defaclnamespace
            order by 1, 2, 3
            """,
            {"schemas": list(LENS_SCHEMAS)},
        ).fetchall()


# -- idempotence --------------------------------------------------------------------------------------
def test_ensure_roles_and_grant_reader_are_idempotent(make_world: Callable[[str], World]) -> None:
    world = make_world("roles_idempotent")
    with world.admin() as conn:
        first = roles.ensure_roles(conn, passwords={})
        roles.grant_reader(conn)
    # Objects the admin created before the roles existed were handed to their roles.
    assert "lens_loader owns schema raw_sales" in first
    assert "lens_transformer owns schema lens_snapshot_1" in first
    assert "lens_transformer owns schema analytics_candidate" in first
    state = acl_state(world.url)

    with world.admin() as conn:
        second = roles.ensure_roles(conn, passwords={})
        assert roles.grant_reader(conn) == 3
        assert roles.grant_reader(conn) == 3
    assert second == []
    assert acl_state(world.url) == state

    with world.admin() as conn:
        owners = dict(
            conn.execute(
                "select c.oid::regclass::text, pg_get_userbyid(c.relowner) from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace where n.nspname = any(%s) and c.relkind in ('r', 'S')",
                (["raw_sales", "lens_snapshot_1"],),
            ).fetchall()
        )
    # The identity sequence followed its table; the table kept its data.
    assert owners == {
        "raw_sales.customers": "lens_loader",
        "raw_sales._batches": "lens_loader",
        "raw_sales._batches_batch_no_seq": "lens_loader",
        "lens_snapshot_1.customers": "lens_transformer",
    }


# -- bi_reader -------------------------------------------------------------------------------------
def test_bi_reader_reads_the_analytics_views(shared_world: World) -> None:
    with shared_world.reader() as conn:
        assert conn.execute("select current_user").fetchone()[0] == "bi_reader"
        # search_path is analytics: BI tools' unqualified names land there.
        assert conn.execute("select customer_id, revenue from customers order by 1").fetchall() == [(1, 10), (2, 20)]
        assert conn.execute("select kpi, value from analytics.baseline_kpis").fetchall() == [("revenue", 30)]
        assert conn.execute("select kpi from analytics.kpi_definitions").fetchall() == [("revenue",)]


def test_bi_reader_cannot_read_outside_analytics(shared_world: World) -> None:
    with shared_world.reader() as conn:
        denied(conn, "select * from raw_sales.customers")
        denied(conn, "select * from raw_sales._batches")
        denied(conn, "select * from analytics_candidate.customers")
        denied(conn, "select * from lens_snapshot_1.customers")
        denied(conn, "select * from lens_audit.baseline_kpi_values")

    # The same, as the catalog sees it, for every relation and schema of the world.
    with shared_world.admin() as conn:
        rows = conn.execute(
            """
            select n.nspname, c.relname,
                   has_table_privilege('bi_reader', c.oid, 'select'),
                   has_table_privilege('bi_reader', c.oid, 'insert, update, delete, truncate, references, trigger')
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm', 'f')
            """,
            (list(LENS_SCHEMAS),),
        ).fetchall()
        assert rows
        for schema, relation, can_select, can_write in rows:
            assert can_select == (schema == "analytics"), f"{schema}.{relation}"
            assert not can_write, f"{schema}.{relation}"
        for schema in LENS_SCHEMAS:
            usage = conn.execute("select has_schema_privilege('bi_reader', %s, 'usage')", (schema,)).fetchone()[0]
            assert usage == (schema == "analytics"), schema
        for schema in (*LENS_SCHEMAS, "public"):
            create = conn.execute("select has_schema_privilege('bi_reader', %s, 'create')", (schema,)).fetchone()[0]
            assert not create, schema


def test_bi_reader_cannot_write_anywhere(shared_world: World) -> None:
    with shared_world.reader() as conn:
        # Its sessions are read-only by default ...
        with pytest.raises(errors.ReadOnlySqlTransaction):
            conn.execute("insert into analytics.kpi_definitions values ('x', 'y')")
        # ... and the privileges hold when it switches that off.
        conn.execute("set default_transaction_read_only = off")
        denied(conn, "insert into analytics.customers (customer_id, revenue) values (3, 1)")
        denied(conn, "update analytics.customers set revenue = 0")
        denied(conn, "delete from analytics.customers")
        denied(conn, "insert into analytics.kpi_definitions values ('x', 'y')")
        denied(conn, "update analytics.kpi_definitions set meaning = ''")
        denied(conn, "delete from analytics.kpi_definitions")
        denied(conn, "truncate analytics.kpi_definitions")
        denied(conn, "create table analytics.mine (a int)")
        denied(conn, "create view analytics.mine as select 1 as a")
        denied(conn, "create table public.mine (a int)")
        denied(conn, "create table mine (a int)")
        denied(conn, "create schema mine")
        denied(conn, "create temporary table mine (a int)")
        denied(conn, "insert into raw_sales.customers values (9, 'x@example.com', 'X')")
        denied(conn, "drop view analytics.customers")
        denied(conn, "alter view analytics.customers rename to people")


def test_no_email_or_name_column_in_analytics(shared_world: World) -> None:
    pii = roles.pii_columns(REPO / "dbt_project")
    assert {"customer_name", "email", "requester_email", "reference_value"} <= pii
    with shared_world.reader() as conn:
        visible = conn.execute(
            "select table_name, column_name from information_schema.columns where table_schema = 'analytics'"
        ).fetchall()
        assert ("customers", "customer_id") in visible
        assert not [column for _, column in visible if column in pii or "mail" in column]
        with pytest.raises(errors.UndefinedColumn):
            conn.execute("select email from analytics.customers")


def test_grant_reader_refuses_a_promotion_exposing_pii(shared_world: World) -> None:
    with psycopg.connect(shared_world.url) as conn:
        conn.execute(
            "create view analytics.customer_contacts as select customer_id, email from lens_snapshot_1.customers"
        )
        with pytest.raises(roles.RoleError, match=r"customer_contacts\.email"):
            roles.grant_reader(conn)
        conn.rollback()  # what the promotion's transaction does on the error: the view never appears
    with shared_world.reader() as conn, pytest.raises(errors.UndefinedTable):
        conn.execute("select * from analytics.customer_contacts")

    # Text columns named like an e-mail address count even when dbt does not flag them; flags do not.
    with psycopg.connect(shared_world.url) as conn:
        conn.execute(
            "create view analytics.contact_flags as select customer_id, email is not null as has_email, "
            "email as billing_e_mail from lens_snapshot_1.customers"
        )
        assert roles.exposed_pii(conn, pii=()) == ["contact_flags.billing_e_mail"]
        conn.rollback()


# -- promotions ------------------------------------------------------------------------------------
def test_a_new_promotion_is_readable_after_grant_reader(world: World) -> None:
    # The promotion: one transaction recreates the views over the new snapshot and calls grant_reader.
    with psycopg.connect(world.url) as conn:
        conn.execute(
            """
            create schema lens_snapshot_2;
            create table lens_snapshot_2.customers (like lens_snapshot_1.customers);
            insert into lens_snapshot_2.customers values (1, 'Acme', 'ann@example.com', 11);
            create table lens_snapshot_2.complaint_trends (month date, complaints integer);
            insert into lens_snapshot_2.complaint_trends values ('2026-10-01', 4);
            drop view analytics.customers;
            create view analytics.customers as select customer_id, revenue from lens_snapshot_2.customers;
            create view analytics.complaint_trends as select month, complaints from lens_snapshot_2.complaint_trends;
            """
        )
        assert roles.grant_reader(conn) == 4
    with world.reader() as conn:
        assert conn.execute("select customer_id, revenue from analytics.customers").fetchall() == [(1, 11)]
        assert conn.execute("select complaints from analytics.complaint_trends").fetchall() == [(4,)]
        denied(conn, "select * from lens_snapshot_2.customers")


def test_default_privileges_cover_a_view_created_after_grant_reader(world: World) -> None:
    with world.admin() as conn:
        conn.execute(
            "create view analytics.revenue_total as select sum(revenue) as revenue from lens_snapshot_1.customers"
        )
    with world.reader() as conn:
        assert conn.execute("select revenue from analytics.revenue_total").fetchone() == (30,)


def test_a_reader_with_broader_privileges_is_refused(world: World) -> None:
    with world.admin() as conn:
        conn.execute("grant pg_read_all_data to bi_reader")
        try:
            with pytest.raises(roles.RoleError, match="membership in pg_read_all_data"):
                roles.ensure_roles(conn, passwords={})
        finally:
            conn.execute("revoke pg_read_all_data from bi_reader")


# -- loader and transformer --------------------------------------------------------------------------
def test_loader_writes_raw_and_nothing_else(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    with world.acting_as("loader", monkeypatch, roles.LOADER) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "lens_loader"
        conn.execute("insert into raw_sales.customers values (3, 'cy@example.com', 'Cyan')")
        conn.execute("delete from raw_sales.customers where customer_id = 3")
        conn.execute("insert into raw_sales._batches (entity) values ('orders')")
        conn.execute("create table raw_sales.orders (order_id bigint, customer_id bigint)")
        conn.execute("insert into raw_sales.orders values (1, 1)")
        conn.execute("create temporary table landing (line text)")  # file loads land in temp tables
        conn.execute("create schema raw_crm")  # a new source
        conn.execute("create table raw_crm.accounts (account_id bigint)")
        denied(conn, "select * from analytics_candidate.customers")
        denied(conn, "select * from lens_snapshot_1.customers")
        denied(conn, "select * from lens_audit.baseline_kpi_values")
        denied(conn, "select * from analytics.customers")
        denied(conn, "create table analytics_candidate.x (a int)")
        denied(conn, "create table analytics.x (a int)")
        denied(conn, "create table public.x (a int)")


def test_transformer_reads_raw_and_writes_candidate_and_snapshots(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with world.acting_as("loader", monkeypatch, roles.LOADER) as conn:
        conn.execute("create table raw_sales.orders (order_id bigint)")
        conn.execute("insert into raw_sales.orders values (7)")
        conn.execute("create schema raw_crm")
        conn.execute("create table raw_crm.accounts (account_id bigint)")
    with world.acting_as("transformer", monkeypatch, roles.TRANSFORMER) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "lens_transformer"
        assert conn.execute("select count(*) from raw_sales.customers").fetchone() == (2,)
        # What the loader creates later is readable without running ensure_roles again.
        assert conn.execute("select order_id from raw_sales.orders").fetchall() == [(7,)]
        assert conn.execute("select count(*) from raw_crm.accounts").fetchone() == (0,)
        denied(conn, "insert into raw_sales.customers values (3, 'cy@example.com', 'Cyan')")
        denied(conn, "delete from raw_sales.customers")
        denied(conn, "truncate raw_sales.orders")
        denied(conn, "create table raw_sales.mine (a int)")
        denied(conn, "drop table raw_sales.orders")
        # dbt's work: (re)build models in the candidate schema; the promotion's: snapshot schemas.
        conn.execute("create schema if not exists analytics_candidate")
        conn.execute("drop table analytics_candidate.customers")
        conn.execute("create table analytics_candidate.customers as select customer_id from raw_sales.customers")
        conn.execute("create view analytics_candidate.stg_orders as select * from raw_sales.orders")
        conn.execute("create schema lens_snapshot_2")
        conn.execute("create table lens_snapshot_2.customers as table analytics_candidate.customers")
        conn.execute("insert into lens_snapshot_1.customers values (3, 'Cyan', 'cy@example.com', 5)")
        denied(conn, "select * from lens_audit.baseline_kpi_values")
        denied(conn, "create table analytics.x (a int)")
        denied(conn, "drop view analytics.customers")
        denied(conn, "create table public.x (a int)")


def test_session_roles_are_on_by_default_and_must_be_plain_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LENS_LOADER_ROLE", raising=False)
    monkeypatch.delenv("LENS_TRANSFORMER_ROLE", raising=False)
    assert roles.connect_options("loader") == " -c role=lens_loader"
    assert roles.session_role("transformer") == "lens_transformer"
    monkeypatch.setenv("LENS_LOADER_ROLE", "")  # switched off: the pipeline runs as its connection user
    assert roles.connect_options("loader") == ""
    monkeypatch.setenv("LENS_LOADER_ROLE", "lens_loader -c search_path=evil")
    with pytest.raises(roles.RoleError, match="LENS_LOADER_ROLE"):
        roles.connect_options("loader")


def test_prepare_session_role_puts_the_roles_in_place_when_needed(
    make_world: Callable[[str], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's first load or build on a warehouse hands the admin-made schemas to the roles."""
    monkeypatch.delenv("LENS_LOADER_ROLE", raising=False)
    monkeypatch.delenv("LENS_TRANSFORMER_ROLE", raising=False)
    world = make_world("roles_prepare")  # raw_sales, analytics_candidate, ... all created by the admin

    def owners(conn: psycopg.Connection, schema: str) -> set[str]:
        return {
            owner
            for (owner,) in conn.execute(
                "select pg_get_userbyid(nspowner) from pg_namespace where nspname = %(s)s union "
                "select pg_get_userbyid(c.relowner) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = %(s)s and c.relkind in ('r', 'v', 'S')",
                {"s": schema},
            )
        }

    with world.admin() as conn:
        assert owners(conn, "raw_sales") == {"postgres"}
        assert roles.prepare_session_role(conn, "loader") == "lens_loader"
        assert owners(conn, "raw_sales") == {"lens_loader"}
        # A table the admin adds by hand in the candidate schema is handed over before the next build.
        assert roles.prepare_session_role(conn, "transformer") == "lens_transformer"
        conn.execute("create table analytics_candidate.by_hand (a int)")
        assert "postgres" in owners(conn, "analytics_candidate")
        assert roles.prepare_session_role(conn, "transformer") == "lens_transformer"
        assert owners(conn, "analytics_candidate") == {"lens_transformer"}
        changes_before = roles.ensure_roles(conn, passwords={})
        assert changes_before == []  # prepare left the declared state behind
    with world.acting_as("loader", monkeypatch, roles.LOADER) as conn:
        conn.execute("insert into raw_sales.customers values (3, 'cy@example.com', 'Cyan')")
    # A role the environment names but nobody created is an error that says what to do.
    monkeypatch.setenv("LENS_LOADER_ROLE", "etl_loader")
    with world.admin() as conn, pytest.raises(roles.RoleError, match=r"etl_loader \(LENS_LOADER_ROLE\) does not exist"):
        roles.prepare_session_role(conn, "loader")
    monkeypatch.setenv("LENS_LOADER_ROLE", "")
    with world.admin() as conn:
        assert roles.prepare_session_role(conn, "loader") is None


# -- the docker-compose path: a non-superuser pipeline user --------------------------------------------
def _psql_dir() -> Path:
    return Path(warehouse.client_binary("psql")).parent


def test_docker_init_then_roles_as_the_non_superuser_pipeline_user(tmp_path: Path) -> None:
    """docker/warehouse-init creates the pipeline user; that user (not a superuser) manages the roles."""
    server = warehouse.EmbeddedServer(tmp_path / "warehouse", database="postgres")
    server.start()
    try:
        port = server.port
        env = {
            **os.environ,
            "PATH": f"{_psql_dir()}:{os.environ['PATH']}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(port),
            "PGPASSFILE": str(server.passfile),
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": "postgres",
            "LENS_WAREHOUSE_PASSWORD": "pipeline-secret",
        }
        for _ in range(2):  # the image runs it once; it is safe to run again
            done = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr
        superuser = server.url("lens")
        lens = f"postgresql://lens:pipeline-secret@127.0.0.1:{port}/lens"
        with psycopg.connect(superuser, autocommit=True) as conn:
            assert conn.execute("select rolsuper, rolcreaterole from pg_roles where rolname = 'lens'").fetchone() == (
                False,
                True,
            )
            assert {name for (name,) in conn.execute("select datname from pg_database")} >= {"lens", "sales_src"}

        # The pipeline ran before the roles existed: its raw schema and audit table are the admin's.
        with psycopg.connect(lens, autocommit=True) as conn:
            conn.execute("create schema raw_sales; create table raw_sales.customers (customer_id bigint, email text)")
            conn.execute("insert into raw_sales.customers values (1, 'ann@example.com')")
            conn.execute("create schema lens_audit; create table lens_audit.baselines (baseline_no integer)")
        # A reader created by somebody else cannot be managed by the pipeline user: it says so.
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute("create role bi_reader login")
        with (
            psycopg.connect(lens) as conn,
            pytest.raises(roles.RoleError, match="cannot manage the Customer Lens roles"),
        ):
            roles.ensure_roles(conn, passwords={})
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute("drop role bi_reader")

        # What the airflow-init service runs, as the pipeline user, passwords from its environment.
        init = subprocess.run(
            [sys.executable, "-m", "customer_lens.roles"],
            env={
                **os.environ,
                "LENS_WAREHOUSE_URL": lens,
                "LENS_BI_READER_PASSWORD": "reader-secret",
                "LENS_LOADER_PASSWORD": "loader-secret",
            },
            capture_output=True,
            text=True,
            check=False,
        )
        assert init.returncode == 0, init.stderr
        for change in (
            "created role bi_reader",
            "lens may act as lens_loader",
            "lens_loader owns schema raw_sales",
            "password set for bi_reader",
            "created schema analytics",
        ):
            assert change in init.stdout

        with psycopg.connect(superuser, autocommit=True) as conn:
            logins = {
                name: (can_login, hashed)
                for name, can_login, hashed in conn.execute(
                    "select rolname, rolcanlogin, rolpassword like 'SCRAM-SHA-256$%' from pg_authid "
                    "where rolname in ('bi_reader', 'lens_loader', 'lens_transformer')"
                )
            }
        assert logins == {"bi_reader": (True, True), "lens_loader": (True, True), "lens_transformer": (False, None)}

        # Loader and transformer, by role switch on the pipeline user's connections.
        with psycopg.connect(lens, autocommit=True, options="-c role=lens_loader") as conn:
            conn.execute("create table raw_sales.orders (order_id bigint)")
        with psycopg.connect(lens, autocommit=True, options="-c role=lens_transformer") as conn:
            conn.execute("create schema lens_snapshot_1")
            conn.execute("create table lens_snapshot_1.customers as select customer_id, email from raw_sales.customers")
        # The promotion, as the pipeline user: views over the transformer's snapshot, then grant_reader.
        with psycopg.connect(lens) as conn:
            conn.execute("create view analytics.customers as select customer_id from lens_snapshot_1.customers")
            assert roles.grant_reader(conn) == 1
        with psycopg.connect(f"postgresql://bi_reader:reader-secret@127.0.0.1:{port}/lens", autocommit=True) as conn:
            assert conn.execute("select customer_id from analytics.customers").fetchall() == [(1,)]
            denied(conn, "select * from lens_snapshot_1.customers")
            denied(conn, "select * from raw_sales.customers")
            denied(conn, "select * from lens_audit.baselines")

        with psycopg.connect(lens) as conn:
            assert roles.ensure_roles(conn, passwords={}) == []
    finally:
        server.stop()


# -- lens roles ------------------------------------------------------------------------------------
def test_apply_reports_the_roles(shared_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*roles.PASSWORD_ENV.values(), *roles.SESSION_ROLE_ENV.values()):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LENS_WAREHOUSE_URL", shared_world.url)
    lines = roles.apply(settings.load())
    text = "\n".join(lines)
    assert "bi_reader: login; reads analytics only (3 relations)" in text
    assert "lens_loader: no login (used through SET ROLE); owns raw_sales" in text
    assert (
        "lens_transformer: no login (used through SET ROLE); reads raw_*, owns analytics_candidate, lens_snapshot_1"
        in text
    )
    assert "(no changes)" in text
    parts = urlsplit(shared_world.url)
    assert f"connect as postgresql://bi_reader@{parts.hostname}:{parts.port}{parts.path}" in text
    assert "loader connections switch to lens_loader (LENS_LOADER_ROLE)" in text
    monkeypatch.setenv("LENS_TRANSFORMER_ROLE", "")
    assert f"transformer connections run as {parts.username} (LENS_TRANSFORMER_ROLE)" in "\n".join(
        roles.apply(settings.load())
    )
