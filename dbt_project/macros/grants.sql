{#- on-run-end hooks: the database's search_path and the dashboards' read-only role. -#}

{# make plain fact_events resolve in psql: the database's search_path includes analytics.
   A non-owner cannot alter the database: that warns instead of failing the run. #}
{% macro set_database_search_path() -%}
    {{ return(adapter.dispatch('set_database_search_path', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__set_database_search_path() -%}
    select 1
{%- endmacro %}

{% macro postgres__set_database_search_path() -%}
do $$
begin
    execute format('alter database %I set search_path to "$user", public, analytics', current_database());
exception when others then
    raise warning 'could not set the search_path of database %: %', current_database(), sqlerrm;
end
$$
{%- endmacro %}

{# the dashboards' role: login, read-only by default, CONNECT on this database but no TEMP,
   SELECT on schema analytics only (present and future tables, but the columns of
   dashboard_reader_hidden_columns), nothing in raw, staging or intermediate. Where the dbt user
   may manage roles it makes the role; elsewhere (AWS, and the local cluster, where the ETL role is
   no superuser) infra/warehouse/roles.sql made it. Roles are cluster-wide and several databases
   may run this at the same time, so creating and altering the role tolerates a concurrent twin. #}
{% macro grant_dashboard_reader() -%}
    {{ return(adapter.dispatch('grant_dashboard_reader', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__grant_dashboard_reader() -%}
    select 1
{%- endmacro %}

{% macro postgres__grant_dashboard_reader() -%}
{%- set role = var('dashboard_role') -%}
{%- set password = env_var('DASHBOARD_PGPASSWORD', 'clickstream_reader') | replace("'", "''") -%}
do $$
declare
    attempt integer;
begin
    -- where the dbt user may not manage roles, infra/warehouse/roles.sql made the role
    if exists (select 1 from pg_roles where rolname = current_user and (rolsuper or rolcreaterole)) then
        if not exists (select 1 from pg_roles where rolname = '{{ role }}') then
            begin
                execute format('create role %I login', '{{ role }}');
            exception
                when duplicate_object or unique_violation then null;  -- a concurrent run made it
                when insufficient_privilege then raise warning 'cannot create role {{ role }}: %', sqlerrm;
            end;
        end if;
        for attempt in 1..20 loop
            begin
                execute format(
                    'alter role %I with login nosuperuser nocreatedb nocreaterole password %L',
                    '{{ role }}', '{{ password }}'
                );
                execute format('alter role %I set search_path = analytics', '{{ role }}');
                execute format('alter role %I set default_transaction_read_only = on', '{{ role }}');
                exit;
            exception
                when insufficient_privilege or undefined_object then
                    raise warning 'cannot alter role {{ role }}: %', sqlerrm;
                    exit;
                when others then
                    -- a concurrent run altered the same role ("tuple concurrently updated"): retry
                    if attempt = 20 then
                        raise;
                    end if;
                    perform pg_sleep(0.05 * attempt);
            end;
        end loop;
    end if;
    if not exists (select 1 from pg_roles where rolname = '{{ role }}') then
        raise warning 'role {{ role }} does not exist: the dashboards cannot connect';
        return;
    end if;

    begin
        -- CONNECT for the reader, no TEMP (no scratch tables) and nothing for PUBLIC
        execute format('revoke all on database %I from public', current_database());
        execute format('revoke temporary on database %I from %I', current_database(), '{{ role }}');
        execute format('grant connect on database %I to %I', current_database(), '{{ role }}');
        if exists (select 1 from pg_namespace where nspname = 'raw') then
            revoke all on schema raw from public;
            execute format('revoke all on schema raw from %I', '{{ role }}');
            execute format('revoke all on all tables in schema raw from %I', '{{ role }}');
        end if;
        if exists (select 1 from pg_namespace where nspname = 'staging') then
            revoke all on schema staging from public;
        end if;
        if exists (select 1 from pg_namespace where nspname = 'intermediate') then
            revoke all on schema intermediate from public;
        end if;
        revoke create on schema public from public;
    exception when insufficient_privilege then
        raise warning 'could not revoke access outside analytics: %', sqlerrm;
    end;
    if exists (select 1 from pg_namespace where nspname = 'analytics') then
        execute format('grant usage on schema analytics to %I', '{{ role }}');
        execute format('revoke create on schema analytics from %I', '{{ role }}');
        execute format('grant select on all tables in schema analytics to %I', '{{ role }}');
        execute format(
            'alter default privileges in schema analytics grant select on tables to %I', '{{ role }}'
        );
        {%- for table_name in dashboard_reader_hidden_columns() %}
        {{ dashboard_reader_column_grants('analytics', table_name) | indent(8) }}
        {%- endfor %}
    end if;
end
$$
{%- endmacro %}
