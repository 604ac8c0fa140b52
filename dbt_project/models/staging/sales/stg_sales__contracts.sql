-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by the post-hook record_tested_keys: built first)
with

source as (

    select
        contract_id,
        customer_id,
        {{ optional_column(source('sales', 'contracts'), 'plan', 'text') }},
        start_date,
        end_date,
        annual_value,
        {{ optional_column(source('sales', 'contracts'), 'status', 'text') }},
        {{ optional_column(source('sales', 'contracts'), 'renewed_from_contract_id', 'bigint') }},
        {{ optional_column(source('sales', 'contracts'), 'renewal_reason', 'text') }},
        {{ optional_column(source('sales', 'contracts'), 'cancellation_reason', 'text') }},
        created_at,
        updated_at,
        _loaded_at
    from {{ source('sales', 'contracts') }}

),

latest_versions as (

    -- the newest version of each record; distinct on (not a ranking window) lets the planner estimate
    -- the row count from the key's statistics, which keeps downstream join plans sane
    select distinct on (contract_id) *
    from source
    order by contract_id asc, updated_at desc, _loaded_at desc

),

renamed as (

    select
        -- ids
        contract_id,
        customer_id,
        renewed_from_contract_id,

        -- attributes
        nullif(lower(trim(plan)), '') as contract_plan,
        nullif(lower(trim(status)), '') as contract_status,
        nullif(lower(trim(renewal_reason)), '') as renewal_reason,
        nullif(lower(trim(cancellation_reason)), '') as cancellation_reason,

        -- dates (the term runs from start_date to end_date, both inclusive)
        start_date,
        end_date,

        -- amounts
        annual_value,

        -- timestamps (UTC); created_at is when the term was signed
        created_at as signed_at,
        updated_at,
        _loaded_at as loaded_at

    from latest_versions

)

select * from renamed
