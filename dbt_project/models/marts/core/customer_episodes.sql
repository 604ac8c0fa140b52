{#-
    The customer lifecycle as a table: every active episode of every customer, from its first covered day
    to its loss (or still running at the as-of date). The loss rule is the macro customer_episodes_stitched
    (unit-tested as the view int_customer_episodes_stitched); this table is what the lifecycle marts
    (customers, customer_period_groups, guerrilla_metrics, lost_customer_review) read, with real planner
    statistics.

    Incremental per customer (macros/recompute.sql, customer_build_inputs): a run recomputes the
    customers whose purchase days can have changed (sales_customers_touched), whose contract terms a load
    touched (every customer any version of the term had), whose episode's coverage ends within the as-of
    date's move (lost now, or not lost any more when the date went back) and whose term starts within it;
    it writes only the rows that differ. A changed var lost_after_days recomputes everyone.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_from',
        replace_customers_column='customer_id',
        keep_unchanged_rows=true,
        on_schema_change='fail',
        post_hook=[
            "{{ record_build_inputs(customer_build_inputs(var('lost_after_days'))) }}",
            "{{ record_loaded_through() }}",
        ],
    )
}}
-- depends_on: {{ ref('int_customer_episodes_stitched') }}  (the loss rule's unit tests run before this table)
-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by loaded_since on incremental runs only)
{%- set customers_listed = list_customers_touched(episode_customers_touched, var('lost_after_days')) %}
with

episodes as (

    select
        customer_id,
        episode_number,
        episode_started_date,
        covered_until_date,
        lost_date,
        first_purchase_date,
        last_purchase_date,
        is_lost,
        loss_type,
        ending_contract_id,
        purchase_days,
        contract_terms
    from (
        {{ customer_episodes_stitched(
            'customer_id in (select customer_id from ' ~ changed_customers_table() ~ ')' if customers_listed else none
        ) | indent(8) }}
    ) as stitched

),

final as (

    select
        -- keys
        customer_id::bigint as customer_id,
        episode_number::integer as episode_number,

        -- dates: active from episode_started_date up to (not including) covered_until_date
        episode_started_date::date as episode_started_date,
        covered_until_date::date as covered_until_date,
        lost_date::date as lost_date,
        first_purchase_date::date as first_purchase_date,
        last_purchase_date::date as last_purchase_date,

        -- flags
        (episode_number = 1)::boolean as is_first_episode,
        (episode_number > 1)::boolean as is_win_back,
        is_lost::boolean as is_lost,

        -- loss
        loss_type::text as loss_type,
        ending_contract_id::bigint as ending_contract_id,

        -- counts
        purchase_days::bigint as purchase_days,
        contract_terms::bigint as contract_terms

    from episodes

)

select * from final
