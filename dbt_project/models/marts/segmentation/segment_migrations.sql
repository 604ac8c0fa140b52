{#-
    How customers moved between segments from one snapshot to the next, for both segmentations
    (segment_type rfm_segment | value_tier). from_segment 'none' = the customer had no snapshot before
    (first purchase in this snapshot period); value tier 'unknown' = gross margin unknown.
-#}
with

segments as (

    select
        customer_id,
        snapshot_date,
        rfm_segment,
        coalesce(value_tier, 'unknown') as value_tier
    from {{ ref('customer_segments') }}

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

segments_unpivoted as (

    select
        segments.customer_id,
        segments.snapshot_date,
        segment_types.segment_type,
        case segment_types.segment_type
            when 'rfm_segment' then segments.rfm_segment
            else segments.value_tier
        end as segment_value
    from segments
    cross join segment_types

),

moves as (

    select
        snapshots.snapshot_date,
        snapshots.previous_snapshot_date,
        current_segments.segment_type,
        coalesce(previous_segments.segment_value, 'none') as from_segment,
        current_segments.segment_value as to_segment
    from segments_unpivoted as current_segments
    inner join snapshots
        on current_segments.snapshot_date = snapshots.snapshot_date
    left join segments_unpivoted as previous_segments
        on current_segments.customer_id = previous_segments.customer_id
            and current_segments.segment_type = previous_segments.segment_type
            and snapshots.previous_snapshot_date = previous_segments.snapshot_date

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
