-- complaint_trends: the detail rows of a month add up to its all/all/all row. Returns the months that
-- do not.
with

trends as (

    select
        month_start_date,
        is_rollup,
        ticket_category,
        ticket_channel,
        rfm_segment,
        complaints
    from {{ ref('complaint_trends') }}

),

details as (

    select
        month_start_date,
        sum(complaints) as complaints
    from trends
    where not is_rollup
    group by month_start_date

),

totals as (

    select
        month_start_date,
        complaints
    from trends
    where ticket_category = 'all'
        and ticket_channel = 'all'
        and rfm_segment = 'all'

)

select
    totals.month_start_date,
    totals.complaints as total_complaints,
    details.complaints as detail_complaints
from totals
left join details
    on totals.month_start_date = details.month_start_date
where coalesce(details.complaints, 0) != totals.complaints
