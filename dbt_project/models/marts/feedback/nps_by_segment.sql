{#-
    NPS and CSAT per month and RFM segment ('all' = every segment). An answer counts in the month it was
    submitted and in its customer's segment of that month; 'unmatched' = the answer matches no customer,
    'unsegmented' = the customer had no purchase yet. NPS = % promoters (9-10) - % detractors (0-6) of the
    NPS answers; CSAT = % of CSAT answers scoring 4 or 5. Both are null in a month without answers.
-#}
with

months as (

    select
        period_start_date as month_start_date,
        period_end_date as month_end_date,
        is_complete_period as is_complete_month
    from {{ ref('int_periods_generated') }}
    where period_type = 'month'

),

responses as (

    select
        response_id,
        customer_id,
        response_kind,
        nps_score,
        nps_category,
        csat_score,
        is_csat_satisfied,
        submitted_date
    from {{ ref('int_survey_responses_matched') }}
    where submitted_date <= {{ as_of_date() }}
        and (
            (response_kind = 'nps' and nps_score is not null)
            or (response_kind = 'csat' and csat_score is not null)
        )

),

responses_segmented as (

    select
        responses.*,
        date_trunc('month', responses.submitted_date)::date as month_start_date,
        case
            when responses.customer_id is null then 'unmatched'
            else coalesce(memberships.rfm_segment, 'unsegmented')
        end as rfm_segment
    from responses
    -- a response's segment, looked up by the membership key (macro membership_lookup)
    {{ membership_lookup(
        'responses.customer_id', "'month'", "date_trunc('month', responses.submitted_date)::date", ['rfm_segment']
    ) }}

),

responses_aggregated as (

    select
        month_start_date,
        case when grouping(rfm_segment) = 1 then 'all' else rfm_segment end as rfm_segment,
        count(*) filter (where response_kind = 'nps') as nps_responses,
        count(*) filter (where response_kind = 'nps' and nps_category = 'promoter') as promoters,
        count(*) filter (where response_kind = 'nps' and nps_category = 'passive') as passives,
        count(*) filter (where response_kind = 'nps' and nps_category = 'detractor') as detractors,
        count(*) filter (where response_kind = 'csat') as csat_responses,
        count(*) filter (where response_kind = 'csat' and is_csat_satisfied) as csat_satisfied_responses
    from responses_segmented
    group by month_start_date, rollup (rfm_segment)

),

segments as (

    select distinct rfm_segment
    from responses_aggregated

),

spine as (

    select
        months.*,
        segments.rfm_segment
    from months
    cross join segments

),

filled as (

    select
        spine.*,
        coalesce(responses_aggregated.nps_responses, 0) as nps_responses,
        coalesce(responses_aggregated.promoters, 0) as promoters,
        coalesce(responses_aggregated.passives, 0) as passives,
        coalesce(responses_aggregated.detractors, 0) as detractors,
        coalesce(responses_aggregated.csat_responses, 0) as csat_responses,
        coalesce(responses_aggregated.csat_satisfied_responses, 0) as csat_satisfied_responses
    from spine
    left join responses_aggregated
        on spine.month_start_date = responses_aggregated.month_start_date
            and spine.rfm_segment = responses_aggregated.rfm_segment

),

final as (

    select
        -- keys
        month_start_date::date as month_start_date,
        rfm_segment::text as rfm_segment,

        -- period
        month_end_date::date as month_end_date,
        is_complete_month::boolean as is_complete_month,

        -- NPS
        nps_responses::bigint as nps_responses,
        promoters::bigint as promoters,
        passives::bigint as passives,
        detractors::bigint as detractors,
        {{ ratio('promoters - detractors', 'nps_responses', 100, 2) }}::numeric(9, 2) as nps,

        -- CSAT
        csat_responses::bigint as csat_responses,
        csat_satisfied_responses::bigint as csat_satisfied_responses,
        {{ ratio('csat_satisfied_responses', 'csat_responses', 100, 2) }}::numeric(9, 2) as csat_pct

    from filled

)

select * from final
