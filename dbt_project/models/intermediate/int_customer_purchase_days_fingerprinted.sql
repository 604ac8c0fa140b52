{#-
    One fingerprint per purchase date of int_customer_purchase_days_aggregated (row count and the sum of
    the rows' hashes): what customer_period_groups compares with the fingerprints of its previous build
    to find the earliest date whose purchases changed (macros/recompute.sql). A small table.
-#}
{{ config(materialized='table', post_hook='analyze {{ this }}') }}

with

purchase_days as (

    select
        customer_id,
        purchase_date,
        orders,
        revenue,
        cost
    from {{ ref('int_customer_purchase_days_aggregated') }}

),

fingerprinted as (

    select
        purchase_date,
        {{ rows_fingerprint(
            'purchase_days.customer_id, purchase_days.orders, purchase_days.revenue, purchase_days.cost'
        ) }} as fingerprint
    from purchase_days
    group by purchase_date

)

select * from fingerprinted
