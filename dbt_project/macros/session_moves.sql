{#- Sessions that moved or went away. Two things a session-keyed increment cannot see from the
    rows it reads, because the rows that said them have been rewritten:
    - a retired session: a new event joins two of a visitor's derived sessions (or is loaded
      before every event of the one it joins), so fact_events re-keys the events of one of them
      to the key a full rebuild gives the whole run; the old key has no event left, and every
      mart keyed by session must drop it;
    - a session's old date: a late event that starts a session earlier (across midnight), or a
      merge, moves it to another session_date, and the daily aggregates must recount the date it
      left as well as the one it moved to.
    intermediate.session_moves records both, append-only, in the transaction of the write that
    causes it (fact_events' post-hook, fact_sessions' pre-hook): each consumer reads the rows
    recorded since its own last run (run_watermark), so a consumer skipped for some cycles (a
    failed test upstream, a killed run) still catches up. A row read twice costs a recount,
    never a wrong figure: a retired key never comes back (runs of events only ever join). -#}

{% macro session_moves_relation() -%}
    intermediate.session_moves
{%- endmacro %}

{# on-run-start (after the intermediate schema exists) #}
{% macro create_session_moves_table() -%}
    {{ return(adapter.dispatch('create_session_moves_table', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__create_session_moves_table() -%}
    create table if not exists {{ session_moves_relation() }} (
        session_id text not null,
        session_date date not null,
        is_retired boolean not null,
        recorded_at timestamptz not null
    );
    create index if not exists session_moves_recorded_at on {{ session_moves_relation() }} (recorded_at)
{%- endmacro %}

{% macro spark__create_session_moves_table() -%}
    create table if not exists {{ session_moves_relation() }} (
        session_id string not null,
        session_date date not null,
        is_retired boolean not null,
        recorded_at timestamp not null
    ) using iceberg
{%- endmacro %}

{# fact_events post-hook: the derived sessions this run retired (previous_session_id of the
   events it re-keyed), each with its date (its first event's) #}
{% macro record_retired_sessions() -%}
    {%- if is_incremental() -%}
        insert into {{ session_moves_relation() }} (session_id, session_date, is_retired, recorded_at)
        select
            resessioned.previous_session_id,
            min(resessioned.event_date),
            true,
            {{ run_timestamp() }}
        from {{ this }} as resessioned
        where
            resessioned.dbt_updated_at = {{ run_timestamp() }}
            and resessioned.previous_session_id is not null
        group by resessioned.previous_session_id
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# fact_sessions pre-hook: the dates of the sessions this run recomputes, as they are before it
   (record_unmoved_sessions removes those whose date stays) #}
{% macro record_session_dates() -%}
    {%- if is_incremental() -%}
        insert into {{ session_moves_relation() }} (session_id, session_date, is_retired, recorded_at)
        select
            recomputed.session_id,
            recomputed.session_date,
            false,
            {{ run_timestamp() }}
        from {{ this }} as recomputed
        where {{ in_short_list(
            'recomputed.session_id',
            'select changed_events.session_id from ' ~ ref('fact_events') ~ ' as changed_events'
            ~ ' where changed_events.dbt_updated_at > ' ~ run_watermark()
        ) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# fact_sessions post-hook: what record_session_dates wrote of sessions whose date has not
   changed goes again, so the table keeps only the moves #}
{% macro record_unmoved_sessions() -%}
    {%- if is_incremental() -%}
        delete from {{ session_moves_relation() }}
        where
            recorded_at = {{ run_timestamp() }}
            and not is_retired
            and session_id in (
                select kept.session_id
                from {{ this }} as kept
                inner join {{ session_moves_relation() }} as logged
                    on
                        kept.session_id = logged.session_id
                        and kept.session_date = logged.session_date
                where
                    logged.recorded_at = {{ run_timestamp() }}
                    and not logged.is_retired
            )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# the sessions retired since this model last ran #}
{% macro retired_sessions() -%}
    select retired.session_id
    from {{ session_moves_relation() }} as retired
    where
        retired.is_retired
        and retired.recorded_at > {{ run_watermark() }}
{%- endmacro %}

{# pre-hook of a model keyed by session: the sessions retired since it last ran go #}
{% macro delete_retired_sessions() -%}
    {{ delete_recomputed_keys('session_id', retired_sessions()) }}
{%- endmacro %}

{# the session dates a daily aggregate recounts beyond those of the rows written upstream: the
   dates sessions left (moved or retired) since it last ran, as `select session_date` #}
{% macro moved_session_dates() -%}
    select moved.session_date
    from {{ session_moves_relation() }} as moved
    where moved.recorded_at > {{ run_watermark() }}
{%- endmacro %}

{# pre-hook of a daily aggregate of sessions: the rows of the dates sessions left go (a date
   a moved session was the only one of keeps no row); the model recounts those dates #}
{% macro delete_moved_session_dates() -%}
    {{ delete_recomputed_keys('session_date', moved_session_dates()) }}
{%- endmacro %}
