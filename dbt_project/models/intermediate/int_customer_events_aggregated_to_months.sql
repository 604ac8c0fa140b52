{#-
    Every event the guerrilla metrics count (an order, a ticket, a new or won-back customer, a loss, a
    renewal, a referral, an NPS answer), summed per customer and calendar month. Records that match no
    customer are summed under customer_id null. Quarters and years are sums of their months per customer,
    so int_guerrilla_groups_aggregated reads this table instead of the event sources.

    Recomputed whole in one pass each run, but written by difference (replace_from without a date
    column, keep_unchanged_rows): an incremental run writes only the customer months whose events
    changed, and logs them (capture_replaced_rows) for int_guerrilla_groups_aggregated, which updates
    its sums from that log instead of re-reading every customer's events.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_from',
        keep_unchanged_rows=true,
        capture_replaced_rows=true,
        on_schema_change='fail',
        indexes=[{'columns': ['month_start_date']}, {'columns': ['customer_id']}],
        pre_hook=["{{ start_change_log('pre') }}"],
        post_hook=["{{ start_change_log('post') }}", "analyze {{ this }}"],
    )
}}

with

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
        {{ guerrilla_event_values({
            'orders': '1',
            'revenue': 'revenue',
            'known_cost': 'coalesce(cost, 0)',
            'orders_with_unknown_cost': 'case when cost is null then 1 else 0 end'
        }) }}
    from orders

    union all

    select
        customer_id,
        created_date as event_date,
        {{ guerrilla_event_values({
            'tickets': '1',
            'complaints': 'case when is_complaint then 1 else 0 end'
        }) }}
    from tickets

    union all

    select
        customer_id,
        episode_started_date as event_date,
        {{ guerrilla_event_values({
            'new_customers': 'case when episode_number = 1 then 1 else 0 end',
            'reactivated_customers': 'case when episode_number > 1 then 1 else 0 end'
        }) }}
    from episodes

    union all

    select
        customer_id,
        lost_date as event_date,
        {{ guerrilla_event_values({
            'lost_customers': '1',
            'lost_customer_value': 'revenue_12m_before_loss'
        }) }}
    from losses

    union all

    select
        customer_id,
        signed_date as event_date,
        {{ guerrilla_event_values({
            'renewals': '1',
            'renewal_value': 'annual_value'
        }) }}
    from renewals

    union all

    select
        customer_id,
        referred_date as event_date,
        {{ guerrilla_event_values({
            'referrals': '1'
        }) }}
    from referrals

    union all

    select
        customer_id,
        submitted_date as event_date,
        {{ guerrilla_event_values({
            'nps_responses': '1',
            'promoters': "case when nps_category = 'promoter' then 1 else 0 end"
        }) }}
    from nps_responses

),

events_aggregated_to_months as (

    select
        customer_id,
        date_trunc('month', event_date)::date as month_start_date,
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
    group by 1, 2

),

final as (

    select
        -- keys
        customer_id::bigint as customer_id,
        month_start_date::date as month_start_date,

        -- measures
        orders::bigint as orders,
        revenue::numeric as revenue,
        known_cost::numeric as known_cost,
        orders_with_unknown_cost::bigint as orders_with_unknown_cost,
        tickets::bigint as tickets,
        complaints::bigint as complaints,
        new_customers::bigint as new_customers,
        reactivated_customers::bigint as reactivated_customers,
        lost_customers::bigint as lost_customers,
        lost_customer_value::numeric as lost_customer_value,
        renewals::bigint as renewals,
        renewal_value::numeric as renewal_value,
        referrals::bigint as referrals,
        nps_responses::bigint as nps_responses,
        promoters::bigint as promoters

    from events_aggregated_to_months

)

select * from final
