-- New, lost and won-back customers are counted once per period whatever the grouping: every group_type
-- must give the same totals as group_type 'all'. Returns the disagreeing periods.
with

summed as (

    select
        period_type,
        period_start_date,
        group_type,
        sum(new_customers) as new_customers,
        sum(lost_customers) as lost_customers,
        sum(reactivated_customers) as reactivated_customers,
        sum(active_customers) as active_customers,
        sum(renewals) as renewals,
        sum(referrals) as referrals,
        sum(nps_responses) as nps_responses
    from {{ ref('guerrilla_metrics') }}
    group by period_type, period_start_date, group_type

),

company as (

    select *
    from summed
    where group_type = 'all'

)

select summed.*
from summed
inner join company
    on summed.period_type = company.period_type
        and summed.period_start_date = company.period_start_date
where (
    summed.new_customers,
    summed.lost_customers,
    summed.reactivated_customers,
    summed.active_customers,
    summed.renewals,
    summed.referrals,
    summed.nps_responses
) is distinct from (
    company.new_customers,
    company.lost_customers,
    company.reactivated_customers,
    company.active_customers,
    company.renewals,
    company.referrals,
    company.nps_responses
)
