{#-
    Every loaded version of every order line, renamed and cast — deliberately NOT reduced to the latest
    version here: the incremental order_lines mart filters this view on loaded_at, a filter PostgreSQL can
    only push down to the raw table through a plain projection (a ranking window would hide it).
-#}
-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by the post-hook record_tested_keys: built first)
with

source as (

    select
        order_line_id,
        order_id,
        {{ optional_column(source('sales', 'order_lines'), 'product_id', 'integer') }},
        {{ source_column(source('sales', 'order_lines'), 'quantity', 'integer') }},
        {{ source_column(source('sales', 'order_lines'), 'unit_price', 'numeric') }},
        {{ optional_column(source('sales', 'order_lines'), 'discount_pct', 'numeric') }},
        {{ optional_column(source('sales', 'order_lines'), 'unit_cost', 'numeric') }},
        created_at,
        updated_at,
        _loaded_at
    from {{ source('sales', 'order_lines') }}

),

renamed as (

    select
        -- ids
        order_line_id,
        order_id,
        product_id,

        -- quantities and amounts (at the time of the order)
        quantity,
        unit_price,
        discount_pct,
        unit_cost,

        -- timestamps (UTC)
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from renamed
