{#-
    Incremental: each run reads the raw versions of every batch that may hold unmerged rows (see
    loaded_since), puts them together with the rows this table already holds for the
    same lines, keeps the newest version per line (updated_at, then loaded_at) and merges on order_line_id.
    A late-arriving older version therefore never overwrites a newer one, and the result equals a full
    refresh (tests/dbt/test_dbt_incremental.py proves it).
-#}
-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by loaded_since on incremental runs only)
{{
    config(
        materialized='incremental',
        unique_key='order_line_id',
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[{'columns': ['loaded_at']}, {'columns': ['order_id']}],
        post_hook=[
            "{{ record_merged_since() }}",
            "{{ record_loaded_through() }}",
        ],
    )
}}

with

line_versions as (

    select
        order_line_id,
        order_id,
        product_id,
        quantity,
        unit_price,
        discount_pct,
        unit_cost,
        created_at,
        updated_at,
        loaded_at
    from {{ ref('stg_sales__order_line_versions') }}
    {% if is_incremental() %}
    where loaded_at >= {{ merged_since(ref('stg_sales__load_batches'), ['order_lines']) }}
    {% endif %}

),

{% if is_incremental() %}
lines_already_merged as (

    select
        order_line_id,
        order_id,
        product_id,
        quantity,
        unit_price,
        discount_pct,
        unit_cost,
        created_at,
        updated_at,
        loaded_at
    from {{ this }}
    where order_line_id in (select order_line_id from line_versions)

),

candidate_versions as (

    select * from line_versions
    union all
    select * from lines_already_merged

),
{% else %}
candidate_versions as (

    select * from line_versions

),
{% endif %}

latest_versions as (

    -- the newest version of each order line: highest updated_at, then the latest load
    select distinct on (order_line_id) *
    from candidate_versions
    order by order_line_id asc, updated_at desc, loaded_at desc

),

amounts_computed as (

    select
        -- ids
        order_line_id::bigint as order_line_id,
        order_id::bigint as order_id,
        product_id::integer as product_id,

        -- quantities and prices (at the time of the order)
        quantity::integer as quantity,
        unit_price::numeric(18, 6) as unit_price,
        discount_pct::numeric(9, 6) as discount_pct,
        unit_cost::numeric(18, 6) as unit_cost,

        -- amounts: a line without a discount was sold at list price; a line without a cost has no cost
        (quantity * unit_price * (1 - coalesce(discount_pct, 0)))::numeric(18, 6) as line_revenue,
        (quantity * unit_cost)::numeric(18, 6) as line_cost,
        (quantity * unit_price * (1 - coalesce(discount_pct, 0)) - quantity * unit_cost)::numeric(18, 6)
            as line_gross_margin,

        -- timestamps (UTC)
        created_at::timestamptz as created_at,
        updated_at::timestamptz as updated_at,
        loaded_at::timestamptz as loaded_at

    from latest_versions

)

select * from amounts_computed
