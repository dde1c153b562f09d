-- The warehouse's database and roles, run by the bootstrap as the postgres superuser:
--   psql -v dbname=... -v loader_role=... -v loader_password=... -v reader_role=... -v reader_password=... -f roles.sql
-- Idempotent: a re-run (or a rotated password in Secrets Manager) re-applies the passwords.
-- The loader role owns the database (it creates schemas raw/staging/intermediate/analytics) but is
-- neither superuser nor CREATEROLE; the reader role may only read schema analytics.
\set ON_ERROR_STOP on

select format('create role %I', :'loader_role')
where not exists (select 1 from pg_roles where rolname = :'loader_role') \gexec
select format('alter role %I with login nosuperuser nocreatedb nocreaterole noreplication password %L',
              :'loader_role', :'loader_password') \gexec

select format('create role %I', :'reader_role')
where not exists (select 1 from pg_roles where rolname = :'reader_role') \gexec
select format('alter role %I with login nosuperuser nocreatedb nocreaterole noreplication password %L',
              :'reader_role', :'reader_password') \gexec
select format('alter role %I set search_path = analytics', :'reader_role') \gexec
select format('alter role %I set default_transaction_read_only = on', :'reader_role') \gexec

select format('create database %I owner %I encoding %L template template0', :'dbname', :'loader_role', 'UTF8')
where not exists (select 1 from pg_database where datname = :'dbname') \gexec
select format('alter database %I owner to %I', :'dbname', :'loader_role') \gexec
select format('revoke all on database %I from public', :'dbname') \gexec
select format('grant connect on database %I to %I', :'dbname', :'reader_role') \gexec
select format('alter database %I set search_path to "$user", public, analytics', :'dbname') \gexec

\connect :dbname
-- as the loader from here on: the schemas it creates are its own
select format('set role %I', :'loader_role') \gexec
revoke create on schema public from public;
create schema if not exists analytics;
select format('grant usage on schema analytics to %I', :'reader_role') \gexec
select format('grant select on all tables in schema analytics to %I', :'reader_role') \gexec
select format('alter default privileges in schema analytics grant select on tables to %I', :'reader_role') \gexec
-- the quarantine's raw lines (whole events: ids, the client's IP prefix) stay out of the reader's
-- reach: every column of analytics.rejected_events but payload (dbt's grants keep it so)
select format('revoke select on analytics.rejected_events from %I', :'reader_role')
where to_regclass('analytics.rejected_events') is not null \gexec
select format('grant select (%s) on analytics.rejected_events to %I',
              string_agg(quote_ident(attname), ', ' order by attnum), :'reader_role')
from pg_attribute
where attrelid = to_regclass('analytics.rejected_events') and attnum > 0 and not attisdropped
  and attname <> 'payload'
having count(*) > 0 \gexec
reset role;
