{#-
    What has changed for closed periods since they were built: per period mart, closed period and headline
    figure, the value the mart holds (as built before the period closed, or at its last restatement) and
    the value the same figure has now, from the exact sums the marts are built from
    (int_guerrilla_groups_aggregated, kept equal to a full refresh; for customer_segments, the purchase
    days summed to each closed snapshot period's end). Only figures that differ appear; an
    empty table means nothing is pending. For a count (orders, complaints, NPS answers) the difference is
    the number of records; for revenue, its effect. `lens restate --from YYYY-MM` recomputes from a period
    on, after which its rows leave this table.
-#}
with

closing as (

    select open_from_date
    from {{ ref('int_periods_open') }}

),

published_guerrilla as (

    select
        'guerrilla_metrics' as mart_name,
        guerrilla.period_type,
        guerrilla.period_start_date,
        guerrilla.period_end_date,
        figures.figure,
        figures.figure_value
    from {{ ref('guerrilla_metrics') }} as guerrilla
    cross join
        lateral (
            values
            ('orders', guerrilla.orders::numeric),
            ('revenue', guerrilla.revenue::numeric),
            ('new_customers', guerrilla.new_customers::numeric),
            ('renewals', guerrilla.renewals::numeric),
            ('referrals', guerrilla.referrals::numeric)
        ) as figures (figure, figure_value)
    where guerrilla.group_type = 'all'

),

published_nps as (

    select
        'nps_by_segment' as mart_name,
        'month' as period_type,
        nps.month_start_date as period_start_date,
        nps.month_end_date as period_end_date,
        figures.figure,
        figures.figure_value
    from {{ ref('nps_by_segment') }} as nps
    cross join
        lateral (
            values
            ('nps_responses', nps.nps_responses::numeric),
            ('promoters', nps.promoters::numeric),
            ('detractors', nps.detractors::numeric),
            ('csat_responses', nps.csat_responses::numeric),
            ('csat_satisfied_responses', nps.csat_satisfied_responses::numeric)
        ) as figures (figure, figure_value)
    where nps.rfm_segment = 'all'

),

published_complaints as (

    select
        'complaint_trends' as mart_name,
        'month' as period_type,
        complaints.month_start_date as period_start_date,
        complaints.month_end_date as period_end_date,
        'complaints' as figure,
        complaints.complaints::numeric as figure_value
    from {{ ref('complaint_trends') }} as complaints
    where complaints.ticket_category = 'all'
        and complaints.ticket_channel = 'all'
        and complaints.rfm_segment = 'all'

),

published_segments as (

    -- the snapshot mart: per closed snapshot period, its customers and their lifetime orders and revenue
    select
        'customer_segments' as mart_name,
        '{{ snapshot_grain() }}' as period_type,
        date_trunc('{{ snapshot_grain() }}', segments.snapshot_date)::date as period_start_date,
        (
            date_trunc('{{ snapshot_grain() }}', segments.snapshot_date) + interval '1 {{ snapshot_grain() }}'
            - interval '1 day'
        )::date as period_end_date,
        figures.figure,
        sum(figures.figure_value) as figure_value
    from {{ ref('customer_segments') }} as segments
    cross join
        lateral (
            values
            ('customers', 1::numeric),
            ('lifetime_orders', segments.frequency_orders::numeric),
            ('lifetime_revenue', segments.monetary_revenue::numeric)
        ) as figures (figure, figure_value)
    where segments.snapshot_date < (select closing.open_from_date from closing)
    group by 1, 2, 3, 4, 5

),

published as (

    select * from published_guerrilla
    union all
    select * from published_nps
    union all
    select * from published_complaints
    union all
    select * from published_segments

),

sums as (

    select
        period_type,
        period_start_date,
        period_end_date,
        orders,
        revenue,
        new_customers,
        renewals,
        referrals,
        nps_responses,
        promoters,
        detractors,
        csat_responses,
        csat_satisfied_responses,
        complaints
    from {{ ref('int_guerrilla_groups_aggregated') }}
    where group_type = 'all'

),

current_figures as (

    select
        figures.mart_name,
        sums.period_type,
        sums.period_start_date,
        sums.period_end_date,
        figures.figure,
        figures.figure_value
    from sums
    cross join
        lateral (
            values
            ('guerrilla_metrics', 'orders', sums.orders::numeric),
            ('guerrilla_metrics', 'revenue', sums.revenue::numeric),
            ('guerrilla_metrics', 'new_customers', sums.new_customers::numeric),
            ('guerrilla_metrics', 'renewals', sums.renewals::numeric),
            ('guerrilla_metrics', 'referrals', sums.referrals::numeric),
            ('nps_by_segment', 'nps_responses', sums.nps_responses::numeric),
            ('nps_by_segment', 'promoters', sums.promoters::numeric),
            ('nps_by_segment', 'detractors', sums.detractors::numeric),
            ('nps_by_segment', 'csat_responses', sums.csat_responses::numeric),
            ('nps_by_segment', 'csat_satisfied_responses', sums.csat_satisfied_responses::numeric),
            ('complaint_trends', 'complaints', sums.complaints::numeric)
        ) as figures (mart_name, figure, figure_value)
    -- (the NPS and complaint marts have months only)
    where sums.period_type = 'month' or figures.mart_name = 'guerrilla_metrics'

),

snapshot_periods as (

    select
        period_start_date,
        period_end_date
    from {{ ref('int_periods_generated') }}
    where is_snapshot_period

),

purchases_by_period as (

    select
        date_trunc('{{ snapshot_grain() }}', purchase_date)::date as period_start_date,
        sum(orders) as orders,
        sum(revenue) as revenue
    from {{ ref('int_customer_purchase_days_aggregated') }}
    group by 1

),

first_purchases_by_period as (

    select
        date_trunc('{{ snapshot_grain() }}', first_purchase_date)::date as period_start_date,
        count(*) as customers
    from {{ ref('int_customer_purchases_summarized') }}
    group by 1

),

segments_now as (

    -- what a snapshot at each period's end holds now: everyone with a purchase by then, lifetime sums
    select
        snapshot_periods.period_start_date,
        snapshot_periods.period_end_date,
        sum(coalesce(first_purchases_by_period.customers, 0)) over to_period_end as customers,
        sum(coalesce(purchases_by_period.orders, 0)) over to_period_end as lifetime_orders,
        sum(coalesce(purchases_by_period.revenue, 0)) over to_period_end as lifetime_revenue
    from snapshot_periods
    left join purchases_by_period
        on snapshot_periods.period_start_date = purchases_by_period.period_start_date
    left join first_purchases_by_period
        on snapshot_periods.period_start_date = first_purchases_by_period.period_start_date
    window to_period_end as (order by snapshot_periods.period_start_date)

),

current_segment_figures as (

    select
        'customer_segments' as mart_name,
        '{{ snapshot_grain() }}' as period_type,
        segments_now.period_start_date,
        segments_now.period_end_date,
        figures.figure,
        figures.figure_value
    from segments_now
    cross join
        lateral (
            values
            ('customers', segments_now.customers::numeric),
            ('lifetime_orders', segments_now.lifetime_orders::numeric),
            ('lifetime_revenue', segments_now.lifetime_revenue::numeric)
        ) as figures (figure, figure_value)

),

current_all as (

    select * from current_figures
    union all
    select * from current_segment_figures

),

compared as (

    select
        coalesce(published.mart_name, current_figures.mart_name) as mart_name,
        coalesce(published.period_type, current_figures.period_type) as period_type,
        coalesce(published.period_start_date, current_figures.period_start_date) as period_start_date,
        coalesce(published.period_end_date, current_figures.period_end_date) as period_end_date,
        coalesce(published.figure, current_figures.figure) as figure,
        coalesce(published.figure_value, 0) as published_value,
        coalesce(current_figures.figure_value, 0) as current_value
    from published
    full outer join current_all as current_figures
        on published.mart_name = current_figures.mart_name
            and published.period_type = current_figures.period_type
            and published.period_start_date = current_figures.period_start_date
            and published.figure = current_figures.figure

),

final as (

    select
        -- keys
        compared.mart_name::text as mart_name,
        compared.period_type::text as period_type,
        compared.period_start_date::date as period_start_date,
        compared.figure::text as figure,

        -- period
        compared.period_end_date::date as period_end_date,

        -- figures
        compared.published_value::numeric(18, 6) as published_value,
        compared.current_value::numeric(18, 6) as current_value,
        (compared.current_value - compared.published_value)::numeric(18, 6) as difference,
        {{ ratio(
            'compared.current_value - compared.published_value', 'compared.published_value', 100, 2
        ) }}::numeric(9, 2) as difference_pct

    from compared
    cross join closing
    where compared.period_end_date < closing.open_from_date
        and compared.current_value <> compared.published_value

)

select * from final
