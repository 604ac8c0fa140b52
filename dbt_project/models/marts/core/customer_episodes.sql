{#-
    The customer lifecycle as a table: every active episode of every customer, from its first covered day
    to its loss (or still running at the as-of date). The loss rule lives in int_customer_episodes_stitched
    (unit-tested there); this table is what the lifecycle marts (customers, customer_period_groups,
    guerrilla_metrics, lost_customer_review) read, with real planner statistics.
-#}
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
    from {{ ref('int_customer_episodes_stitched') }}

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
