{#-
    Per customer, the lifetime sums of their purchase days (int_customer_purchase_days_aggregated): first
    and last purchase day, purchase days, orders, revenue, cost and margin (unknown when a day's cost is),
    and the mean revenue of the repeat purchase days. What customers and customer_lifetime_value read
    instead of aggregating every purchase day at each build.

    Incremental per customer, like the purchase days (sales_customers_touched): a run recomputes the
    customers whose purchase days can have changed and writes only the rows that differ.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_from',
        replace_customers_column='customer_id',
        keep_unchanged_rows=true,
        on_schema_change='fail',
        indexes=[{'columns': ['customer_id'], 'unique': true}],
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

purchase_days as (

    select
        customer_id,
        purchase_date,
        orders,
        revenue,
        cost,
        gross_margin
    from {{ ref('int_customer_purchase_days_aggregated') }}
    {%- if customers_listed %}
    where customer_id in (select customer_id from {{ changed_customers_table() }})
    {%- endif %}

),

purchase_days_numbered as (

    select
        *,
        row_number() over (partition by customer_id order by purchase_date) as purchase_day_number
    from purchase_days

),

summarized as (

    select
        customer_id,
        min(purchase_date) as first_purchase_date,
        max(purchase_date) as last_purchase_date,
        count(*) as purchase_days,
        sum(orders) as orders,
        sum(revenue) as revenue,
        -- a customer with a day of unknown cost has unknown lifetime cost and margin
        case when bool_and(cost is not null) then sum(cost) end as cost,
        case when bool_and(cost is not null) then sum(gross_margin) end as gross_margin,
        avg(revenue) filter (where purchase_day_number > 1) as repeat_mean_revenue
    from purchase_days_numbered
    group by customer_id

)

select * from summarized
