#!/usr/bin/env bash
# Warehouse bootstrap, run once by the postgres image when its data directory is empty
# (/docker-entrypoint-initdb.d, as the superuser). It creates the pipeline's login role and the
# databases it works in, nothing more: bi_reader, lens_loader and lens_transformer are created by
# `python -m customer_lens.roles` (the airflow-init service) as that pipeline user, so the roles are
# declared in one place (plugins/customer_lens/roles.py) and the pipeline user administers them.
#
# The pipeline user gets CREATEROLE (on PostgreSQL 16+ that covers only roles it creates itself) and
# owns its databases; it is not a superuser.
#
# No `set -u` and no `exit`: the image sources a script that is not executable.
set -eo pipefail

: "${LENS_WAREHOUSE_PASSWORD:?set LENS_WAREHOUSE_PASSWORD (see .env.example)}"

psql --no-psqlrc -v ON_ERROR_STOP=1 \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" \
    -v lens_user="${LENS_WAREHOUSE_USER:-lens}" \
    -v lens_password="${LENS_WAREHOUSE_PASSWORD}" \
    -v lens_db="${LENS_WAREHOUSE_DB:-lens}" \
    -v sales_db="${LENS_SALES_SRC_DB:-sales_src}" <<'SQL'
select format('create role %I login createrole password %L', :'lens_user', :'lens_password')
where not exists (select from pg_roles where rolname = :'lens_user')
\gexec
-- Each database is owned by the pipeline user: it can then run the role grants on it.
select format('create database %I owner %I encoding %L template template0', name, :'lens_user', 'UTF8')
from (values (:'lens_db'), (:'sales_db')) as wanted (name)
where not exists (select from pg_database where datname = name)
\gexec
SQL
