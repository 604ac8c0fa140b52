{#-
    Purchase days: the days a known customer placed at least one revenue (completed) order, up to the
    as-of date. The unit of recency, frequency and lifetime-value calculations (lifetimes' daily grain).

    A table, not a view: segments, customers, episodes and lifetime value all read it; a view would
    aggregate all orders once per reader. Incremental per customer (macros/recompute.sql,
    sales_customers_touched): a run recomputes the customers whose orders a load touched or the as-of
    date's move reached, and writes only the rows that differ.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_from',
        replace_customers_column='customer_id',
        keep_unchanged_rows=true,
        on_schema_change='fail',
        indexes=[{'columns': ['customer_id', 'purchase_date'], 'unique': true}],
        post_hook=[
            "{{ record_build_inputs(customer_build_inputs()) }}",
            "{{ record_loaded_through() }}",
            "analyze {{ this }}",
        ],
    )
}}
-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by loaded_since on incremental runs only)
{%- set customers_listed = list_customers_touched(purchase_customers_touched) %}

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
        and order_date <= {{ as_of_date() }}{% if customers_listed %}
        and customer_id in (select customer_id from {{ changed_customers_table() }}){% endif %}

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
