{#-
    Tickets (latest version) with the customer they belong to: by the sales system's customer id where the
    helpdesk records it (requester_customer_id), else by requester email (case-insensitive). Unmatched
    tickets stay, with the reason, and are listed in unmatched_source_records.

    Incremental (merge on ticket_id), like int_survey_responses_matched: an incremental run matches again
    only the tickets merged into `tickets` since its last build (their loaded_at), those not matched then,
    and those matched to, or requested from the email of, a customer loaded since. Customers are never
    deleted, so every other match stands.
-#}
-- depends_on: {{ ref('stg_service__load_batches') }}  (read by loaded_since on incremental runs only)
-- depends_on: {{ ref('stg_sales__load_batches') }}
-- depends_on: {{ ref('stg_sales__customers') }}  (customers_loaded_since, on incremental runs only)
{{
    config(
        materialized='incremental',
        unique_key='ticket_id',
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[{'columns': ['ticket_id'], 'unique': true}, {'columns': ['customer_id']}],
        post_hook=["{{ record_loaded_through() }}", "analyze {{ this }}"],
    )
}}
with

{% if is_incremental() -%}
customers_loaded as (

    {{ customers_loaded_since() | indent(4) }}

),

tickets_to_match as (

    select ticket_id
    from {{ ref('tickets') }}
    where loaded_at >= {{ loaded_since(ref('stg_service__load_batches'), ['tickets']) }}

    union

    select ticket_id
    from {{ this }}
    where match_status <> 'matched'
        or customer_id in (select customer_id from customers_loaded)
        or requester_email in (select email from customers_loaded)

),

{% endif -%}
tickets as (

    select
        ticket_id,
        requester_email,
        requester_customer_id,
        ticket_status,
        ticket_channel,
        ticket_type,
        ticket_category,
        ticket_priority,
        is_complaint,
        is_reopened,
        is_solved,
        reopen_count,
        first_reply_hours,
        resolution_hours,
        created_at,
        created_date
    from {{ ref('tickets') }}
    {%- if is_incremental() %}
    where ticket_id in (select ticket_id from tickets_to_match)
    {%- endif %}

),

customers as (

    select customer_id
    from {{ ref('stg_sales__customers') }}

),

customer_emails as (

    select
        email,
        customer_id,
        is_ambiguous
    from {{ ref('int_customer_emails_resolved') }}

),

matched as (

    select
        tickets.*,
        coalesce(customers.customer_id, customer_emails.customer_id) as customer_id,
        case
            when tickets.requester_customer_id is not null and customers.customer_id is null
                then 'unknown_customer_id'
            when tickets.requester_customer_id is not null then 'matched'
            when tickets.requester_email is null then 'missing_email'
            when customer_emails.email is null then 'unknown_email'
            when customer_emails.is_ambiguous then 'ambiguous_email'
            else 'matched'
        end as match_status
    from tickets
    left join customers
        on tickets.requester_customer_id = customers.customer_id
    left join customer_emails
        on tickets.requester_customer_id is null
            and tickets.requester_email = customer_emails.email

)

select * from matched
