{#-
    Purchase days: the days a known customer placed at least one revenue (completed) order, up to the
    as-of date. The unit of recency, frequency and lifetime-value calculations (lifetimes' daily grain).

    A table, not a view: segments, customers, episodes and lifetime value all read it; a view would
    aggregate all orders once per reader.
-#}
{{ config(materialized='table', post_hook='analyze {{ this }}') }}

with

orders as (

    select
        order_id,
        customer_id,
        order_date,
        revenue,
        cost,
        gross_margin
    from {{ ref('orders') }}
    where is_revenue_order
        and is_customer_matched
        and order_date <= {{ as_of_date() }}

),

aggregated_to_days as (

    select
        customer_id,
        order_date as purchase_date,
        count(*) as orders,
        sum(revenue) as revenue,
        -- a day with an order of unknown cost has unknown cost and margin
        case when bool_and(cost is not null) then sum(cost) end as cost,
        case when bool_and(cost is not null) then sum(gross_margin) end as gross_margin
    from orders
    group by customer_id, order_date

)

select * from aggregated_to_days
