{#-
    A table, unlike the other staging models: about ten models read every current customer in one build,
    and as a view each of those reads would redo the latest-version pick over every loaded version (about
    1 s each at large scale). Rebuilt whole every run (no incremental state to go stale); the unique
    index serves the readers that look customers up by id.
-#}
{{
    config(
        materialized='table',
        indexes=[{'columns': ['customer_id'], 'unique': true}],
        post_hook=["analyze {{ this }}"],
    )
}}
-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by the post-hook record_tested_keys: built first)
with

source as (

    select
        customer_id,
        {{ optional_column(source('sales', 'customers'), 'email', 'text') }},
        {{ optional_column(source('sales', 'customers'), 'name', 'text') }},
        {{ optional_column(source('sales', 'customers'), 'country', 'text') }},
        {{ optional_column(source('sales', 'customers'), 'region', 'text') }},
        {{ optional_column(source('sales', 'customers'), 'industry', 'text') }},
        {{ optional_column(source('sales', 'customers'), 'company_size', 'text') }},
        {{ optional_column(source('sales', 'customers'), 'acquisition_channel', 'text') }},
        {{ optional_column(source('sales', 'customers'), 'referred_by_customer_id', 'bigint') }},
        created_at,
        updated_at,
        _loaded_at
    from {{ source('sales', 'customers') }}

),

latest_versions as (

    -- the newest version of each record; distinct on (not a ranking window) lets the planner estimate
    -- the row count from the key's statistics, which keeps downstream join plans sane
    select distinct on (customer_id) *
    from source
    order by customer_id asc, updated_at desc, _loaded_at desc

),

renamed as (

    select
        -- ids
        customer_id,
        referred_by_customer_id,

        -- contact and descriptive attributes
        nullif(lower(trim(email)), '') as email,
        nullif(trim(name), '') as customer_name,
        nullif(upper(trim(country)), '') as country_code,
        nullif(trim(region), '') as region,
        nullif(lower(trim(industry)), '') as industry,
        nullif(lower(trim(company_size)), '') as company_size,
        nullif(lower(trim(acquisition_channel)), '') as acquisition_channel,

        -- timestamps (UTC)
        created_at,
        updated_at,
        _loaded_at as loaded_at

    from latest_versions

)

select * from renamed
