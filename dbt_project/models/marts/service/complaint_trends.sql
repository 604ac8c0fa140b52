{#-
    Complaints (helpdesk tickets of type 'complaint') per month, category, channel and RFM segment, with
    roll-ups: 'all' in a dimension means every value of it (a row with any 'all' is a roll-up; do not add
    roll-ups to detail rows). Each series (category x channel x segment) is dense over the months, so the
    month-over-month, year-over-year and rolling figures compare like with like. A complaint's segment is
    its customer's segment in the month it was opened; 'unmatched' = the requester matches no customer.
-#}
{#-
    A period mart: a build rewrites the open periods only (int_periods_open); closed ones stay as built,
    a --full-refresh too (full_refresh=false): `lens restate` recomputes them, on request and audited.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        full_refresh=false,
        unique_key='month_start_date',
        on_schema_change='fail',
    )
}}
-- depends_on: {{ ref('int_periods_open') }}  (read on incremental builds only)

with

months as (

    select
        period_start_date as month_start_date,
        period_end_date as month_end_date,
        is_complete_period as is_complete_month
    from {{ ref('int_periods_generated') }}
    where period_type = 'month'

),

complaints as (

    select
        ticket_id,
        customer_id,
        ticket_category,
        ticket_channel,
        first_reply_hours,
        resolution_hours,
        is_reopened,
        created_date
    from {{ ref('int_tickets_matched') }}
    where is_complaint
        and created_date <= {{ as_of_date() }}

),

complaints_segmented as (

    select
        complaints.ticket_id,
        date_trunc('month', complaints.created_date)::date as month_start_date,
        coalesce(complaints.ticket_category, 'unknown') as ticket_category,
        coalesce(complaints.ticket_channel, 'unknown') as ticket_channel,
        case
            when complaints.customer_id is null then 'unmatched'
            else coalesce(memberships.rfm_segment, 'unsegmented')
        end as rfm_segment,
        complaints.first_reply_hours,
        complaints.resolution_hours,
        complaints.is_reopened
    from complaints
    -- a complaint's segment, looked up by the membership key (macro membership_lookup)
    {{ membership_lookup(
        'complaints.customer_id', "'month'", "date_trunc('month', complaints.created_date)::date", ['rfm_segment']
    ) }}

),

complaints_aggregated as (

    select
        month_start_date,
        case when grouping(ticket_category) = 1 then 'all' else ticket_category end as ticket_category,
        case when grouping(ticket_channel) = 1 then 'all' else ticket_channel end as ticket_channel,
        case when grouping(rfm_segment) = 1 then 'all' else rfm_segment end as rfm_segment,
        count(*) as complaints,
        count(*) filter (where is_reopened) as reopened_complaints,
        percentile_cont(0.5) within group (order by first_reply_hours) as median_first_reply_hours,
        percentile_cont(0.5) within group (order by resolution_hours) as median_resolution_hours
    from complaints_segmented
    group by month_start_date, cube (ticket_category, ticket_channel, rfm_segment)

),

active_customers_by_segment as (

    -- the active customers per month and segment (and in all), from the guerrilla group sums, which
    -- are kept up to date by difference instead of counting every customer's months again; those with
    -- no segment (unsegmented) have no rate
    select
        period_start_date as month_start_date,
        group_value as rfm_segment,
        active_customers
    from {{ ref('int_guerrilla_groups_aggregated') }}
    where period_type = 'month'
        and (group_type = 'all' or (group_type = 'segment' and group_value not in ('unsegmented', 'unmatched')))

),

series as (

    select distinct
        ticket_category,
        ticket_channel,
        rfm_segment
    from complaints_aggregated

),

spine as (

    select
        months.month_start_date,
        months.month_end_date,
        months.is_complete_month,
        series.ticket_category,
        series.ticket_channel,
        series.rfm_segment
    from months
    cross join series

),

filled as (

    select
        spine.*,
        coalesce(complaints_aggregated.complaints, 0) as complaints,
        coalesce(complaints_aggregated.reopened_complaints, 0) as reopened_complaints,
        complaints_aggregated.median_first_reply_hours,
        complaints_aggregated.median_resolution_hours,
        active_customers_by_segment.active_customers
    from spine
    left join complaints_aggregated
        on spine.month_start_date = complaints_aggregated.month_start_date
            and spine.ticket_category = complaints_aggregated.ticket_category
            and spine.ticket_channel = complaints_aggregated.ticket_channel
            and spine.rfm_segment = complaints_aggregated.rfm_segment
    left join active_customers_by_segment
        on spine.month_start_date = active_customers_by_segment.month_start_date
            and spine.rfm_segment = active_customers_by_segment.rfm_segment

),

