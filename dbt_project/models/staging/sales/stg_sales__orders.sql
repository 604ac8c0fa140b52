-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by the post-hook record_tested_keys: built first)
with

source as (

    select
        order_id,
        customer_id,
        {{ source_column(source('sales', 'orders'), 'ordered_at', 'timestamptz') }},
        {{ optional_column(source('sales', 'orders'), 'status', 'text') }},
        {{ optional_column(source('sales', 'orders'), 'sales_channel', 'text') }},
        created_at,
        updated_at,
        _loaded_at
    from {{ source('sales', 'orders') }}

),

latest_versions as (

    -- the newest version of each record; distinct on (not a ranking window) lets the planner estimate
    -- the row count from the key's statistics, which keeps downstream join plans sane
    select distinct on (order_id) *
    from source
    order by order_id asc, updated_at desc, _loaded_at desc

),

renamed as (

    select
        -- ids
        order_id,
        customer_id,

        -- attributes
        nullif(lower(trim(status)), '') as order_status,
        nullif(lower(trim(sales_channel)), '') as sales_channel,

        -- timestamps (UTC)
        ordered_at,
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from latest_versions

)

select * from renamed
