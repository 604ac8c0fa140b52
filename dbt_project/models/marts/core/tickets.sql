{#-
    Incremental, like order_lines: each run reads the ticket versions of every batch that may hold
    unmerged rows (loaded_since), adds the current row of the same tickets,
    keeps the newest version per ticket (updated_at, then loaded_at) and merges on ticket_id. Customer
    matching happens downstream (int_tickets_matched), so a ticket whose customer arrives later is
    matched at the next build without reprocessing this table.
-#}
-- depends_on: {{ ref('stg_service__load_batches') }}  (read by loaded_since on incremental runs only)
{{
    config(
        materialized='incremental',
        unique_key='ticket_id',
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[{'columns': ['loaded_at']}],
        post_hook=[
            "{{ record_merged_since() }}",
            "{{ record_loaded_through() }}",
        ],
    )
}}

with

ticket_versions as (

    select
        ticket_id,
        requester_email,
        requester_customer_id,
        ticket_status,
        ticket_channel,
        ticket_type,
        ticket_category,
        ticket_priority,
        satisfaction_rating,
        subject,
        reopen_count,
        created_at,
        first_reply_at,
        solved_at,
        updated_at,
        loaded_at
    from {{ ref('stg_service__ticket_versions') }}
    {% if is_incremental() %}
    where loaded_at >= {{ merged_since(ref('stg_service__load_batches'), ['tickets']) }}
    {% endif %}

),

{% if is_incremental() %}
tickets_already_merged as (

    select
        ticket_id,
        requester_email,
        requester_customer_id,
        ticket_status,
        ticket_channel,
        ticket_type,
        ticket_category,
        ticket_priority,
        satisfaction_rating,
        subject,
        reopen_count,
        created_at,
        first_reply_at,
        solved_at,
        updated_at,
        loaded_at
    from {{ this }}
    where ticket_id in (select ticket_id from ticket_versions)

),

candidate_versions as (

    select * from ticket_versions
    union all
    select * from tickets_already_merged

),
{% else %}
candidate_versions as (

    select * from ticket_versions

),
{% endif %}

latest_versions as (

    -- the newest version of each ticket: highest updated_at, then the latest load
    select distinct on (ticket_id) *
    from candidate_versions
    order by ticket_id asc, updated_at desc, loaded_at desc

),

final as (

    select
        -- ids
        ticket_id::bigint as ticket_id,
        requester_email::text as requester_email,
        requester_customer_id::bigint as requester_customer_id,

        -- attributes (latest version)
        ticket_status::text as ticket_status,
        ticket_channel::text as ticket_channel,
        ticket_type::text as ticket_type,
        ticket_category::text as ticket_category,
        ticket_priority::text as ticket_priority,
        satisfaction_rating::text as satisfaction_rating,
        subject::text as subject,

        -- flags
        (ticket_type = 'complaint')::boolean as is_complaint,
        (reopen_count > 0)::boolean as is_reopened,
        (solved_at is not null)::boolean as is_solved,

        -- counts and durations
        reopen_count::integer as reopen_count,
        round({{ hours_between('created_at', 'first_reply_at') }}, 2)::numeric(12, 2) as first_reply_hours,
        round({{ hours_between('created_at', 'solved_at') }}, 2)::numeric(12, 2) as resolution_hours,

        -- timestamps (UTC)
        created_at::timestamptz as created_at,
        {{ to_utc_date('created_at') }}::date as created_date,
        first_reply_at::timestamptz as first_reply_at,
        solved_at::timestamptz as solved_at,
        updated_at::timestamptz as updated_at,
        loaded_at::timestamptz as loaded_at

    from latest_versions

)

select * from final
