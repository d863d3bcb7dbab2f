#!/bin/sh
# PostgreSQL's roles for docker-compose.yml, made once, on the first start of an empty
# postgres-data volume (the image runs /docker-entrypoint-initdb.d/*.sh as its superuser).
# Every password comes from .env (ops/compose_env.py writes it); psql reads them with
# \getenv, so none is on a command line. Nobody but this script uses the superuser.
#   goalkeeper   owns the goalkeeper database and its schema; not a superuser: it may make
#                roles (agents' logins), nothing else beyond its own database
#   worker, api  the workers' and the API's logins (goalkeeper_worker): rows, no DDL
#   temporal     owns Temporal's two databases, which temporal-sql-tool creates
set -eu
: "${GOALKEEPER_OWNER_DB_PASSWORD:?}" "${GOALKEEPER_WORKER_DB_PASSWORD:?}"
: "${GOALKEEPER_API_DB_PASSWORD:?}" "${TEMPORAL_DB_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres <<'SQL'
\getenv owner_password GOALKEEPER_OWNER_DB_PASSWORD
\getenv worker_password GOALKEEPER_WORKER_DB_PASSWORD
\getenv api_password GOALKEEPER_API_DB_PASSWORD
\getenv temporal_password TEMPORAL_DB_PASSWORD
CREATE ROLE goalkeeper LOGIN NOSUPERUSER NOCREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
CREATE ROLE goalkeeper_worker NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
CREATE ROLE worker LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
    PASSWORD :'worker_password' IN ROLE goalkeeper_worker;
CREATE ROLE api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
    PASSWORD :'api_password' IN ROLE goalkeeper_worker;
CREATE ROLE temporal LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOBYPASSRLS
    PASSWORD :'temporal_password';
CREATE DATABASE goalkeeper OWNER goalkeeper;
-- Only Goalkeeper's roles connect to its database (agents' logins are granted by the
-- schema, as goalkeeper_agent).
REVOKE ALL ON DATABASE goalkeeper FROM PUBLIC;
GRANT CONNECT ON DATABASE goalkeeper TO goalkeeper_worker;
SQL
