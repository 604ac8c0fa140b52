{#-
    The email → customer index used to match helpdesk tickets and survey answers given by email. An email
    held by two or more customers matches none of them (marked ambiguous) rather than an arbitrary one.
    A table: the tickets and the survey answers are matched through it in every build.
-#}
{{
    config(
        materialized='table',
        indexes=[{'columns': ['email'], 'unique': true}],
        post_hook=["analyze {{ this }}"],
    )
}}
with

customers as (

    select
        customer_id,
        email
    from {{ ref('stg_sales__customers') }}
    where email is not null

),

emails_grouped as (

    select
        email,
        count(*) as customers_with_email,
        min(customer_id) as min_customer_id
    from customers
    group by email

),

resolved as (

    select
        email,
        case when customers_with_email = 1 then min_customer_id end as customer_id,
        customers_with_email,
        customers_with_email > 1 as is_ambiguous
    from emails_grouped

)

select * from resolved
