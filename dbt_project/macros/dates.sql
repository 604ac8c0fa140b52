{#- The UTC calendar date of a timestamptz expression (independent of the session time zone). -#}
{% macro to_utc_date(timestamp_expression) -%}
    (({{ timestamp_expression }}) at time zone 'UTC')::date
{%- endmacro %}

{#- Hours between two timestamptz expressions, as numeric (null when either is null). -#}
{% macro hours_between(start_at, end_at) -%}
    (extract(epoch from (({{ end_at }}) - ({{ start_at }}))) / 3600.0)
{%- endmacro %}

{#- The reporting date of the build, as a scalar subquery (see int_as_of_date). -#}
{% macro as_of_date() -%}
    (select as_of_date from {{ ref('int_as_of_date') }})
{%- endmacro %}

{#-
    The high-water mark of an incremental model, as a timestamptz literal: the newest value of `column`
    already in {{ this }}, minus var('incremental_lookback_hours'). Read once when the model compiles, so
    PostgreSQL plans the "newer than" filter with a known bound (block-range index on the raw table, index
    lookups for the rows already merged) instead of guessing a third of the table.
-#}
{% macro incremental_watermark(column='loaded_at') -%}
    {%- set lookback = var('incremental_lookback_hours') | int -%}
    {%- if execute -%}
        {%- set query -%}
            select (coalesce(max({{ column }}), '-infinity'::timestamptz) - interval '{{ lookback }} hours')::text
            from {{ this }}
        {%- endset -%}
        '{{ run_query(query).columns[0].values()[0] }}'::timestamptz
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}
