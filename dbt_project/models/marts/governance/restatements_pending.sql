{#-
    What has changed for closed periods since they were built: per period mart, closed period and headline
    figure, the value the mart holds (as built before the period closed, or at its last restatement) and
    the value the same figure has now, from the exact sums the marts are built from
    (int_guerrilla_groups_aggregated, kept equal to a full refresh). Only figures that differ appear; an
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

published as (

    select * from published_guerrilla
    union all
    select * from published_nps
    union all
    select * from published_complaints

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
    full outer join current_figures
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
