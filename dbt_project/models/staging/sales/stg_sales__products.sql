with

source as (

    select
        product_id,
        {{ optional_column(source('sales', 'products'), 'sku', 'text') }},
        {{ optional_column(source('sales', 'products'), 'name', 'text') }},
        {{ optional_column(source('sales', 'products'), 'category', 'text') }},
        {{ optional_column(source('sales', 'products'), 'list_price', 'numeric') }},
        {{ optional_column(source('sales', 'products'), 'unit_cost', 'numeric') }},
        created_at,
        updated_at,
        _loaded_at
    from {{ source('sales', 'products') }}

),

latest_versions as (

    -- the newest version of each record; distinct on (not a ranking window) lets the planner estimate
    -- the row count from the key's statistics, which keeps downstream join plans sane
    select distinct on (product_id) *
    from source
    order by product_id asc, updated_at desc, _loaded_at desc

),

renamed as (

    select
        -- ids
        product_id,
        nullif(trim(sku), '') as sku,

        -- attributes
        nullif(trim(name), '') as product_name,
        nullif(lower(trim(category)), '') as product_category,

        -- amounts (current values; order lines carry the values at the time of the order)
        list_price,
        unit_cost,

        -- timestamps (UTC)
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from latest_versions

)

select * from renamed
