{#-
    The five guerrilla metrics per period and customer group. Every event (an order, a ticket, a new or
    won-back customer, a loss, a renewal, a referral, an NPS answer) is counted in the period of its date
    and in the group its customer belonged to in that period (customer_period_groups). Records that
    match no customer count under group_value 'unmatched', so the groups of one group_type always add up
    to the company total. Quarter and year rows are computed from events, not summed from months (a
    customer's segment can differ between a month and its quarter).
-#}
with

periods as (

    select
        period_type,
        period_start_date,
        period_end_date,
        is_complete_period
    from {{ ref('int_periods_generated') }}
    where period_type in ('month', 'quarter', 'year')

),

memberships as (

    select
        customer_id,
        period_type,
        period_start_date,
        rfm_segment,
        value_tier,
        attribute_value,
        is_active_in_period,
        is_new_in_period
    from {{ ref('customer_period_groups') }}

),

orders as (

    select
        case when is_customer_matched then customer_id end as customer_id,
        order_date,
        revenue,
        cost
    from {{ ref('orders') }}
    where is_revenue_order
        and order_date <= {{ as_of_date() }}

),

tickets as (

    select
        customer_id,
        created_date,
        is_complaint
    from {{ ref('int_tickets_matched') }}
    where created_date <= {{ as_of_date() }}

),

episodes as (

    select
        customer_id,
        episode_number,
        episode_started_date
    from {{ ref('customer_episodes') }}

),

losses as (

    select
        customer_id,
        lost_date,
        revenue_12m_before_loss
    from {{ ref('int_customer_losses_enriched') }}

),

renewals as (

    select
        customer_id,
        signed_date,
        annual_value
    from {{ ref('int_contracts_matched') }}
    where is_renewal
        and is_customer_matched
        and signed_date <= {{ as_of_date() }}

),

customers as (

    select
        customer_id,
        referred_by_customer_id
    from {{ ref('stg_sales__customers') }}

),

nps_responses as (

    select
        customer_id,
        submitted_date,
        nps_category
    from {{ ref('int_survey_responses_matched') }}
    where response_kind = 'nps'
        and nps_score is not null
        and submitted_date <= {{ as_of_date() }}

),

period_types as (

    select distinct period_type
    from periods

),

referrals as (

    -- a new customer's referral counts for the referrer, on the day the new customer started
    select
        referrers.customer_id,
        episodes.episode_started_date as referred_date
    from episodes
    inner join customers as referred
        on episodes.customer_id = referred.customer_id
    left join customers as referrers
        on referred.referred_by_customer_id = referrers.customer_id
    where episodes.episode_number = 1
        and referred.referred_by_customer_id is not null

),

events_unioned as (

    -- one row per event with the measures it contributes (0 = not this kind of event);
    -- customer_id null = the record matches no customer
    select
        customer_id,
        order_date as event_date,
        1 as orders,
        revenue,
        coalesce(cost, 0) as known_cost,
        case when cost is null then 1 else 0 end as orders_with_unknown_cost,
        0 as tickets,
        0 as complaints,
        0 as new_customers,
        0 as reactivated_customers,
        0 as lost_customers,
        0::numeric as lost_customer_value,
        0 as renewals,
        0::numeric as renewal_value,
        0 as referrals,
        0 as nps_responses,
        0 as promoters
    from orders

    union all

    select
        customer_id,
        created_date as event_date,
        0 as orders,
        0::numeric as revenue,
        0::numeric as known_cost,
        0 as orders_with_unknown_cost,
        1 as tickets,
        case when is_complaint then 1 else 0 end as complaints,
        0 as new_customers,
        0 as reactivated_customers,
        0 as lost_customers,
        0::numeric as lost_customer_value,
        0 as renewals,
        0::numeric as renewal_value,
        0 as referrals,
        0 as nps_responses,
        0 as promoters
    from tickets

    union all

    select
        customer_id,
        episode_started_date as event_date,
        0 as orders,
        0::numeric as revenue,
        0::numeric as known_cost,
        0 as orders_with_unknown_cost,
        0 as tickets,
        0 as complaints,
        case when episode_number = 1 then 1 else 0 end as new_customers,
        case when episode_number > 1 then 1 else 0 end as reactivated_customers,
        0 as lost_customers,
        0::numeric as lost_customer_value,
        0 as renewals,
        0::numeric as renewal_value,
        0 as referrals,
        0 as nps_responses,
        0 as promoters
    from episodes

    union all

    select
        customer_id,
        lost_date as event_date,
        0 as orders,
        0::numeric as revenue,
        0::numeric as known_cost,
        0 as orders_with_unknown_cost,
        0 as tickets,
        0 as complaints,
        0 as new_customers,
        0 as reactivated_customers,
        1 as lost_customers,
        revenue_12m_before_loss as lost_customer_value,
        0 as renewals,
        0::numeric as renewal_value,
        0 as referrals,
        0 as nps_responses,
        0 as promoters
    from losses

    union all

    select
        customer_id,
        signed_date as event_date,
        0 as orders,
        0::numeric as revenue,
        0::numeric as known_cost,
        0 as orders_with_unknown_cost,
        0 as tickets,
        0 as complaints,
        0 as new_customers,
        0 as reactivated_customers,
        0 as lost_customers,
        0::numeric as lost_customer_value,
        1 as renewals,
        annual_value as renewal_value,
        0 as referrals,
        0 as nps_responses,
        0 as promoters
    from renewals

    union all

    select
        customer_id,
        referred_date as event_date,
        0 as orders,
        0::numeric as revenue,
        0::numeric as known_cost,
        0 as orders_with_unknown_cost,
        0 as tickets,
        0 as complaints,
        0 as new_customers,
        0 as reactivated_customers,
        0 as lost_customers,
        0::numeric as lost_customer_value,
        0 as renewals,
        0::numeric as renewal_value,
        1 as referrals,
        0 as nps_responses,
        0 as promoters
    from referrals

    union all

    select
        customer_id,
        submitted_date as event_date,
        0 as orders,
        0::numeric as revenue,
        0::numeric as known_cost,
        0 as orders_with_unknown_cost,
        0 as tickets,
        0 as complaints,
        0 as new_customers,
        0 as reactivated_customers,
        0 as lost_customers,
        0::numeric as lost_customer_value,
        0 as renewals,
        0::numeric as renewal_value,
        0 as referrals,
        1 as nps_responses,
        case when nps_category = 'promoter' then 1 else 0 end as promoters
    from nps_responses

),

events_aggregated_to_customer_periods as (

    select
        events_unioned.customer_id,
        period_types.period_type,
        date_trunc(period_types.period_type, events_unioned.event_date)::date as period_start_date,
        sum(orders) as orders,
        sum(revenue) as revenue,
        sum(known_cost) as known_cost,
        sum(orders_with_unknown_cost) as orders_with_unknown_cost,
        sum(tickets) as tickets,
        sum(complaints) as complaints,
        sum(new_customers) as new_customers,
        sum(reactivated_customers) as reactivated_customers,
        sum(lost_customers) as lost_customers,
        sum(lost_customer_value) as lost_customer_value,
        sum(renewals) as renewals,
        sum(renewal_value) as renewal_value,
        sum(referrals) as referrals,
        sum(nps_responses) as nps_responses,
        sum(promoters) as promoters
    from events_unioned
    cross join period_types
    group by 1, 2, 3

),

customer_periods as (

    -- memberships carry the groups and activity; events add the measures
    select
        coalesce(memberships.customer_id, events.customer_id) as customer_id,
        coalesce(memberships.period_type, events.period_type) as period_type,
        coalesce(memberships.period_start_date, events.period_start_date) as period_start_date,
        case
            when events.customer_id is null and memberships.customer_id is null then 'unmatched'
            else coalesce(memberships.rfm_segment, 'unsegmented')
        end as rfm_segment,
        case
            when events.customer_id is null and memberships.customer_id is null then 'unmatched'
            else coalesce(memberships.value_tier, 'unsegmented')
        end as value_tier,
        case
            when events.customer_id is null and memberships.customer_id is null then 'unmatched'
            else coalesce(memberships.attribute_value, 'unknown')
        end as attribute_value,
        case when memberships.is_active_in_period then 1 else 0 end as active_customers,
        coalesce(memberships.is_new_in_period, false) as is_new_in_period,
        coalesce(events.orders, 0) as orders,
        coalesce(events.revenue, 0) as revenue,
        coalesce(events.known_cost, 0) as known_cost,
        coalesce(events.orders_with_unknown_cost, 0) as orders_with_unknown_cost,
        coalesce(events.tickets, 0) as tickets,
        coalesce(events.complaints, 0) as complaints,
        coalesce(events.new_customers, 0) as new_customers,
        coalesce(events.reactivated_customers, 0) as reactivated_customers,
        coalesce(events.lost_customers, 0) as lost_customers,
        coalesce(events.lost_customer_value, 0) as lost_customer_value,
        coalesce(events.renewals, 0) as renewals,
        coalesce(events.renewal_value, 0) as renewal_value,
        coalesce(events.referrals, 0) as referrals,
        coalesce(events.nps_responses, 0) as nps_responses,
        coalesce(events.promoters, 0) as promoters
    from memberships
    full outer join events_aggregated_to_customer_periods as events
        on memberships.customer_id = events.customer_id
            and memberships.period_type = events.period_type
            and memberships.period_start_date = events.period_start_date

),

groups_aggregated as (

    -- one pass over the customer periods for all four group types (grouping sets, not a 4x cross join)
    select
        period_type,
        period_start_date,
        case
            when grouping(rfm_segment) = 0 then 'segment'
            when grouping(value_tier) = 0 then 'value_tier'
            when grouping(attribute_value) = 0 then '{{ group_attribute_column() }}'
            else 'all'
        end as group_type,
        case
            when grouping(rfm_segment) = 0 then rfm_segment
            when grouping(value_tier) = 0 then value_tier
            when grouping(attribute_value) = 0 then attribute_value
            else 'all'
        end as group_value,
        sum(active_customers) as active_customers,
        sum(new_customers) as new_customers,
        sum(case when is_new_in_period then revenue else 0 end) as new_customer_revenue,
        sum(reactivated_customers) as reactivated_customers,
        sum(lost_customers) as lost_customers,
        sum(lost_customer_value) as lost_customer_value,
        sum(renewals) as renewals,
        sum(renewal_value) as renewal_value,
        sum(orders) as orders,
        sum(revenue) as revenue,
        sum(known_cost) as known_cost,
        sum(orders_with_unknown_cost) as orders_with_unknown_cost,
        sum(tickets) as tickets,
        sum(complaints) as complaints,
        sum(referrals) as referrals,
        sum(nps_responses) as nps_responses,
        sum(promoters) as promoters
    from customer_periods
    group by grouping sets (
        (period_type, period_start_date),
        (period_type, period_start_date, rfm_segment),
        (period_type, period_start_date, value_tier),
        (period_type, period_start_date, attribute_value)
    )

),

group_values as (

    select distinct
        period_type,
        group_type,
        group_value
    from groups_aggregated

),

spine as (

    select
        periods.period_type,
        periods.period_start_date,
        periods.period_end_date,
        periods.is_complete_period,
        group_values.group_type,
        group_values.group_value
    from periods
    inner join group_values
        on periods.period_type = group_values.period_type

),

filled as (

    select
        spine.*,
        coalesce(groups_aggregated.active_customers, 0) as active_customers,
        coalesce(groups_aggregated.new_customers, 0) as new_customers,
        coalesce(groups_aggregated.new_customer_revenue, 0) as new_customer_revenue,
        coalesce(groups_aggregated.reactivated_customers, 0) as reactivated_customers,
        coalesce(groups_aggregated.lost_customers, 0) as lost_customers,
        coalesce(groups_aggregated.lost_customer_value, 0) as lost_customer_value,
        coalesce(groups_aggregated.renewals, 0) as renewals,
        coalesce(groups_aggregated.renewal_value, 0) as renewal_value,
        coalesce(groups_aggregated.orders, 0) as orders,
        coalesce(groups_aggregated.revenue, 0) as revenue,
        case
            when {{ sales_costs_recorded() }} and coalesce(groups_aggregated.orders_with_unknown_cost, 0) = 0
                then coalesce(groups_aggregated.known_cost, 0)
        end as cost,
        coalesce(groups_aggregated.tickets, 0) as tickets,
        coalesce(groups_aggregated.complaints, 0) as complaints,
        coalesce(groups_aggregated.referrals, 0) as referrals,
        coalesce(groups_aggregated.nps_responses, 0) as nps_responses,
        coalesce(groups_aggregated.promoters, 0) as promoters
    from spine
    left join groups_aggregated
        on spine.period_type = groups_aggregated.period_type
            and spine.period_start_date = groups_aggregated.period_start_date
            and spine.group_type = groups_aggregated.group_type
            and spine.group_value = groups_aggregated.group_value

),

final as (

    select
        -- keys
        period_type::text as period_type,
        period_start_date::date as period_start_date,
        group_type::text as group_type,
        group_value::text as group_value,

        -- period
        period_end_date::date as period_end_date,
        is_complete_period::boolean as is_complete_period,

        -- customers
        active_customers::bigint as active_customers,
        new_customers::bigint as new_customers,
        new_customer_revenue::numeric(18, 6) as new_customer_revenue,
        reactivated_customers::bigint as reactivated_customers,
        lost_customers::bigint as lost_customers,
        lost_customer_value::numeric(18, 6) as lost_customer_value,

        -- renewals
        renewals::bigint as renewals,
        renewal_value::numeric(18, 6) as renewal_value,

        -- revenue and profitability (sales currency)
        orders::bigint as orders,
        revenue::numeric(18, 6) as revenue,
        cost::numeric(18, 6) as cost,
        (revenue - cost)::numeric(18, 6) as gross_margin,
        {{ ratio('revenue - cost', 'revenue', 100, 2) }}::numeric(9, 2) as gross_margin_pct,
        tickets::bigint as tickets,
        complaints::bigint as complaints,
        (tickets * {{ var('cost_per_ticket') }})::numeric(18, 6) as cost_to_serve,
        (revenue - cost - tickets * {{ var('cost_per_ticket') }})::numeric(18, 6) as net_margin,
        {{ ratio('revenue - cost - tickets * ' ~ var('cost_per_ticket'), 'revenue', 100, 2) }}::numeric(9, 2)
            as net_margin_pct,

        -- referrals and advocacy
        referrals::bigint as referrals,
        nps_responses::bigint as nps_responses,
        promoters::bigint as promoters,
        {{ ratio('promoters', 'nps_responses', 100, 2) }}::numeric(9, 2) as promoter_share_pct

    from filled

)

select * from final
