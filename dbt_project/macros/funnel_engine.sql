{#- The ad-hoc funnel engine: analytics.funnel(spec jsonb), installed by the on-run-end hook
    install_funnel_engine (and by spark/publish.py on a Spark-built warehouse), with the table of
    saved funnels the dashboards' role may write. The spec and its semantics: docs/warehouse.md
    "Ad-hoc funnels". PostgreSQL only: on Spark the marts are published into PostgreSQL and the
    engine is installed there. -#}

{% macro install_funnel_engine() -%}
    {{ return(adapter.dispatch('install_funnel_engine', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__install_funnel_engine() -%}
    select 1
{%- endmacro %}

{#- Replaced only when its text changed (the function's comment holds the text's md5): a
    build that changes nothing takes no lock on it. -#}
{% macro postgres__install_funnel_engine() -%}
{%- set role = var('dashboard_role') -%}
do $install$
declare
    ddl constant text := $engine${{ funnel_engine_sql() }}$engine$;
    version constant text := 'funnel engine ' || md5(ddl);
begin
    if coalesce(obj_description(to_regprocedure('analytics.funnel(jsonb)'), 'pg_proc'), '') <> version then
        execute ddl;
        execute format('comment on function analytics.funnel(jsonb) is %L', version);
    end if;
    if exists (select 1 from pg_roles where rolname = '{{ role }}') then
        execute format('grant select, insert, update, delete on analytics.saved_funnels to %I', '{{ role }}');
    end if;
end
$install$
{%- endmacro %}

{#- The engine's DDL, plain SQL (no dbt): spark/publish.py runs the same text. -#}
{% macro funnel_engine_sql() -%}
create schema if not exists analytics;

create table if not exists analytics.saved_funnels (
    name text primary key check (length(btrim(name)) between 1 and 200),
    spec jsonb not null check (jsonb_typeof(spec) = 'object'),
    saved_at timestamptz not null default now(),
    saved_by text not null default current_user
);

{#- Can the steps of bitmask need be matched to distinct events, event i matching the steps of
    bitmask masks[i]? Kuhn's augmenting paths (steps ≤ 10): used only where one event matches
    several steps (repeated or overlapping steps) at one instant or in any order. -#}
create or replace function analytics.funnel_matchable(masks integer [], need integer)
returns boolean
language plpgsql immutable strict parallel safe
as $fn$
declare
    n integer := coalesce(array_length(masks, 1), 0);
    event_step integer [] := array_fill(0, array[greatest(n, 1)]);
    step_event integer [] := array_fill(0, array[10]);
    from_step integer [];
    queue integer [];
    head integer;
    s integer;
    u integer;
    e integer;
    prev integer;
    found integer;
begin
    for s in 1..10 loop
        continue when need & (1 << (s - 1)) = 0;
        from_step := array_fill(0, array[greatest(n, 1)]);
        queue := array[s];
        head := 1;
        found := 0;
        while head <= array_length(queue, 1) and found = 0 loop
            u := queue[head];
            head := head + 1;
            for e in 1..n loop
                if from_step[e] = 0 and masks[e] & (1 << (u - 1)) <> 0 then
                    from_step[e] := u;
                    if event_step[e] = 0 then
                        found := e;
                        exit;
                    end if;
                    queue := queue || event_step[e];
                end if;
            end loop;
        end loop;
        if found = 0 then
            return false;
        end if;
        e := found;
        loop
            u := from_step[e];
            prev := step_event[u];
            event_step[e] := u;
            step_event[u] := e;
            exit when prev = 0;
            e := prev;
        end loop;
    end loop;
    return true;
end
$fn$;

{#- One entity's funnel: its events' times (epoch microseconds, ascending) and step bitmasks (bit k-1:
    the event matches step k; step 1's bit only where its date and session qualify). Returns, per
    step, the earliest time a chain reached it (null: never). Ordered: a chain is distinct events
    matching steps 1..k with non-decreasing times (ties count), the last within window_us of
    the first; "latest start per step" in one pass, events at one instant matched together.
    Any order: the k events in any order, all within window_us of the earliest. -#}
create or replace function analytics.funnel_chain(
    ts bigint [], masks integer [], steps integer, window_us bigint, any_order boolean
)
returns bigint []
language plpgsql immutable strict parallel safe
as $fn$
declare
    n integer := coalesce(array_length(ts, 1), 0);
    latest_start bigint [] := array_fill(null::bigint, array[steps]);
    next_start bigint [];
    reached bigint [] := array_fill(null::bigint, array[steps]);
    single boolean := true;
    i integer := 1;
    j integer;
    k integer;
    lvl integer;
    q integer;
    m integer;
    need integer;
    best integer;
    seen integer;
    t bigint;
    st bigint;
    group_masks integer [];
begin
    if not any_order then
        while i <= n loop
            j := i;
            while j < n and ts[j + 1] = ts[i] loop
                j := j + 1;
            end loop;
            t := ts[i];
            if j = i then
                m := masks[i];
                for k in reverse steps..1 loop
                    continue when m & (1 << (k - 1)) = 0;
                    if k = 1 then
                        st := t;
                    else
                        st := latest_start[k - 1];
                        continue when st is null or t - st > window_us;
                    end if;
                    if latest_start[k] is null or st > latest_start[k] then
                        latest_start[k] := st;
                    end if;
                    if reached[k] is null then
                        reached[k] := t;
                    end if;
                end loop;
            else
                next_start := latest_start;
                group_masks := masks[i:j];
                for lvl in 0..steps - 1 loop
                    if lvl = 0 then
                        st := t;
                    else
                        st := latest_start[lvl];
                        continue when st is null or t - st > window_us;
                    end if;
                    need := 0;
                    for k in lvl + 1..steps loop
                        need := need | (1 << (k - 1));
                        exit when not analytics.funnel_matchable(group_masks, need);
                        if next_start[k] is null or st > next_start[k] then
                            next_start[k] := st;
                        end if;
                        if reached[k] is null then
                            reached[k] := t;
                        end if;
                    end loop;
                end loop;
                latest_start := next_start;
            end if;
            i := j + 1;
        end loop;
        return reached;
    end if;

    for q in 1..n loop
        if masks[q] & (masks[q] - 1) <> 0 then
            single := false;
        end if;
    end loop;
    while i <= n loop
        best := 0;
        seen := 0;
        q := i;
        while q <= n and ts[q] - ts[i] <= window_us and best < steps loop
            seen := seen | masks[q];
            loop
                exit when best = steps;
                need := (1 << (best + 1)) - 1;
                if single then
                    exit when seen & need <> need;
                else
                    exit when seen & need <> need or not analytics.funnel_matchable(masks[i:q], need);
                end if;
                best := best + 1;
                if reached[best] is null or ts[q] < reached[best] then
                    reached[best] := ts[q];
                end if;
            end loop;
            q := q + 1;
        end loop;
        j := i;
        while j <= n and ts[j] = ts[i] loop
            j := j + 1;
        end loop;
        i := j;
    end loop;
    return reached;
end
$fn$;

{#- A funnel-wide filter's values: a list of texts (or one text) as text[]; none: null. -#}
create or replace function analytics.funnel_texts(value jsonb)
returns text []
language sql immutable parallel safe
as $fn$
    select case
        when value is null or jsonb_typeof(value) = 'null' then null
        when jsonb_typeof(value) = 'string' then array[value #>> '{}']
        else (select array_agg(element) from jsonb_array_elements_text(value) as element)
    end
$fn$;

{#- Any order on the fast path: each step's time (its j-th character's event) to the time each
    step was reached (the latest of the steps up to it; null from the first step never seen). -#}
create or replace function analytics.funnel_running_max(times bigint [])
returns bigint []
language plpgsql immutable strict parallel safe
as $fn$
declare
    reached bigint [] := times;
    k integer;
begin
    for k in 2..coalesce(array_length(times, 1), 0) loop
        reached[k] := case when reached[k - 1] is not null and times[k] is not null
            then greatest(reached[k - 1], times[k]) end;
    end loop;
    return reached;
end
$fn$;

{#- analytics.funnel(spec): checks the spec (an error names what is wrong), then runs one query
    whose values are all bound parameters; only column names and step numbers are written into
    its text. -#}
create or replace function analytics.funnel(spec jsonb)
returns table (
    breakdown text,
    step integer,
    step_name text,
    entities bigint,
    pct_of_first numeric,
    pct_of_previous numeric,
    median_seconds_from_previous double precision
)
language plpgsql stable
set search_path = analytics, pg_catalog
set timezone = 'UTC'
set work_mem = '256MB'
as $fn$
declare
    known_keys constant text [] := array[
        'steps', 'from', 'to', 'window', 'count', 'order', 'device', 'source', 'medium',
        'campaign', 'breakdown', 'name'
    ];
    step_keys constant text [] := array[
        'event', 'name', 'category', 'brand', 'product_id', 'price_min', 'price_max',
        'page_path', 'search'
    ];
    key text;
    item jsonb;
    value jsonb;
    n integer;
    k integer;
    events text [] := '{}';
    names text [] := '{}';
    categories text [] := '{}';
    brands text [] := '{}';
    product_ids text [] := '{}';
    price_mins numeric [] := '{}';
    price_maxs numeric [] := '{}';
    page_paths text [] := '{}';
    searches text [] := '{}';
    from_date date;
    to_date date;
    window_length interval;
    window_us bigint;
    count_by text;
    order_by text;
    breakdown_by text;
    devices text [];
    sources text [];
    mediums text [];
    campaigns text [];
    event_codes constant jsonb := '{{ tojson(funnel_event_codes()) }}';
    codes text [] := '{}';
    plain boolean;
    patterns text [] := '{}';
    predicate text;
    product_predicate text;
    product_sql text := '';
    masks_sql text := '';
    fast_sql text := '';
    session_breakdown text;
    element_breakdown text;
    eligible text;
    passes_sql text;
    candidates_sql text;
    entity_sql text;
    aggregate_sql text;
    values_sql text;
    label text;
    query text;
begin
    if spec is null or jsonb_typeof(spec) <> 'object' then
        raise exception 'a funnel spec is a JSON object' using errcode = '22023';
    end if;
    for key in select jsonb_object_keys(spec) loop
        if not key = any(known_keys) then
            raise exception 'unknown funnel key "%" (known: %)', key, array_to_string(known_keys, ', ')
                using errcode = '22023';
        end if;
    end loop;

    -- the steps
    if spec -> 'steps' is null or jsonb_typeof(spec -> 'steps') = 'null'
        or (jsonb_typeof(spec -> 'steps') = 'array' and jsonb_array_length(spec -> 'steps') = 0) then
        raise exception 'no steps' using errcode = '22023';
    end if;
    if jsonb_typeof(spec -> 'steps') <> 'array' then
        raise exception 'steps is a list of steps' using errcode = '22023';
    end if;
    n := jsonb_array_length(spec -> 'steps');
    if n > 10 then
        raise exception 'at most 10 steps (got %)', n using errcode = '22023';
    end if;
    for k in 1..n loop
        item := spec -> 'steps' -> (k - 1);
        if jsonb_typeof(item) <> 'object' then
            raise exception 'step % is not an object like {"event": "page_view"}', k using errcode = '22023';
        end if;
        for key in select jsonb_object_keys(item) loop
            if not key = any(step_keys) then
                raise exception 'unknown step filter "%" in step % (known: %)',
                    key, k, array_to_string(step_keys[3:], ', ') using errcode = '22023';
            end if;
            value := item -> key;
            if jsonb_typeof(value) = 'null' then
                continue;
            end if;
            if key in ('price_min', 'price_max') then
                if jsonb_typeof(value) not in ('number', 'string')
                    or (value #>> '{}') !~ '^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$' then
                    raise exception 'step %: % "%" is not a number', k, key, value #>> '{}' using errcode = '22023';
                end if;
            elsif key = 'product_id' then
                if jsonb_typeof(value) not in ('string', 'number') then
                    raise exception 'step %: product_id is a text or a number', k using errcode = '22023';
                end if;
            elsif jsonb_typeof(value) <> 'string' then
                raise exception 'step %: % is a text', k, key using errcode = '22023';
            end if;
        end loop;
        if coalesce(btrim(item ->> 'event'), '') = '' then
            raise exception 'step % has no event', k using errcode = '22023';
        end if;
        events := events || lower(btrim(item ->> 'event'));
        categories := categories || nullif(lower(btrim(item ->> 'category')), '');
        brands := brands || nullif(lower(btrim(item ->> 'brand')), '');
        product_ids := product_ids || nullif(btrim(item ->> 'product_id'), '');
        price_mins := price_mins || cast(nullif(btrim(item ->> 'price_min'), '') as numeric);
        price_maxs := price_maxs || cast(nullif(btrim(item ->> 'price_max'), '') as numeric);
        page_paths := page_paths || nullif(item ->> 'page_path', '');
        searches := searches || nullif(lower(btrim(item ->> 'search')), '');
        if price_mins[k] > price_maxs[k] then
            raise exception 'step %: price_min is above price_max', k using errcode = '22023';
        end if;
        label := coalesce(nullif(btrim(item ->> 'name'), ''), concat_ws(
            ', ', events[k],
            'category ' || categories[k], 'brand ' || brands[k], 'product ' || product_ids[k],
            'price ≥ ' || price_mins[k], 'price ≤ ' || price_maxs[k],
            'page ' || page_paths[k] || '…', 'search "' || searches[k] || '"'
        ));
        names := names || label;
    end loop;

    -- the dates and the window
    if spec -> 'from' is null or spec -> 'to' is null then
        raise exception 'from and to (dates, YYYY-MM-DD) are required' using errcode = '22023';
    end if;
    begin
        from_date := cast(spec ->> 'from' as date);
    exception when others then
        raise exception 'from "%" is not a date (YYYY-MM-DD)', spec ->> 'from' using errcode = '22023';
    end;
    begin
        to_date := cast(spec ->> 'to' as date);
    exception when others then
        raise exception 'to "%" is not a date (YYYY-MM-DD)', spec ->> 'to' using errcode = '22023';
    end;
    if from_date > to_date then
        raise exception 'from is after to' using errcode = '22023';
    end if;
    if to_date - from_date > 366 then
        raise exception 'from and to are more than 366 days apart' using errcode = '22023';
    end if;
    begin
        window_length := cast(coalesce(spec ->> 'window', '14 days') as interval);
    exception when others then
        raise exception 'window "%" is not an interval (such as "10 minutes" or "14 days")', spec ->> 'window'
            using errcode = '22023';
    end;
    window_us := cast(extract(epoch from window_length) * 1000000 as bigint);
    if window_us <= 0 or window_us > 366 * 86400 * 1000000::bigint then
        raise exception 'window "%" is not between a second and 366 days', spec ->> 'window' using errcode = '22023';
    end if;

    count_by := coalesce(spec ->> 'count', 'sessions');
    if count_by not in ('sessions', 'users') then
        raise exception 'count "%" is not sessions or users', count_by using errcode = '22023';
    end if;
    order_by := coalesce(spec ->> 'order', 'ordered');
    if order_by not in ('ordered', 'any') then
        raise exception 'order "%" is not ordered or any', order_by using errcode = '22023';
    end if;
    breakdown_by := spec ->> 'breakdown';
    if breakdown_by is not null and breakdown_by not in ('device', 'source', 'category', 'brand') then
        raise exception 'breakdown "%" is not device, source, category or brand', breakdown_by
            using errcode = '22023';
    end if;
    foreach key in array array['device', 'source', 'medium', 'campaign'] loop
        value := spec -> key;
        if value is not null and jsonb_typeof(value) not in ('null', 'string', 'array') then
            raise exception '% is a list of texts', key using errcode = '22023';
        end if;
        if jsonb_typeof(value) = 'array' and exists (
            select 1 from jsonb_array_elements(value) as element where jsonb_typeof(element) <> 'string'
        ) then
            raise exception '% is a list of texts', key using errcode = '22023';
        end if;
    end loop;
    devices := analytics.funnel_texts(spec -> 'device');
    sources := analytics.funnel_texts(spec -> 'source');
    mediums := analytics.funnel_texts(spec -> 'medium');
    campaigns := analytics.funnel_texts(spec -> 'campaign');

    -- the query. Each session's whole sequence is one row of fact_session_sequences. A session
    -- (or a user's only session) whose funnel a regular expression decides exactly (steps
    -- without filters, the session within [from, to], no two events at one instant, not longer
    -- than the window) takes the fast path: one match over its event codes. Every other entity
    -- goes through funnel_chain over its events' step bitmasks.
    plain := breakdown_by is null or breakdown_by in ('device', 'source');
    for k in 1..n loop
        codes := codes || (event_codes ->> events[k]);
        plain := plain and codes[k] is not null and categories[k] is null and brands[k] is null
            and product_ids[k] is null and price_mins[k] is null and price_maxs[k] is null
            and page_paths[k] is null and searches[k] is null;
    end loop;
    -- per step, a regular expression without capture groups whose match ends at the event that
    -- reaches the step: ordered, the earliest chain (^[^a]*a[^b]*b...); any order, the j-th
    -- occurrence of the step's character (j: how many steps up to it share that character)
    if plain then
        for k in 1..n loop
            patterns := patterns || case when order_by = 'ordered' then
                '^' || (select string_agg(format('[^%1$s]*%1$s', codes[i]), '' order by i) from generate_series(1, k) as i)
            else
                format('^(?:[^%1$s]*%1$s)', codes[k]) || '{' || (
                    select count(*) from generate_series(1, k) as i where codes[i] = codes[k]) || '}'
            end;
        end loop;
    end if;

    for k in 1..n loop
        product_predicate := concat_ws(' and ',
            case when categories[k] is not null then format(
                '(lower(p.product_category) = $3[%1$s] or left(lower(p.product_category), length($3[%1$s]) + 1)'
                ' in ($3[%1$s] || ''.'', $3[%1$s] || ''/''))', k) end,
            case when brands[k] is not null then format('lower(p.product_brand) = $4[%s]', k) end,
            case when product_ids[k] is not null then format('p.product_id = $5[%s]', k) end,
            case when price_mins[k] is not null then format('p.product_price >= $6[%s]', k) end,
            case when price_maxs[k] is not null then format('p.product_price <= $7[%s]', k) end
        );
        predicate := concat_ws(' and ',
            format('u.event_name = $2[%s]', k),
            case when page_paths[k] is not null then format('left(u.page_path, length($8[%1$s])) = $8[%1$s]', k) end,
            case when searches[k] is not null then format('strpos(lower(u.search_query), $9[%s]) > 0', k) end
        );
        if product_predicate <> '' then
            -- a product's current attributes (dim_products); a purchase matches through its items
            product_sql := product_sql || format($p$
        step_%1$s_products as (
            select p.product_id from analytics.dim_products as p where %2$s
        ),

        step_%1$s_orders as (
            select distinct i.order_id
            from analytics.fact_order_items as i
            inner join step_%1$s_products as sp on i.product_id = sp.product_id
        ),
            $p$, k, product_predicate);
            predicate := predicate || format(
                ' and (case when u.event_name = ''purchase'' then u.order_id in (select o.order_id from step_%1$s_orders as o)'
                ' else u.product_id in (select sp.product_id from step_%1$s_products as sp) end)', k);
        end if;
        if k = 1 then
            predicate := predicate || ' and c.start_us + u.offset_us >= $23 and c.start_us + u.offset_us < $24 and c.passes';
        end if;
        masks_sql := masks_sql || case when k > 1 then ' | ' else '' end
            || format('(case when %s then %s else 0 end)', predicate, 1 << (k - 1));
        fast_sql := fast_sql || case when k > 1 then ', ' else '' end
            || format('c.event_offsets_us[length(substring(c.event_codes from $22[%s]))]', k);
    end loop;
    fast_sql := case when order_by = 'ordered' then 'array[' || fast_sql || ']'
        else 'analytics.funnel_running_max(array[' || fast_sql || '])' end;

    session_breakdown := case breakdown_by
        when 'device' then 'c.device_type' when 'source' then 'c.traffic_source' else 'null::text' end;
    element_breakdown := case breakdown_by
        when 'device' then 'c.device_type'
        when 'source' then 'c.traffic_source'
        when 'category' then '(select p.product_category from analytics.dim_products as p where p.product_id = e.product_id)'
        when 'brand' then '(select lower(p.product_brand) from analytics.dim_products as p where p.product_id = e.product_id)'
        else 'null::text'
    end;
    -- the fast path's answer is exact when the session lies within the dates, has no two
    -- events at one instant, and the window cannot cut its chain: the session is no longer than
    -- the window, or (ordered) its earliest chain reaches the last step within the window
    eligible := case when not plain then 'false' else
        'coalesce(c.first_event_date >= $10 and c.last_event_date <= $11 and not c.has_tied_events and c.passes'
        ' and (c.session_end_at - c.session_start_at <= $13'
        || case when order_by = 'ordered' then
            ' or c.event_offsets_us[length(substring(c.event_codes from $22[$1]))]'
            ' - c.event_offsets_us[length(substring(c.event_codes from $22[1]))] <= $14'
        else '' end
        || '), false)' end;
    passes_sql := '($17::text [] is null or q.device_type = any($17))'
        ' and ($18::text [] is null or q.traffic_source = any($18))'
        ' and ($19::text [] is null or q.traffic_medium = any($19))'
        ' and ($20::text [] is null or q.traffic_campaign = any($20))';

    if count_by = 'sessions' then
        candidates_sql := format($c$
        candidates as not materialized (
            select
                q.*,
                cast(extract(epoch from q.session_start_at) * 1000000 as bigint) as start_us,
                true as passes
            from analytics.fact_session_sequences as q
            where
                q.first_event_date <= $11
                and q.last_event_date >= $10
                and (case when $21[1] is not null then strpos(q.event_codes, $21[1]) > 0 else $2[1] = any(q.event_names) end)
                and %s
        ),

        classified as not materialized (
            select c.*, %s as is_fast from candidates as c
        ),
        $c$, passes_sql, eligible);
        entity_sql := 'c.session_id';
    else
        candidates_sql := format($c$
        starting_sessions as (
            select q.user_key, q.user_keys
            from analytics.fact_session_sequences as q
            where
                q.first_event_date <= $11
                and q.last_event_date >= $10
                and (case when $21[1] is not null then strpos(q.event_codes, $21[1]) > 0 else $2[1] = any(q.event_names) end)
                and %1$s
        ),

        starting_users as (
            select starting_sessions.user_key from starting_sessions
            union
            select unnest(starting_sessions.user_keys) from starting_sessions where starting_sessions.user_keys is not null
        ),

        candidates as (
            select
                q.*,
                cast(extract(epoch from q.session_start_at) * 1000000 as bigint) as start_us,
                %1$s as passes,
                count(*) over (partition by q.user_key) as user_sessions
            from analytics.fact_session_sequences as q
            where
                q.first_event_date <= $12
                and q.last_event_date >= $10
                and (q.user_key in (select starting_users.user_key from starting_users) or q.user_keys is not null)
        ),

        {#- a user with events in a session of several users (rare) is never on the fast path -#}
        shared_users as (
            select distinct unnest(candidates.user_keys) as user_key
            from candidates
            where candidates.user_keys is not null
        ),

        classified as not materialized (
            select
                c.*,
                c.user_sessions = 1 and c.user_keys is null and %2$s
                and not exists (select 1 from shared_users where shared_users.user_key = c.user_key) as is_fast
            from candidates as c
        ),
        $c$, passes_sql, eligible);
        entity_sql := 'e.user_key';
    end if;

    aggregate_sql := case when breakdown_by is null then 'null::text' else 'reached.breakdown_value' end
        || ' as breakdown_value';
    values_sql := '';
    for k in 1..n loop
        aggregate_sql := aggregate_sql || format(', count(reached.reached_at[%1$s]) as entities_%1$s', k);
        if k > 1 then
            aggregate_sql := aggregate_sql || format(
                ', percentile_cont(0.5) within group (order by (reached.reached_at[%1$s] - reached.reached_at[%2$s]) / 1000000.0)'
                ' filter (where reached.reached_at[%1$s] is not null) as median_%1$s', k, k - 1);
        end if;
        values_sql := values_sql || case when k > 1 then ', ' else '' end || format(
            '(%1$s, aggregated.entities_%1$s, %2$s)', k,
            case when k > 1 then format('aggregated.median_%s', k) else 'null::double precision' end);
    end loop;

    query := format($q$
        with
        %1$s
        %2$s

        {#- times on the fast path are microseconds since the session's start: only their
            differences are used -#}
        fast_reached as (
            select %3$s as breakdown_value, %5$s as reached_at%4$s
            from classified as c
            where c.is_fast
        ),

        slow_elements as (
            select
                %6$s as entity,
                case when e.mask & 1 = 1 then coalesce(%7$s, '(none)') end as breakdown_value,
                e.t,
                e.mask
            from classified as c
            cross join lateral (
                select
                    c.start_us + u.offset_us as t,
                    u.product_id,
                    coalesce(u.user_key, c.user_key) as user_key,
                    %8$s as mask
                from unnest(
                    c.event_names, c.event_offsets_us, c.product_ids, c.page_paths, c.search_queries,
                    c.order_ids, c.user_keys
                ) as u (event_name, offset_us, product_id, page_path, search_query, order_id, user_key)
            ) as e
            where not c.is_fast and e.mask <> 0
        ),

        starters as (
            select distinct
                slow_elements.entity,
                %9$s as breakdown_value
            from slow_elements
            where slow_elements.mask & 1 = 1
        ),

        adjusted as (
            select
                starters.breakdown_value,
                starters.entity,
                slow_elements.t,
                case
                    when starters.breakdown_value is not null
                        and slow_elements.breakdown_value is distinct from starters.breakdown_value
                        then slow_elements.mask & ~1
                    else slow_elements.mask
                end as mask
            from slow_elements
            inner join starters on slow_elements.entity = starters.entity
        ),

        sequences as (
            select
                adjusted.breakdown_value,
                adjusted.entity,
                bit_or(adjusted.mask) as all_masks,
                min(adjusted.t) filter (where adjusted.mask & 1 = 1) as first_start,
                array_agg(adjusted.t order by adjusted.t) as ts,
                array_agg(adjusted.mask order by adjusted.t) as masks
            from adjusted
            where adjusted.mask <> 0
            group by 1, 2
        ),

        reached as (
            select fast_reached.breakdown_value, fast_reached.reached_at from fast_reached
            union all
            select
                sequences.breakdown_value,
                case
                    when sequences.all_masks & ~1 = 0 then array[sequences.first_start]
                    else analytics.funnel_chain(sequences.ts, sequences.masks, $1, $14, $15)
                end
            from sequences
        ),

        {#- one pass over the entities: a count and a median per step (no row per step and entity) -#}
        aggregated as (
            select
                %11$s
            from reached
            %12$s
        ),

        counted as (
            select aggregated.breakdown_value, per_step.step, per_step.entities, per_step.median_seconds_from_previous
            from aggregated
            cross join lateral (values %13$s) as per_step (step, entities, median_seconds_from_previous)
        ),

        groups as (
            select counted.breakdown_value from counted
            union
            select null::text where %10$s
        ),

        filled as (
            select
                groups.breakdown_value,
                steps.step,
                coalesce(counted.entities, 0) as entities,
                counted.median_seconds_from_previous
            from groups
            cross join generate_series(1, $1) as steps (step)
            left join counted
                on groups.breakdown_value is not distinct from counted.breakdown_value
                and steps.step = counted.step
        ),

        final as (
            select
                filled.breakdown_value as breakdown,
                filled.step,
                $16[filled.step] as step_name,
                filled.entities,
                round(100.0 * filled.entities / nullif(first_value(filled.entities) over w_group, 0), 2)
                    as pct_of_first,
                round(100.0 * filled.entities / nullif(lag(filled.entities) over w_group, 0), 2)
                    as pct_of_previous,
                case when filled.step > 1 then filled.median_seconds_from_previous end
                    as median_seconds_from_previous,
                first_value(filled.entities) over w_group as first_entities
            from filled
            window w_group as (partition by filled.breakdown_value order by filled.step)
        )

        select
            final.breakdown,
            final.step,
            final.step_name,
            final.entities,
            final.pct_of_first,
            final.pct_of_previous,
            final.median_seconds_from_previous
        from final
        order by final.first_entities desc, final.breakdown nulls first, final.step
    $q$,
        product_sql, candidates_sql, session_breakdown, '', fast_sql, entity_sql,
        element_breakdown, masks_sql,
        case when breakdown_by is null then 'null::text' else 'slow_elements.breakdown_value' end,
        case when breakdown_by is null then 'true' else 'false' end,
        aggregate_sql,
        case when breakdown_by is null then '' else 'group by 1' end,
        values_sql
    );

    return query execute query using
        n, events, categories, brands, product_ids, price_mins, price_maxs, page_paths, searches,
        from_date, to_date, to_date + 1 + ceil(window_us / 86400000000.0)::integer, window_length,
        window_us, order_by = 'any', names, devices, sources, mediums, campaigns, codes, patterns,
        cast(extract(epoch from from_date::timestamptz) * 1000000 as bigint),
        cast(extract(epoch from (to_date + 1)::timestamptz) * 1000000 as bigint);
end
$fn$;
{%- endmacro %}
