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

