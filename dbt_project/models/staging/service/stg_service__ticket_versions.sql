{#-
    Every loaded version of every ticket (the raw table IS the version history), renamed and cast. Not
    reduced to the latest version here: the incremental tickets mart filters this view on loaded_at, which
    PostgreSQL can push down to the raw table only through a plain projection.
-#}
-- depends_on: {{ ref('stg_service__load_batches') }}  (read by the post-hook record_tested_keys: built first)
with

source as (

    select
        ticket_id,
        {{ optional_column(source('service', 'tickets'), 'requester_email', 'text') }},
        {{ optional_column(source('service', 'tickets'), 'customer_id', 'bigint') }},
        created_at,
        updated_at,
        {{ optional_column(source('service', 'tickets'), 'first_reply_at', 'timestamptz') }},
        {{ optional_column(source('service', 'tickets'), 'solved_at', 'timestamptz') }},
        {{ optional_column(source('service', 'tickets'), 'status', 'text') }},
        {{ optional_column(source('service', 'tickets'), 'channel', 'text') }},
        {{ optional_column(source('service', 'tickets'), 'type', 'text') }},
        {{ optional_column(source('service', 'tickets'), 'category', 'text') }},
        {{ optional_column(source('service', 'tickets'), 'priority', 'text') }},
        {{ optional_column(source('service', 'tickets'), 'reopen_count', 'integer') }},
        {{ optional_column(source('service', 'tickets'), 'satisfaction', 'text') }},
        {{ optional_column(source('service', 'tickets'), 'subject', 'text') }},
        _loaded_at
    from {{ source('service', 'tickets') }}

),

renamed as (

    select
        -- ids
        ticket_id,
        nullif(lower(trim(requester_email)), '') as requester_email,
        customer_id as requester_customer_id,

        -- attributes
        nullif(lower(trim(status)), '') as ticket_status,
        nullif(lower(trim(channel)), '') as ticket_channel,
        nullif(lower(trim(type)), '') as ticket_type,
        nullif(lower(trim(category)), '') as ticket_category,
        nullif(lower(trim(priority)), '') as ticket_priority,
        nullif(lower(trim(satisfaction)), '') as satisfaction_rating,
        subject,

        -- counts
        reopen_count,

        -- timestamps (UTC)
        created_at,
        first_reply_at,
        solved_at,
        updated_at,
        _loaded_at as loaded_at

    from source

)

select * from renamed
