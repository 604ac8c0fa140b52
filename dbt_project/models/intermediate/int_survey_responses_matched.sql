{#-
    Survey responses with the customer they belong to: customer_ref is a customer id (digits only) or an
    email (contains @); an answer without one that names the order it rates (a post-purchase survey)
    belongs to that order's customer. Unmatched responses stay, with the reason, and are listed in
    unmatched_source_records.

    Incremental (merge on response_id): a response's match depends on its latest version and on the
    customers its reference can name, so an incremental run matches again only
    - the responses with a version loaded since its last build (loaded_since),
    - the responses not matched then (a customer id or an email may have arrived, an ambiguous email may
      have become unique),
    - the responses matched to, or referring to the email of, a customer loaded since (an email that
      changed hands, or that a second customer now holds),
    - the responses rating an order loaded since (its customer may have changed).
    Customers are never deleted, so every other match stands. Matching every response again meant
    parsing half a million references in every build. The responses to match again are listed as the
    model compiles and reach the staging view as a literal list (up to var('listed_keys_limit') of
    them, else as a join): the planner then filters the raw table before picking the latest versions, where a
    join would pick them for every response first.
-#}
-- depends_on: {{ ref('stg_survey__load_batches') }}  (read by loaded_since on incremental runs only)
-- depends_on: {{ ref('stg_sales__load_batches') }}
{%- set sales_since = loaded_since(ref('stg_sales__load_batches'), ['orders', 'order_lines']) %}
{{
    config(
        materialized='incremental',
        unique_key='response_id',
        incremental_strategy='merge',
        on_schema_change='fail',
        indexes=[{'columns': ['response_id'], 'unique': true}, {'columns': ['customer_id']}],
        post_hook=["{{ record_loaded_through() }}", "analyze {{ this }}"],
    )
}}
{%- set to_match_ctes -%}
customers_loaded as (

    {{ customers_loaded_since() | indent(4) }}

),

responses_to_match as (

    select trim(response_id) as response_id
    from {{ source('survey', 'responses') }}
    where _loaded_at >= {{ loaded_since(ref('stg_survey__load_batches'), ['responses']) }}

    union

    select response_id
    from {{ this }}
    where match_status <> 'matched'
        or customer_id in (select customer_id from customers_loaded)
        or (reference_kind = 'email' and lower(customer_ref) in (select email from customers_loaded))
        or rated_order_id in ({{ order_ids_loaded_since(sales_since) | indent(8) }})

),
{%- endset -%}
{%- set listed_ids = none -%}
{%- if execute and is_incremental() -%}
    {%- set limit = var('listed_keys_limit') | int -%}
    {%- set listed = run_query(
        'with ' ~ to_match_ctes ~ ' listed as (select response_id from responses_to_match limit ' ~ (limit + 1) ~ ')'
        ~ ' select count(*) as ids, array_agg(response_id)::text as id_list from listed'
    ).rows[0] -%}
    {%- if listed['ids'] <= limit -%}
        {%- set listed_ids = (listed['id_list'] or '{}') | replace("'", "''") -%}
    {%- endif -%}
{%- endif -%}
with

{% if is_incremental() and listed_ids is none -%}
{{ to_match_ctes }}

{% endif -%}
responses as (

    select
        response_id,
        customer_ref,
        rated_order_id,
        response_kind,
        nps_score,
        csat_score,
        stated_reason,
        would_refer,
        response_comment,
        language_code,
        submitted_at
    from {{ ref('stg_survey__responses') }}
    {%- if listed_ids is not none %}
    where response_id = any('{{ listed_ids }}'::text[])
    {%- elif is_incremental() %}
    where response_id in (select response_id from responses_to_match)
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

rated_orders as (

    select
        order_id,
        customer_id
    from {{ ref('orders') }}
    where order_id in (select rated_order_id from responses)

),

references_parsed as (

    select
        *,
        case
            when customer_ref ~ '^[0-9]{1,18}$' then 'customer_id'
            when customer_ref like '%@%' then 'email'
            when customer_ref is null and rated_order_id is not null then 'order'
            else 'unrecognised'
        end as reference_kind,
        case when customer_ref ~ '^[0-9]{1,18}$' then customer_ref::bigint end as referenced_customer_id,
        case when customer_ref like '%@%' then lower(customer_ref) end as referenced_email
    from responses

),

matched as (

    select
        references_parsed.response_id,
        coalesce(customers.customer_id, customer_emails.customer_id, rated_orders.customer_id) as customer_id,
        references_parsed.customer_ref,
        references_parsed.rated_order_id,
        references_parsed.reference_kind,
        case
            when references_parsed.reference_kind = 'customer_id' and customers.customer_id is null
                then 'unknown_customer_id'
            when references_parsed.reference_kind = 'email' and customer_emails.email is null
                then 'unknown_email'
            when references_parsed.reference_kind = 'email' and customer_emails.is_ambiguous
                then 'ambiguous_email'
            when references_parsed.reference_kind = 'order' and rated_orders.order_id is null
                then 'unknown_order_id'
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
    left join rated_orders
        on references_parsed.reference_kind = 'order'
            and references_parsed.rated_order_id = rated_orders.order_id

)

select * from matched