windowed as (

    select
        *,
        lag(complaints, 1) over series_by_month as complaints_previous_month,
        lag(complaints, 12) over series_by_month as complaints_same_month_last_year,
        avg(complaints) over rolling_3 as rolling_3m_avg,
        count(*) over rolling_3 as rolling_3m_months,
        sum(complaints) over rolling_6 as rolling_6m_complaints,
        count(*) over rolling_6 as rolling_6m_months
    from filled
    window
        series_by_month as (
            partition by ticket_category, ticket_channel, rfm_segment
            order by month_start_date
        ),
        rolling_3 as (
            partition by ticket_category, ticket_channel, rfm_segment
            order by month_start_date
            rows between 2 preceding and current row
        ),
        rolling_6 as (
            partition by ticket_category, ticket_channel, rfm_segment
            order by month_start_date
            rows between 5 preceding and current row
        )

),

trended as (

    select
        *,
        case when rolling_3m_months = 3 then rolling_3m_avg end as complaints_rolling_3m_avg,
        case
            when rolling_6m_months = 6
                then lag(rolling_3m_avg, 3) over (
                        partition by ticket_category, ticket_channel, rfm_segment
                        order by month_start_date
                    )
        end as complaints_previous_3m_avg
    from windowed

),

final as (

    select
        -- keys
        month_start_date::date as month_start_date,
        ticket_category::text as ticket_category,
        ticket_channel::text as ticket_channel,
        rfm_segment::text as rfm_segment,

        -- period and roll-up
        month_end_date::date as month_end_date,
        is_complete_month::boolean as is_complete_month,
        (ticket_category = 'all' or ticket_channel = 'all' or rfm_segment = 'all')::boolean as is_rollup,

        -- volume
        complaints::bigint as complaints,
        active_customers::bigint as active_customers,
        {{ ratio('complaints', 'active_customers', 100, 2) }}::numeric(9, 2) as complaints_per_100_active_customers,

        -- handling
        round(median_first_reply_hours::numeric, 2)::numeric(12, 2) as median_first_reply_hours,
        round(median_resolution_hours::numeric, 2)::numeric(12, 2) as median_resolution_hours,
        reopened_complaints::bigint as reopened_complaints,
        {{ ratio('reopened_complaints', 'complaints', 100, 2) }}::numeric(9, 2) as reopen_rate_pct,

        -- change
        complaints_previous_month::bigint as complaints_previous_month,
        {{ pct_change('complaints', 'complaints_previous_month') }}::numeric(9, 2) as complaints_mom_pct_change,
        complaints_same_month_last_year::bigint as complaints_same_month_last_year,
        {{ pct_change('complaints', 'complaints_same_month_last_year') }}::numeric(9, 2) as complaints_yoy_pct_change,
        round(complaints_rolling_3m_avg, 2)::numeric(12, 2) as complaints_rolling_3m_avg,
        round(complaints_previous_3m_avg, 2)::numeric(12, 2) as complaints_previous_3m_avg,
        (case
            when complaints_previous_3m_avg is null then 'insufficient_data'
            when rolling_6m_complaints < {{ var('trend_min_complaints') | int }} then 'insufficient_data'
            when complaints_rolling_3m_avg = complaints_previous_3m_avg then 'stable'
            when complaints_previous_3m_avg = 0 then 'rising'
            when 100.0 * (complaints_rolling_3m_avg - complaints_previous_3m_avg) / complaints_previous_3m_avg
                >= {{ var('trend_threshold_pct') }} then 'rising'
            when 100.0 * (complaints_rolling_3m_avg - complaints_previous_3m_avg) / complaints_previous_3m_avg
                <= -{{ var('trend_threshold_pct') }} then 'falling'
            else 'stable'
        end)::text as trend_direction

    from trended

)

select * from final
{% if is_incremental() %}
where month_end_date >= (select rewrite_from_date from {{ ref('int_periods_open') }})
{% endif %}
