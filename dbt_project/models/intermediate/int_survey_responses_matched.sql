{#-
    Survey responses with the customer they belong to: customer_ref is a customer id (digits only) or an
    email (contains @). Unmatched responses stay, with the reason, and are listed in
    unmatched_source_records.
    A table, not a view: seven models and the data tests read it, and each read of a view would match
    response again.
-#}
{{ config(materialized='table', indexes=[{'columns': ['customer_id']}], post_hook='analyze {{ this }}') }}
with

responses as (

    select
        response_id,
        customer_ref,
        response_kind,
        nps_score,
        csat_score,
        stated_reason,
        would_refer,
        response_comment,
        language_code,
        submitted_at
    from {{ ref('stg_survey__responses') }}

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

references_parsed as (

    select
        *,
        case
            when customer_ref ~ '^[0-9]{1,18}$' then 'customer_id'
            when customer_ref like '%@%' then 'email'
            else 'unrecognised'
        end as reference_kind,
        case when customer_ref ~ '^[0-9]{1,18}$' then customer_ref::bigint end as referenced_customer_id,
        case when customer_ref like '%@%' then lower(customer_ref) end as referenced_email
    from responses

),

matched as (

    select
        references_parsed.response_id,
        coalesce(customers.customer_id, customer_emails.customer_id) as customer_id,
        references_parsed.customer_ref,
        references_parsed.reference_kind,
        case
            when references_parsed.reference_kind = 'customer_id' and customers.customer_id is null
                then 'unknown_customer_id'
            when references_parsed.reference_kind = 'email' and customer_emails.email is null
                then 'unknown_email'
            when references_parsed.reference_kind = 'email' and customer_emails.is_ambiguous
                then 'ambiguous_email'
            when references_parsed.reference_kind = 'unrecognised'
                then 'unrecognised_reference'
            else 'matched'
        end as match_status,
        references_parsed.response_kind,
        references_parsed.nps_score,
        {{ nps_category('references_parsed.nps_score') }} as nps_category,
        references_parsed.csat_score,
        references_parsed.csat_score >= 4 as is_csat_satisfied,
        references_parsed.stated_reason,
        references_parsed.would_refer,
        references_parsed.response_comment,
        references_parsed.language_code,
        references_parsed.submitted_at,
        {{ to_utc_date('references_parsed.submitted_at') }} as submitted_date
    from references_parsed
    left join customers
        on references_parsed.referenced_customer_id = customers.customer_id
    left join customer_emails
        on references_parsed.referenced_email = customer_emails.email

)

select * from matched
