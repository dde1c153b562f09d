-- The loader's tables in schema raw. Applied by the loader (loader/schema.py) when the database
-- holds another version of this file, or the month changed: every statement is idempotent
-- (create ... if not exists / add column if not exists).
create schema if not exists raw;

-- No JIT compilation for this role's sessions (the loader, every dbt build, the checks, forget):
-- a cycle's statements read a few thousand rows, but the planner, which cannot know how many
-- loads an array from an init plan holds, costs them at hundreds of thousands, and compiled the
-- contract check's expressions with inlining and optimisation in each parallel worker: 2.5 s of
-- a 2.6 s statement, five such statements a cycle (at 10 days of 1 M events a day; 58 ms
-- without). A role may set its own defaults; new sessions (dbt's) get it.
do $jit_off$
begin
    if not exists (
        select from pg_roles where rolname = current_user and 'jit=off' = any(rolconfig)
    ) then
        execute format('alter role %I set jit = off', current_user);
    end if;
end
$jit_off$;

-- Monthly range partitions (PostgreSQL declarative partitioning) of a table partitioned by
-- range on a date or timestamptz column: raw.clickstream_events by loaded_at, and the marts dbt
-- partitions (fact_events by event_date, macro partition_by_month). A partition is named
-- <base>_<yyyymm>_<parent oid>, which stays unique when dbt renames a parent on a full build;
-- the default partition takes rows of months that have none yet. Each call creates this month's
-- and next month's partitions ahead of their rows; with move_default_rows it also moves the rows
-- in the default partition into partitions of their months (a full build inserts into the
-- default, then moves each month once, before the indexes exist). Month boundaries are UTC.
-- Returns the number of partitions created.
create or replace function raw.ensure_month_partitions(
    parent regclass, part_column text, base text, move_default_rows boolean
) returns integer
language plpgsql
set timezone = 'UTC'
as $ensure_month_partitions$
declare
    parent_schema text;
    month_expression text;
    default_name text;
    default_part regclass;
    default_has_rows boolean;
    months date[];
    month date;
    part_name text;
    created integer := 0;
    has_rows boolean;
begin
    select namespace.nspname into parent_schema
    from pg_class as class
    inner join pg_namespace as namespace on class.relnamespace = namespace.oid
    where class.oid = parent;
    -- UTC months (the function's timezone) of a date or timestamptz column
    month_expression := format('date_trunc(''month'', %I)::date', part_column);
    select inherits.inhrelid::regclass into default_part
    from pg_inherits as inherits
    inner join pg_class as child on inherits.inhrelid = child.oid
    where inherits.inhparent = parent and pg_get_expr(child.relpartbound, child.oid) = 'DEFAULT';
    default_name := format('%s_default_%s', base, parent::oid);
    if default_part is null then
        execute format('create table %I.%I partition of %s default', parent_schema, default_name, parent);
        default_part := format('%I.%I', parent_schema, default_name)::regclass;
    end if;
    execute format('select exists (select from %s)', default_part) into default_has_rows;
    if default_has_rows and move_default_rows then
        execute format('select array_agg(distinct %s) from %s', month_expression, default_part) into months;
        execute format('alter table %s detach partition %s', parent, default_part);
        foreach month in array months loop
            part_name := format('%s_%s_%s', base, to_char(month, 'YYYYMM'), parent::oid);
            if to_regclass(format('%I.%I', parent_schema, part_name)) is null then
                execute format(
                    'create table %I.%I partition of %s for values from (%L) to (%L)',
                    parent_schema, part_name, parent, month, (month + interval '1 month')::date
                );
                created := created + 1;
            end if;
        end loop;
        execute format('insert into %s select * from %s', parent, default_part);
        execute format('drop table %s', default_part);
        execute format('create table %I.%I partition of %s default', parent_schema, default_name, parent);
        default_part := format('%I.%I', parent_schema, default_name)::regclass;
        default_has_rows := false;
    end if;
    -- this month and the next, before their rows come (a partition cannot be made for a month
    -- the default partition already holds rows of: those stay there, as in a table from before
    -- partitioning)
    foreach month in array array[
        date_trunc('month', now())::date, (date_trunc('month', now()) + interval '1 month')::date
    ] loop
        part_name := format('%s_%s_%s', base, to_char(month, 'YYYYMM'), parent::oid);
        if to_regclass(format('%I.%I', parent_schema, part_name)) is null then
            has_rows := false;
            if default_has_rows then
                execute format(
                    'select exists (select from %s where %I >= %L and %I < %L)',
                    default_part, part_column, month, part_column, (month + interval '1 month')::date
                ) into has_rows;
            end if;
            if not has_rows then
                execute format(
                    'create table %I.%I partition of %s for values from (%L) to (%L)',
                    parent_schema, part_name, parent, month, (month + interval '1 month')::date
                );
                created := created + 1;
            end if;
        end if;
    end loop;
    return created;
end
$ensure_month_partitions$;

-- Retention (RETENTION_MONTHS, python -m loader retention): the rows of `parent` whose month
-- (of part_column, UTC) is before `cutoff` (the first of a month). A partitioned table drops
-- whole month partitions and deletes the default partition's old rows (a table from before
-- partitioning); a plain table (one published from Spark) deletes its old rows. One row per
-- partition or table touched, with the rows it held; dry_run counts without removing.
create or replace function raw.drop_months_before(
    parent regclass, part_column text, cutoff date, dry_run boolean
) returns table (relation_name text, months_before date, removed bigint)
language plpgsql
set timezone = 'UTC'
as $drop_months_before$
declare
    part record;
    upper_bound date;
    counted bigint;
begin
    if (select class.relkind from pg_class as class where class.oid = parent) <> 'p' then
        if dry_run then
            execute format('select count(*) from %s where %I < %L', parent, part_column, cutoff) into counted;
        else
            execute format('delete from %s where %I < %L', parent, part_column, cutoff);
            get diagnostics counted = row_count;
        end if;
        select format('%I.%I', namespace.nspname, class.relname) into relation_name
        from pg_class as class
        inner join pg_namespace as namespace on class.relnamespace = namespace.oid
        where class.oid = parent;
        months_before := cutoff;
        removed := counted;
        return next;
        return;
    end if;
    for part in
        select
            inherits.inhrelid::regclass as child,
            format('%I.%I', namespace.nspname, child.relname) as child_name,
            pg_get_expr(child.relpartbound, child.oid) as bound
        from pg_inherits as inherits
        inner join pg_class as child on inherits.inhrelid = child.oid
        inner join pg_namespace as namespace on child.relnamespace = namespace.oid
        where inherits.inhparent = parent
        order by 3
    loop
        if part.bound = 'DEFAULT' then
            if dry_run then
                execute format('select count(*) from %s where %I < %L', part.child, part_column, cutoff) into counted;
            else
                execute format('delete from %s where %I < %L', part.child, part_column, cutoff);
                get diagnostics counted = row_count;
            end if;
            if counted > 0 then
                relation_name := part.child_name;
                months_before := cutoff;
                removed := counted;
                return next;
            end if;
            continue;
        end if;
        upper_bound := substring(part.bound from 'TO \(''([0-9]{4}-[0-9]{2}-[0-9]{2})')::date;
        if upper_bound is not null and upper_bound <= cutoff then
            execute format('select count(*) from %s', part.child) into counted;
            relation_name := part.child_name;
            if not dry_run then
                execute format('drop table %s', part.child);
            end if;
            months_before := upper_bound;
            removed := counted;
            return next;
        end if;
    end loop;
end
$drop_months_before$;

-- BRIN upkeep: the page ranges of `parent` (a table, or each partition of a partitioned one)
-- written since its BRIN indexes last summarized them get their summaries. An insert into a new
-- page range leaves it unsummarized, and a BRIN scan reads every unsummarized range whatever its
-- filter: left to autovacuum (after inserts of a fifth of a partition: days of raw at 1 M
-- events a day), each of a cycle's reads of its new loaded_at window read all those days too.
-- dbt calls it before every build (raw) and after writing fact_events; the work is the pages
-- written since the last call. Returns the ranges summarized; an index this role does not own
-- or cannot lock within 5 s is left to autovacuum (a notice), never an error.
create or replace function raw.summarize_new_ranges(parent regclass) returns bigint
language plpgsql
set lock_timeout = '5s'
as $summarize_new_ranges$
declare
    brin_index regclass;
    summarized bigint := 0;
begin
    for brin_index in
        select index_class.oid::regclass
        from pg_index as index_def
        inner join pg_class as index_class on index_def.indexrelid = index_class.oid
        inner join pg_am as access_method on index_class.relam = access_method.oid
        where
            access_method.amname = 'brin'
            and index_class.relkind = 'i'
            and (
                index_def.indrelid = parent
                or index_def.indrelid in (select inhrelid from pg_inherits where inhparent = parent)
            )
    loop
        begin
            summarized := summarized + brin_summarize_new_values(brin_index);
        exception when insufficient_privilege or lock_not_available then
            raise notice 'BRIN index % left to autovacuum: %', brin_index, sqlerrm;
        end;
    end loop;
    return summarized;
end
$summarize_new_ranges$;

-- one row per raw event line: the JSON object unchanged. Partitioned by month of loaded_at;
-- a table from before partitioning becomes the default partition as it is (no rows move), and
-- new months get partitions of their own. BRIN on loaded_at: lines arrive in loaded_at order.
do $raw_events$
begin
    if to_regclass('raw.clickstream_events') is null then
        create table raw.clickstream_events (
            payload jsonb not null,
            bucket text not null,
            object_key text not null,
            line_number integer not null,
            object_etag text not null,
            load_id uuid not null,
            loaded_at timestamptz not null default now()
        ) partition by range (loaded_at);
    elsif (select class.relkind from pg_class as class where class.oid = 'raw.clickstream_events'::regclass) = 'r' then
        alter table raw.clickstream_events rename to clickstream_events_unpartitioned;
        create table raw.clickstream_events (
            like raw.clickstream_events_unpartitioned including defaults including constraints
        ) partition by range (loaded_at);
        alter table raw.clickstream_events attach partition raw.clickstream_events_unpartitioned default;
    end if;
end
$raw_events$;
create index if not exists clickstream_events_loaded_at_brin on raw.clickstream_events using brin (loaded_at)
with (pages_per_range = 32);
select raw.ensure_month_partitions('raw.clickstream_events', 'loaded_at', 'clickstream_events', false);

-- one row per loaded object, written in the same transaction as its rows
create table if not exists raw.load_manifest (
    bucket text not null,
    object_key text not null,
    object_etag text not null,
    object_size bigint not null,
    lines integer not null,
    events_loaded integer not null,
    lines_rejected integer not null,
    load_id uuid not null,
    loaded_at timestamptz not null default now(),
    primary key (bucket, object_key)
);
alter table raw.load_manifest add column if not exists object_last_modified timestamptz;
alter table raw.load_manifest add column if not exists format text;
alter table raw.load_manifest add column if not exists compressed boolean;
create index if not exists load_manifest_loaded_at_idx on raw.load_manifest (loaded_at);

-- lines (or whole objects: line_number null) that could not be loaded, with the reason
create table if not exists raw.rejected_lines (
    bucket text not null,
    object_key text not null,
    line_number integer,
    reason text not null,
    line text,
    load_id uuid not null,
    rejected_at timestamptz not null default now()
);
create index if not exists rejected_lines_object_idx on raw.rejected_lines (bucket, object_key);

-- one row per loader run
create table if not exists raw.load_runs (
    load_id uuid primary key,
    started_at timestamptz not null,
    finished_at timestamptz,
    objects integer not null default 0,
    events integer not null default 0,
    rejects integer not null default 0,
    etag_changes integer not null default 0,
    status text not null,
    error text
);
alter table raw.load_runs add column if not exists source text;
alter table raw.load_runs add column if not exists failed_objects integer not null default 0;
alter table raw.load_runs add column if not exists backend_pid integer;
alter table raw.load_runs add column if not exists dbt_status text;
alter table raw.load_runs add column if not exists models_built integer;
create index if not exists load_runs_started_at_idx on raw.load_runs (started_at);
-- the build after the load (dbt_status running / success / failed / interrupted / skipped),
-- when the run last committed a load, and what a time budget left for the next run
alter table raw.load_runs add column if not exists dbt_started_at timestamptz;
alter table raw.load_runs add column if not exists dbt_finished_at timestamptz;
alter table raw.load_runs add column if not exists last_loaded_at timestamptz;
alter table raw.load_runs add column if not exists objects_left integer not null default 0;

-- one row per daily full check (python -m loader check): every data test over whole tables,
-- the whole-history ones (tag full_scan) among them; the 15-minute cycles test only what they wrote
create table if not exists raw.full_checks (
    check_id uuid primary key,
    started_at timestamptz not null,
    finished_at timestamptz,
    status text not null,
    tests integer,
    failures integer,
    warnings integer,
    failed_tests text[],
    error text
);
create index if not exists full_checks_started_at_idx on raw.full_checks (started_at);

-- one row per load whose raw lines were removed from raw.clickstream_events once the warehouse
-- held them (python -m loader trim, RAW_TABLE_RETENTION_DAYS): the bucket keeps the objects, and
-- python -m loader restore copies them back (a full refresh refuses to run while a row is here)
create table if not exists raw.trimmed_loads (
    loaded_at timestamptz primary key,
    lines bigint not null,
    objects integer not null,
    trimmed_at timestamptz not null default now()
);
-- the objects whose lines a trim removed (one row per object and load)
create table if not exists raw.trimmed_objects (
    bucket text not null,
    object_key text not null,
    load_id uuid not null,
    trimmed_loaded_at timestamptz not null,
    lines bigint not null
);
create index if not exists trimmed_objects_loaded_at_idx on raw.trimmed_objects (trimmed_loaded_at);

-- the objects of trimmed loads that python -m loader restore is copying back (out of the
-- manifest until they are loaded again)
create table if not exists raw.restoring_objects (
    bucket text not null,
    object_key text not null,
    trimmed_loaded_at timestamptz not null,
    primary key (bucket, object_key)
);

-- one row per partition or table that retention (RETENTION_MONTHS) emptied or dropped
create table if not exists raw.retention_drops (
    relation_name text not null,
    months_before date not null,
    rows_removed bigint not null,
    dropped_at timestamptz not null default now()
);

-- erasure (python -m loader forget, docs/privacy.md "Erasure"): one row per request. It holds
-- no id: what was removed, table by table and object by object (counts and object keys only),
-- and how far it got (removed: the warehouse rows are gone, objects: the bucket's objects are
-- rewritten, done: the aggregates are recounted), so a run killed midway is finished by the next
create table if not exists raw.erasure_requests (
    erasure_id uuid primary key,
    requested_at timestamptz not null default now(),
    asked text not null,
    ids integer not null,
    status text not null,
    rebuild text not null,
    report jsonb not null default '{}',
    finished_at timestamptz
);
-- the erasure list: keyed hashes (HMAC-SHA256 under ERASURE_HASH_KEY) of every id erased, never
-- the ids; the loader drops a later line that carries one
create table if not exists raw.erased_ids (
    id_hash bytea primary key,
    erasure_id uuid not null,
    erased_at timestamptz not null default now()
);
-- the bucket's objects that held a forgotten person's lines: rewritten without them (pending /
-- done / gone), with the lines removed and the old versions deleted
create table if not exists raw.erasure_objects (
    erasure_id uuid not null,
    bucket text not null,
    object_key text not null,
    status text not null default 'pending',
    lines_removed integer,
    versions_deleted integer,
    primary key (erasure_id, bucket, object_key)
);

-- the version of this file the database holds (loader.schema.migrate: its digest and the UTC
-- month): a run that finds its own version here applies nothing and takes no lock
create table if not exists raw.schema_version (
    version text not null,
    applied_at timestamptz not null default now()
);
