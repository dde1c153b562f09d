-- The loader's tables in schema raw. Applied by the loader on every run: every
-- statement is idempotent (create ... if not exists / add column if not exists).
create schema if not exists raw;

-- one row per raw event line: the JSON object unchanged
create table if not exists raw.clickstream_events (
    payload jsonb not null,
    bucket text not null,
    object_key text not null,
    line_number integer not null,
    object_etag text not null,
    load_id uuid not null,
    loaded_at timestamptz not null default now()
);
create index if not exists clickstream_events_loaded_at_idx on raw.clickstream_events (loaded_at);

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
