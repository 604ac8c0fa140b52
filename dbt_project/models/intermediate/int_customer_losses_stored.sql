{#-
    The losses of int_customer_losses_enriched (macro customer_losses_enriched) as a table, which
    lost_customer_review and the events by month read: the view would be computed once per reader.

    Incremental per customer (macros/recompute.sql, customer_inputs_touched): a run recomputes the
    customers any of whose records, episodes or purchase days can have changed since its last build, and
    writes only the rows that differ. A changed var of the losses or of the loss rule recomputes everyone.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_from',
        replace_customers_column='customer_id',
        keep_unchanged_rows=true,
        on_schema_change='fail',
        indexes=[{'columns': ['customer_id', 'lost_date'], 'unique': true}],
        post_hook=[
            "{{ record_build_inputs(customer_build_inputs(losses_config_text())) }}",
            "{{ record_loaded_through() }}",
            "analyze {{ this }}",
        ],
    )
}}
-- depends_on: {{ ref('int_customer_losses_enriched') }}  (its unit tests run before this table)
-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by loaded_since on incremental runs only)
-- depends_on: {{ ref('stg_service__load_batches') }}
-- depends_on: {{ ref('stg_survey__load_batches') }}
{%- set customers_listed = list_customers_touched(customer_inputs_touched, losses_config_text()) %}

with

losses as (

    {{ customer_losses_enriched(
        'customer_id in (select customer_id from ' ~ changed_customers_table() ~ ')' if customers_listed else none
    ) | indent(4) }}

)

select * from losses
