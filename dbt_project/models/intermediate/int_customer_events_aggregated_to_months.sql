{#-
    Every event the guerrilla metrics count (macro guerrilla_customer_events: an order, a ticket, a new or
    won-back customer, a loss, a renewal, a referral, an NPS or CSAT answer), summed per customer and calendar
    month. Records that match no customer are summed under customer_id null. Quarters and years are sums
    of their months per customer, so int_guerrilla_groups_aggregated reads this table instead of the
    event sources.

    Recomputed per customer (macros/recompute.sql, customer_inputs_touched): an incremental run sums
    again only the customers any of whose records, episodes or losses can have changed since its last
    build, and the records of no customer (always). It writes by difference (replace_from,
    keep_unchanged_rows) only the customer months that changed, and logs them (capture_replaced_rows) for
    int_guerrilla_groups_aggregated, which updates its sums from that log.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_from',
        replace_customers_column='customer_id',
        keep_unchanged_rows=true,
        capture_replaced_rows=true,
        on_schema_change='fail',
        indexes=[{'columns': ['month_start_date']}, {'columns': ['customer_id']}],
        pre_hook=["{{ start_change_log('pre') }}"],
        post_hook=[
            "{{ start_change_log('post') }}",
            "{{ record_build_inputs(customer_build_inputs(var('lost_after_days'))) }}",
            "{{ record_loaded_through() }}",
            "analyze {{ this }}",
        ],
    )
}}
-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by loaded_since on incremental runs only)
-- depends_on: {{ ref('stg_service__load_batches') }}
-- depends_on: {{ ref('stg_survey__load_batches') }}
{%- set customers_listed = list_customers_touched(customer_inputs_touched, var('lost_after_days')) %}

with

events_to_aggregate as (

    -- an incremental build: the events of the customers listed, and the records of no customer
    {{ guerrilla_customer_events(listed_customer_ids() if customers_listed else none) | indent(4) }}

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
        sum(promoters) as promoters,
        sum(passives) as passives,
        sum(detractors) as detractors,
        sum(csat_responses) as csat_responses,
        sum(csat_satisfied_responses) as csat_satisfied_responses
    from events_to_aggregate
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
        promoters::bigint as promoters,
        passives::bigint as passives,
        detractors::bigint as detractors,
        csat_responses::bigint as csat_responses,
        csat_satisfied_responses::bigint as csat_satisfied_responses

    from events_aggregated_to_months

)

select * from final
