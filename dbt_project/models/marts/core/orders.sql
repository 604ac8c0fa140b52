{#-
    Incremental: a run rebuilds the orders a load touched since its last build (macro loaded_since): a
    new header version, a new line version, or a customer loaded since (whose orders may now match), and
    merges them on order_id. The lines come from order_lines, merged earlier in the same run. Everything
    else is kept as built: orders are never deleted from the sources, so this equals a full refresh
    (tests/dbt/test_dbt_incremental.py). A changed sales file layout (a cost column added or dropped)
    needs a --full-refresh, as for every fact.
-#}
{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[{'columns': ['customer_id']}],
        post_hook=["{{ record_loaded_through() }}"],
    )
}}
-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by loaded_since on incremental runs only)
{%- set since = loaded_since(ref('stg_sales__load_batches'), ['orders', 'order_lines', 'customers']) %}

with

{% if is_incremental() %}
order_ids_loaded as (

    {{ order_ids_loaded_since(since) | indent(4) }}

),

customer_ids_loaded as (

    select customer_id
    from {{ source('sales', 'customers') }}
    where _loaded_at >= {{ since }}

),

orders_already_built as (

    select
        order_id,
        customer_id
    from {{ this }}

),

changed_orders as (

    -- the orders a load touched: their header or lines, or their customer (who may match them now)
    select order_id
    from order_ids_loaded
    union
    select orders_already_built.order_id
    from orders_already_built
    inner join customer_ids_loaded
        on orders_already_built.customer_id = customer_ids_loaded.customer_id

),

{% endif -%}
orders as (

    select
        order_id,
        customer_id,
        order_status,
        sales_channel,
        ordered_at
    from {{ ref('stg_sales__orders') }}
    {%- if is_incremental() %}
    -- "= any(array(...))": a condition on the view's key, which reaches the raw versions' index; as a
    -- join (even a lateral one, which the planner flattens) it would read every order's latest version
    where order_id = any(array(select order_id from changed_orders))
    {%- endif %}

),

customers as (

    select customer_id
    from {{ ref('stg_sales__customers') }}
    {%- if is_incremental() %}
    where customer_id = any(array(select distinct customer_id from orders))
    {%- endif %}

),

order_lines as (

    select
        order_id,
        quantity,
        line_revenue,
        line_cost
    from {{ ref('order_lines') }}
    {%- if is_incremental() %}
    where order_id in (select order_id from changed_orders)
    {%- endif %}

),

lines_aggregated_to_orders as (

    select
        order_id,
        count(*) as order_lines,
        sum(quantity) as units,
        sum(line_revenue) as order_revenue,
        -- one line without a cost leaves the order's cost unknown rather than understated
        case when bool_and(line_cost is not null) then sum(line_cost) end as order_cost
    from order_lines
    group by order_id

),

orders_joined as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_status,
        orders.sales_channel,
        orders.ordered_at,
        customers.customer_id is not null as is_customer_matched,
        -- a completed order is revenue; cancelled and returned orders are not (a missing status counts
        -- as completed: nothing says the sale did not happen)
        coalesce(orders.order_status, 'completed') = 'completed' as is_revenue_order,
        coalesce(lines_aggregated_to_orders.order_lines, 0) as order_lines,
        coalesce(lines_aggregated_to_orders.units, 0) as units,
        coalesce(lines_aggregated_to_orders.order_revenue, 0) as order_revenue,
        case
            when lines_aggregated_to_orders.order_id is null then 0
            else lines_aggregated_to_orders.order_cost
        end as order_cost
    from orders
    left join customers
        on orders.customer_id = customers.customer_id
    left join lines_aggregated_to_orders
        on orders.order_id = lines_aggregated_to_orders.order_id

),

final as (

    select
        -- ids
        order_id::bigint as order_id,
        customer_id::bigint as customer_id,

        -- attributes
        order_status::text as order_status,
        sales_channel::text as sales_channel,

        -- flags
        is_customer_matched::boolean as is_customer_matched,
        is_revenue_order::boolean as is_revenue_order,

        -- counts
        order_lines::bigint as order_lines,
        units::bigint as units,

        -- amounts (sales currency); revenue figures count only revenue orders
        order_revenue::numeric(18, 6) as order_value,
        case when is_revenue_order then order_revenue else 0 end::numeric(18, 6) as revenue,
        case
            when is_revenue_order then order_cost
            when {{ sales_costs_recorded() }} then 0
        end::numeric(18, 6) as cost,
        case
            when is_revenue_order then order_revenue - order_cost
            when {{ sales_costs_recorded() }} then 0
        end::numeric(18, 6) as gross_margin,

        -- timestamps and dates (UTC)
        ordered_at::timestamptz as ordered_at,
        {{ to_utc_date('ordered_at') }}::date as order_date

    from orders_joined

)

select * from final
