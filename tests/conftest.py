"""Shared fixtures: a real PostgreSQL server for the whole session and fresh databases on it.

By default the session starts its own embedded server in a temporary directory (the same code
path as ``lens warehouse start``). Set ``LENS_TEST_PG_URL`` to run the suite against another
server instead (a superuser URL; the tests create and drop their own databases there).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from customer_lens.config import environment
from customer_lens.local import warehouse

REPO = Path(__file__).resolve().parents[1]
environment.apply()


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """libpq URL (database ``postgres``) of a running server where tests may create databases."""
    external = os.environ.get("LENS_TEST_PG_URL")
    if external:
        yield external
        return
    server = warehouse.EmbeddedServer(tmp_path_factory.mktemp("pg") / "warehouse")
    server.start()
    try:
        yield server.url("postgres")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def make_database(pg_server_url: str) -> Callable[[str], str]:
    """Factory: ``make_database("name")`` → URL of a new, empty database (recreated if it exists)."""

    def _make(name: str) -> str:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("create database {} template template0 encoding 'UTF8'").format(sql.Identifier(name)))
        return warehouse.with_database(pg_server_url, name)

    return _make
