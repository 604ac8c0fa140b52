{#-
    The calendar every mart reports on: months, quarters and years (and the snapshot grain, if it is
    another one) from the first recorded activity to the as-of date. A period's snapshot_date is its last
    day, or the as-of date for the period still running.

    A table, not a view: a few dozen rows that most marts join to; as a view, each reference recomputes
    the first activity over all raw sources, and PostgreSQL estimates one row for it, which sends the
    customer x period joins into nested loops over millions of rows (minutes at large scale).
-#}
{{ config(materialized='table', post_hook='analyze {{ this }}') }}

with

as_of as (

    select as_of_date
    from {{ ref('int_as_of_date') }}

),

customers as (

    select min(created_at) as first_at
    from {{ ref('stg_sales__customers') }}

),

orders as (

    select min(ordered_at) as first_at
    from {{ ref('stg_sales__orders') }}

),

tickets as (

    select min(created_at) as first_at
    from {{ ref('tickets') }}

),

responses as (

    select min(submitted_at) as first_at
    from {{ ref('stg_survey__responses') }}

),

first_activity as (

    select
        {{ to_utc_date('least(customers.first_at, orders.first_at, tickets.first_at, responses.first_at)') }}
            as first_activity_date
    from customers
    cross join orders
    cross join tickets
    cross join responses

),

period_types as (

    select distinct
        period_type,
        case period_type
            when 'week' then interval '1 week'
            when 'month' then interval '1 month'
            when 'quarter' then interval '3 months'
            when 'year' then interval '1 year'
        end as period_length
    from unnest(array['month', 'quarter', 'year', '{{ snapshot_grain() }}']) as period_types (period_type)

),

period_starts_generated as (

    select
        period_types.period_type,
        period_types.period_length,
        as_of.as_of_date,
        generate_series(
            date_trunc(period_types.period_type, first_activity.first_activity_date::timestamp),
            as_of.as_of_date::timestamp,
            period_types.period_length
        ) as period_start
    from period_types
    cross join first_activity
    cross join as_of
    where first_activity.first_activity_date <= as_of.as_of_date

),

periods_generated as (

    select
        period_type,
        period_start::date as period_start_date,
        (period_start + period_length - interval '1 day')::date as period_end_date,
        as_of_date
    from period_starts_generated

),

snapshots_assigned as (

    select
        period_type,
        period_start_date,
        period_end_date,
        least(period_end_date, as_of_date) as snapshot_date,
        period_end_date <= as_of_date as is_complete_period,
        period_type = '{{ snapshot_grain() }}' as is_snapshot_period
    from periods_generated

),

segment_snapshots_found as (

    -- the segment snapshot a period reports its customers' segments from: the last one within it
    select
        periods.period_type,
        periods.period_start_date,
        max(snapshots.snapshot_date) as segment_snapshot_date
    from snapshots_assigned as periods
    left join snapshots_assigned as snapshots
        on snapshots.is_snapshot_period
            and periods.snapshot_date >= snapshots.snapshot_date
    group by periods.period_type, periods.period_start_date

),

final as (

    select
        snapshots_assigned.*,
        segment_snapshots_found.segment_snapshot_date
    from snapshots_assigned
    inner join segment_snapshots_found
        on snapshots_assigned.period_type = segment_snapshots_found.period_type
            and snapshots_assigned.period_start_date = segment_snapshots_found.period_start_date

)

select * from final
