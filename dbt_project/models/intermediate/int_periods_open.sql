{#-
    Which periods a build may rewrite. A period of the snapshot grain is closed once it has ended and the
    next period's first var('period_close_days') days have passed by the as-of date, so the first open
    period is the one holding the day that many days before the as-of date. var('restate_from') (set by
    `lens restate`) reopens the periods from the one holding that day on, for this build only.

    A period mart keeps a row whose period ended before rewrite_from_date as it was built; see
    restatements_pending for what has arrived for closed periods since.
-#}
{{ config(materialized='table', post_hook='analyze {{ this }}') }}
{%- set close_days = var('period_close_days') %}
{%- if close_days is not number or close_days < 0 or close_days != close_days | int %}
    {{ exceptions.raise_compiler_error(
        "var period_close_days must be a whole number of days, 0 or more; got '" ~ close_days ~ "'"
    ) }}
{%- endif %}

with

as_of as (

    select as_of_date
    from {{ ref('int_as_of_date') }}

),

first_open as (

    select
        as_of_date,
        date_trunc(
            '{{ snapshot_grain() }}', as_of_date - {{ close_days | int }}
        )::date as open_from_date
    from as_of

),

final as (

    select
        as_of_date::date as as_of_date,
        open_from_date::date as open_from_date,
        {%- if var('restate_from') %}
        least(
            open_from_date, date_trunc('{{ snapshot_grain() }}', date '{{ var("restate_from") }}')::date
        )::date as rewrite_from_date
        {%- else %}
        open_from_date::date as rewrite_from_date
        {%- endif %}
    from first_open

)

select * from final
