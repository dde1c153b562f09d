{#- Date and time functions, dispatched by adapter so the models stay portable.
    Every timestamp in the warehouse is a timestamp with time zone; dates and hours are UTC. -#}

{# true when text is an RFC 3339 date-time with offset that the warehouse can cast: checked
   with a regex and a day-of-month check first, so a bad string never makes a cast fail #}
{% macro is_rfc3339_timestamp(expression) -%}
    {{ return(adapter.dispatch('is_rfc3339_timestamp', 'clickstream_analytics')(expression)) }}
{%- endmacro %}

{% macro default__is_rfc3339_timestamp(expression) -%}
    coalesce(regexp_like({{ expression }}, '{{ rfc3339_pattern() }}'), false)
{%- endmacro %}

{% macro postgres__is_rfc3339_timestamp(expression) -%}
    case
        when {{ expression }} ~ '{{ rfc3339_pattern() }}'
            then
                cast(substr({{ expression }}, 9, 2) as integer)
                <= extract(day from cast(substr({{ expression }}, 1, 7) || '-01' as date) + interval '1 month -1 day')
        else false
    end
{%- endmacro %}

{# year 1000-9999, real months, days, hours, minutes and seconds; offsets up to +-15:59 #}
{% macro rfc3339_pattern() -%}
    ^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-](0[0-9]|1[0-5]):[0-5][0-9])$
{%- endmacro %}

{# text (already validated) to a timestamp with time zone #}
{% macro to_timestamp_tz(expression) -%}
    {{ return(adapter.dispatch('to_timestamp_tz', 'clickstream_analytics')(expression)) }}
{%- endmacro %}

{% macro default__to_timestamp_tz(expression) -%}
    cast({{ expression }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro postgres__to_timestamp_tz(expression) -%}
    cast({{ expression }} as timestamptz)
{%- endmacro %}

{# the UTC calendar date of a timestamp #}
{% macro utc_date(expression) -%}
    {{ return(adapter.dispatch('utc_date', 'clickstream_analytics')(expression)) }}
{%- endmacro %}

{% macro default__utc_date(expression) -%}
    cast({{ expression }} as date)
{%- endmacro %}

{% macro postgres__utc_date(expression) -%}
    cast(({{ expression }} at time zone 'UTC') as date)
{%- endmacro %}

{# the start of the UTC hour of a timestamp, as a timestamp with time zone #}
{% macro utc_hour(expression) -%}
    {{ return(adapter.dispatch('utc_hour', 'clickstream_analytics')(expression)) }}
{%- endmacro %}

{% macro default__utc_hour(expression) -%}
    date_trunc('hour', {{ expression }})
{%- endmacro %}

{% macro postgres__utc_hour(expression) -%}
    (date_trunc('hour', {{ expression }} at time zone 'UTC') at time zone 'UTC')
{%- endmacro %}

{# seconds from start_at to end_at, as a number #}
{% macro seconds_between(start_at, end_at) -%}
    {{ return(adapter.dispatch('seconds_between', 'clickstream_analytics')(start_at, end_at)) }}
{%- endmacro %}

{% macro default__seconds_between(start_at, end_at) -%}
    {{ dbt.datediff(start_at, end_at, 'second') }}
{%- endmacro %}

{% macro postgres__seconds_between(start_at, end_at) -%}
    cast(extract(epoch from ({{ end_at }} - {{ start_at }})) as numeric)
{%- endmacro %}

{# a timestamp minus an interval given as text, e.g. '3 days' #}
{% macro minus_interval(expression, interval_text) -%}
    {{ return(adapter.dispatch('minus_interval', 'clickstream_analytics')(expression, interval_text)) }}
{%- endmacro %}

{% macro default__minus_interval(expression, interval_text) -%}
    ({{ expression }} - interval '{{ interval_text }}')
{%- endmacro %}

{% macro postgres__minus_interval(expression, interval_text) -%}
    ({{ expression }} - cast('{{ interval_text }}' as interval))
{%- endmacro %}

{#- Spark (session time zone UTC): timestamps are TIMESTAMP (with local time zone). -#}

{% macro spark__is_rfc3339_timestamp(expression) -%}
    case
        when regexp_like({{ expression }}, r'{{ rfc3339_pattern() }}')
            then
                cast(substr({{ expression }}, 9, 2) as integer)
                <= day(last_day(cast(substr({{ expression }}, 1, 7) || '-01' as date)))
        else false
    end
{%- endmacro %}

{# Spark's cast reads only an upper-case T and Z #}
{% macro spark__to_timestamp_tz(expression) -%}
    cast(upper({{ expression }}) as timestamp)
{%- endmacro %}

{% macro spark__seconds_between(start_at, end_at) -%}
    (cast(unix_micros({{ end_at }}) - unix_micros({{ start_at }}) as {{ type_decimal() }}) / 1000000)
{%- endmacro %}

{# a timestamp (with time zone on postgres) from its text, as a literal: run_watermark, the
   cycle tests' scope #}
{% macro timestamp_literal(text) -%}
    {{ return(adapter.dispatch('timestamp_literal', 'clickstream_analytics')(text)) }}
{%- endmacro %}

{% macro default__timestamp_literal(text) -%}
    cast('{{ text }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro postgres__timestamp_literal(text) -%}
    cast('{{ text }}' as timestamptz)
{%- endmacro %}
