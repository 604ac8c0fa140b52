{#-
    One row per customer of the sales system, everything as of the as-of date: purchases, value,
    service effort, complaints, the last NPS answer, the current segments and the customer's status.
    Status: prospect (never bought nor held a contract), lost (the latest episode ended in a loss — see
    int_customer_episodes_stitched), at_risk (active, but no purchase for var('at_risk_after_days') days),
    active (the rest).
-#}
with

customers as (

    select
        customer_id,
        customer_name,
        email,
        country_code,
        region,
        industry,
        company_size,
        acquisition_channel,
        referred_by_customer_id,
        created_at
    from {{ ref('stg_sales__customers') }}

),

as_of as (

    select as_of_date
    from {{ ref('int_as_of_date') }}

),

purchases as (

    select
        customer_id,
        first_purchase_date,
        last_purchase_date,
        orders,
        revenue,
        cost,
        gross_margin
    from {{ ref('int_customer_purchases_summarized') }}

),

tickets as (

    select
        customer_id,
        is_complaint,
        created_date
    from {{ ref('int_tickets_matched') }}
    where match_status = 'matched'
        and created_date <= {{ as_of_date() }}

),

nps_responses as (

    select
        customer_id,
        response_id,
        nps_score,
        nps_category,
        submitted_at,
        submitted_date
    from {{ ref('int_survey_responses_matched') }}
    where match_status = 'matched'
        and response_kind = 'nps'
        and nps_score is not null
        and submitted_date <= {{ as_of_date() }}

),

episodes as (

    select
        customer_id,
        episode_number,
        episode_started_date,
        last_purchase_date,
        lost_date,
        is_lost,
        loss_type
    from {{ ref('customer_episodes') }}

),

contracts as (

    select
        customer_id,
        start_date,
        end_date,
        annual_value
    from {{ ref('int_contracts_matched') }}
    where is_customer_matched

),

latest_segments as (

    select
        customer_id,
        rfm_segment,
        rfm_score,
        value_tier
    from {{ ref('customer_segments') }}
    -- the latest snapshot (is_latest_snapshot), found through the snapshot date's index
    where snapshot_date = {{ as_of_date() }}

),

purchases_aggregated as (

    select
        customer_id,
        first_purchase_date as first_order_date,
        last_purchase_date as last_order_date,
        orders as lifetime_orders,
        revenue as lifetime_revenue,
        cost as lifetime_cost,
        gross_margin as lifetime_gross_margin
    from purchases

),

tickets_aggregated as (

    select
        tickets.customer_id,
        count(*) as lifetime_tickets,
        count(*) filter (where tickets.is_complaint) as lifetime_complaints,
        count(*) filter (
            where tickets.is_complaint
            and tickets.created_date > as_of.as_of_date - {{ var('complaint_window_days') | int }}
        ) as recent_complaints
    from tickets
    cross join as_of
    group by tickets.customer_id

),

last_nps as (

    select distinct on (customer_id)
        customer_id,
        nps_score,
        nps_category,
        submitted_date
    from nps_responses
    order by customer_id asc, submitted_at desc, response_id desc

),

latest_episodes as (

    select distinct on (customer_id)
        customer_id,
        episode_number,
        episode_started_date,
        last_purchase_date,
        lost_date,
        is_lost,
        loss_type
    from episodes
    order by customer_id asc, episode_number desc

),

first_episodes as (

    select
        customer_id,
        min(episode_started_date) as customer_since_date,
        count(*) filter (where is_lost) as times_lost
    from episodes
    group by customer_id

),

active_contracts as (

    select
        contracts.customer_id,
        sum(contracts.annual_value) as active_contract_annual_value
    from contracts
    cross join as_of
    where as_of.as_of_date between contracts.start_date and coalesce(contracts.end_date, 'infinity'::date)
    group by contracts.customer_id

),

referrals_made as (

    select
        referred_by_customer_id as customer_id,
        count(*) as referred_customers
    from customers
    where referred_by_customer_id is not null
    group by referred_by_customer_id

),

joined as (

    select
        customers.*,
        as_of.as_of_date,
        first_episodes.customer_since_date,
        coalesce(first_episodes.times_lost, 0) as times_lost,
        purchases_aggregated.first_order_date,
        purchases_aggregated.last_order_date,
        coalesce(purchases_aggregated.lifetime_orders, 0) as lifetime_orders,
        coalesce(purchases_aggregated.lifetime_revenue, 0) as lifetime_revenue,
        case
            when purchases_aggregated.customer_id is not null then purchases_aggregated.lifetime_cost
            when {{ sales_costs_recorded() }} then 0
        end as lifetime_cost,
        case
            when purchases_aggregated.customer_id is not null then purchases_aggregated.lifetime_gross_margin
            when {{ sales_costs_recorded() }} then 0
        end as lifetime_gross_margin,
        coalesce(tickets_aggregated.lifetime_tickets, 0) as lifetime_tickets,
        coalesce(tickets_aggregated.lifetime_complaints, 0) as lifetime_complaints,
        coalesce(tickets_aggregated.recent_complaints, 0) as recent_complaints,
        last_nps.nps_score as last_nps_score,
        last_nps.nps_category as last_nps_category,
        last_nps.submitted_date as last_nps_date,
        latest_segments.rfm_segment,
        latest_segments.rfm_score,
        latest_segments.value_tier,
        latest_episodes.is_lost,
        latest_episodes.lost_date,
        latest_episodes.loss_type,
        coalesce(latest_episodes.last_purchase_date, latest_episodes.episode_started_date) as last_active_date,
        active_contracts.active_contract_annual_value,
        coalesce(referrals_made.referred_customers, 0) as referred_customers
    from customers
    cross join as_of
    left join first_episodes
        on customers.customer_id = first_episodes.customer_id
    left join purchases_aggregated
        on customers.customer_id = purchases_aggregated.customer_id
    left join tickets_aggregated
        on customers.customer_id = tickets_aggregated.customer_id
    left join last_nps
        on customers.customer_id = last_nps.customer_id
    left join latest_segments
        on customers.customer_id = latest_segments.customer_id
    left join latest_episodes
        on customers.customer_id = latest_episodes.customer_id
    left join active_contracts
        on customers.customer_id = active_contracts.customer_id
    left join referrals_made
        on customers.customer_id = referrals_made.customer_id

),

final as (

    select
        -- ids
        customer_id::bigint as customer_id,
        referred_by_customer_id::bigint as referred_by_customer_id,

        -- attributes (current values)
        customer_name::text as customer_name,
        email::text as email,
        country_code::text as country_code,
        region::text as region,
        industry::text as industry,
        company_size::text as company_size,
        acquisition_channel::text as acquisition_channel,

        -- status as of the as-of date
        as_of_date::date as as_of_date,
        (case
            when is_lost is null then 'prospect'
            when is_lost then 'lost'
            when as_of_date - last_active_date >= {{ var('at_risk_after_days') | int }} then 'at_risk'
            else 'active'
        end)::text as customer_status,
        case when is_lost then lost_date end::date as lost_date,
        case when is_lost then loss_type end::text as loss_type,
        times_lost::bigint as times_lost,
        (active_contract_annual_value is not null)::boolean as has_active_contract,
        active_contract_annual_value::numeric(18, 6) as active_contract_annual_value,

        -- segments (latest snapshot)
        rfm_segment::text as rfm_segment,
        rfm_score::text as rfm_score,
        value_tier::text as value_tier,

        -- dates
        created_at::timestamptz as created_at,
        customer_since_date::date as customer_since_date,
        first_order_date::date as first_order_date,
        last_order_date::date as last_order_date,
        (as_of_date - last_order_date)::integer as days_since_last_order,

        -- orders and value (completed orders, sales currency)
        lifetime_orders::bigint as lifetime_orders,
        lifetime_revenue::numeric(18, 6) as lifetime_revenue,
        lifetime_cost::numeric(18, 6) as lifetime_cost,
        lifetime_gross_margin::numeric(18, 6) as lifetime_gross_margin,
        {{ ratio('lifetime_gross_margin', 'lifetime_revenue', 100, 2) }}::numeric(9, 2) as lifetime_gross_margin_pct,

        -- service effort and complaints
        lifetime_tickets::bigint as lifetime_tickets,
        (lifetime_tickets * {{ var('cost_per_ticket') }})::numeric(18, 6) as lifetime_cost_to_serve,
        (lifetime_gross_margin - lifetime_tickets * {{ var('cost_per_ticket') }})::numeric(18, 6)
            as lifetime_net_margin,
        lifetime_complaints::bigint as lifetime_complaints,
        recent_complaints::bigint as complaints_last_90_days,

        -- voice of the customer
        last_nps_score::integer as last_nps_score,
        last_nps_category::text as last_nps_category,
        last_nps_date::date as last_nps_date,

        -- advocacy
        referred_customers::bigint as referred_customers

    from joined

)

select * from final
