with

source as (

    select
        batch_id,
        entity,
        interval_start,
        interval_end,
        status,
        started_at,
        finished_at
    from {{ source('sales', 'load_batches') }}

),

renamed as (

    select
        -- ids
        batch_id,
        'sales'::text as source_name,
        entity as entity_name,

        -- attributes
        status as batch_status,

        -- timestamps (UTC): the data interval [start, end) the batch covers
        interval_start as interval_start_at,
        interval_end as interval_end_at,
        started_at,
        finished_at

    from source

)

select * from renamed
