{#-
    NPS and CSAT per month and RFM segment ('all' = every segment). An answer counts in the month it was
    submitted and in its customer's segment of that month; 'unmatched' = the answer matches no customer,
    'unsegmented' = the customer had no purchase yet. NPS = % promoters (9-10) - % detractors (0-6) of the
    NPS answers; CSAT = % of CSAT answers scoring 4 or 5. Both are null in a month without answers.
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

answers_aggregated as (

    -- the NPS and CSAT answer counts per month and segment, from the guerrilla group sums: an answer
    -- counts there in the month it was submitted and in its customer's segment of that month (group
    -- type 'all' = every answer), and those sums are kept up to date by difference, where counting the
    -- answers again meant looking up every answer's segment
    select
        period_start_date as month_start_date,
        group_value as rfm_segment,
        nps_responses,
        promoters,
        passives,
        detractors,
        csat_responses,
        csat_satisfied_responses
    from {{ ref('int_guerrilla_groups_aggregated') }}
    where period_type = 'month'
        and group_type in ('all', 'segment')
        and nps_responses + csat_responses > 0

),

segments as (

    select distinct rfm_segment
    from answers_aggregated

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
        coalesce(answers_aggregated.nps_responses, 0) as nps_responses,
        coalesce(answers_aggregated.promoters, 0) as promoters,
        coalesce(answers_aggregated.passives, 0) as passives,
        coalesce(answers_aggregated.detractors, 0) as detractors,
        coalesce(answers_aggregated.csat_responses, 0) as csat_responses,
        coalesce(answers_aggregated.csat_satisfied_responses, 0) as csat_satisfied_responses
    from spine
    left join answers_aggregated
        on spine.month_start_date = answers_aggregated.month_start_date
            and spine.rfm_segment = answers_aggregated.rfm_segment

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
{% if is_incremental() %}
where month_end_date >= (select rewrite_from_date from {{ ref('int_periods_open') }})
{% endif %}
