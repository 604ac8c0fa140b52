{#-
    How customers moved between segments from one snapshot to the next, for both segmentations
    (segment_type rfm_segment | value_tier). from_segment 'none' = the customer had no snapshot before
    (first purchase in this snapshot period); value tier 'unknown' = gross margin unknown.

    A snapshot mart with closed periods, like customer_segments: a build rewrites the snapshots of the
    open periods only (int_periods_open), reading the snapshot before them as their "from"; closed ones
    stay as built, a --full-refresh too (full_refresh=false).
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        full_refresh=false,
        unique_key=snapshot_period_key() | trim,
        incremental_predicates=[open_periods_predicate() | trim],
        meta={'open_periods_column': 'snapshot_date'},
        on_schema_change='fail',
    )
}}
-- depends_on: {{ ref('int_periods_open') }} {{ ref('int_periods_generated') }}  (read on incremental builds only)

with

{% if is_incremental() -%}
rewritten_periods as (

    {{ rewritten_snapshot_periods() }}

),

{% endif -%}
segments as (

    select
        customer_id,
        snapshot_date,
        rfm_segment,
        coalesce(value_tier, 'unknown') as value_tier
    from {{ ref('customer_segments') }}
    {% if is_incremental() -%}
    where snapshot_date >= coalesce(
        (
            select max(earlier.snapshot_date)
            from {{ ref('customer_segments') }} as earlier
            where earlier.snapshot_date < (select min(rewritten_periods.snapshot_date) from rewritten_periods)
        ),
        (select min(rewritten_periods.snapshot_date) from rewritten_periods)
    )
    {%- endif %}

),

snapshots as (

    select
        snapshot_date,
        lag(snapshot_date) over (order by snapshot_date) as previous_snapshot_date
    from (select distinct snapshot_date from segments) as snapshot_dates

),

segment_types as (

    select segment_type
    from unnest(array['rfm_segment', 'value_tier']) as segment_types (segment_type)

),

moves as (

    -- each customer's current and previous snapshot joined once, then read for both segmentations
    select
        snapshots.snapshot_date,
        snapshots.previous_snapshot_date,
        segment_types.segment_type,
        coalesce(
            case segment_types.segment_type
                when 'rfm_segment' then previous_segments.rfm_segment
                else previous_segments.value_tier
            end,
            'none'
        ) as from_segment,
        case segment_types.segment_type
            when 'rfm_segment' then current_segments.rfm_segment
            else current_segments.value_tier
        end as to_segment
    from segments as current_segments
    inner join snapshots
        on current_segments.snapshot_date = snapshots.snapshot_date
    left join segments as previous_segments
        on current_segments.customer_id = previous_segments.customer_id
            and snapshots.previous_snapshot_date = previous_segments.snapshot_date
    cross join segment_types
    {% if is_incremental() -%}
    -- the snapshot before the first recomputed one is only their "from"
    where current_segments.snapshot_date in (select rewritten_periods.snapshot_date from rewritten_periods)
    {%- endif %}

),

aggregated as (

    select
        -- keys
        snapshot_date::date as snapshot_date,
        segment_type::text as segment_type,
        from_segment::text as from_segment,
        to_segment::text as to_segment,

        -- snapshots compared
        previous_snapshot_date::date as previous_snapshot_date,

        -- flags and counts
        (from_segment = to_segment)::boolean as is_unchanged,
        count(*)::bigint as customers

    from moves
    group by 1, 2, 3, 4, 5, 6

)

select * from aggregated
