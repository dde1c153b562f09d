{#- Helpers of fact_session_sequences and of the funnel engine that reads it. -#}

{# {event name: one character} for the names in var known_event_names, in their order: a-z,
   then A-Z (at most 52 names); any other name is '~'. The funnel engine's fast path finds a
   step's events by this character (macros/funnel_engine.sql). #}
{% macro funnel_event_codes() -%}
    {%- set letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ' -%}
    {%- set names = var('known_event_names') -%}
    {%- if names | length > letters | length -%}
        {{ exceptions.raise_compiler_error('at most 52 known_event_names have a one-character code') }}
    {%- endif -%}
    {%- set codes = {} -%}
    {%- for name in names -%}
        {%- do codes.update({name: letters[loop.index0]}) -%}
    {%- endfor -%}
    {{ return(codes) }}
{%- endmacro %}

{# whole microseconds from one timestamp to another, as a bigint #}
{% macro microseconds_between(start_at, end_at) -%}
    {{ return(adapter.dispatch('microseconds_between', 'clickstream_analytics')(start_at, end_at)) }}
{%- endmacro %}

{% macro default__microseconds_between(start_at, end_at) -%}
    cast(extract(epoch from ({{ end_at }} - {{ start_at }})) * 1000000 as bigint)
{%- endmacro %}

{% macro spark__microseconds_between(start_at, end_at) -%}
    (unix_micros({{ end_at }}) - unix_micros({{ start_at }}))
{%- endmacro %}
