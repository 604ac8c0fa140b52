{#-
    Tickets (latest version) with the customer they belong to, found by requester email
    (case-insensitive). Unmatched tickets stay, with the reason, and are listed in unmatched_source_records.
    A table, not a view: seven models and the data tests read it, and each read of a view would match
    ticket again.
-#}
{{ config(materialized='table', indexes=[{'columns': ['customer_id']}], post_hook='analyze {{ this }}') }}
with

tickets as (

    select
        ticket_id,
        requester_email,
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
        customer_emails.customer_id,
        case
            when tickets.requester_email is null then 'missing_email'
            when customer_emails.email is null then 'unknown_email'
            when customer_emails.is_ambiguous then 'ambiguous_email'
            else 'matched'
        end as match_status
    from tickets
    left join customer_emails
        on tickets.requester_email = customer_emails.email

)

select * from matched
