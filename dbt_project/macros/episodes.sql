{#-
    The loss rule's SQL (documented and unit-tested as the view int_customer_episodes_stitched): one row
    per customer per active episode. customers_condition: an SQL condition on customer_id restricting the
    purchase days and contract terms read (customer_episodes recomputes only the customers a load
    touched); every customer without one.
-#}
{% macro customer_episodes_stitched(customers_condition=none) -%}
with

purchase_days as (

    select
        customer_id,
        purchase_date
    from {{ ref('int_customer_purchase_days_aggregated') }}
    {%- if customers_condition %}
    where {{ customers_condition }}
    {%- endif %}

),

contracts as (

    select
        contract_id,
        customer_id,
        contract_status,
        start_date,
        end_date
    from {{ ref('int_contracts_matched') }}
    where is_customer_matched
        and start_date is not null
        and start_date <= {{ as_of_date() }}
        {%- if customers_condition %}
        and {{ customers_condition }}
        {%- endif %}

),

purchase_caps as (

    -- the purchase days within a term the customer later cancelled, and the earliest such end: few, so
    -- they are grouped apart instead of grouping every purchase day
    select
        purchase_days.customer_id,
        purchase_days.purchase_date,
        min(cancelled_terms.end_date) + 1 as capped_until_date
    from purchase_days
    inner join contracts as cancelled_terms
        on purchase_days.customer_id = cancelled_terms.customer_id
            and cancelled_terms.contract_status = 'cancelled'
            and purchase_days.purchase_date between cancelled_terms.start_date and cancelled_terms.end_date
    group by purchase_days.customer_id, purchase_days.purchase_date

),

purchase_coverage as (

    select
        purchase_days.customer_id,
        purchase_days.purchase_date as covered_from_date,
        least(
            purchase_days.purchase_date + {{ var('lost_after_days') | int }},
            purchase_caps.capped_until_date
        ) as covered_until_date,
        'purchase'::text as coverage_source,
        null::bigint as contract_id,
        'no_purchase'::text as loss_type_if_last,
        purchase_days.purchase_date
    from purchase_days
    left join purchase_caps
        on purchase_days.customer_id = purchase_caps.customer_id
            and purchase_days.purchase_date = purchase_caps.purchase_date

),

contract_coverage as (

    select
        customer_id,
        start_date as covered_from_date,
        coalesce(end_date + 1, 'infinity'::date) as covered_until_date,
        'contract'::text as coverage_source,
        contract_id,
        case
            when contract_status = 'cancelled' then 'contract_cancelled'
            else 'contract_expired'
        end as loss_type_if_last,
        null::date as purchase_date
    from contracts
    where coalesce(end_date + 1, 'infinity'::date) > start_date

),

coverage_unioned as (

    select * from purchase_coverage
    union all
    select * from contract_coverage

),

coverage_ordered as (

    select
        *,
        max(covered_until_date) over (
            partition by customer_id
            order by covered_from_date, covered_until_date, coverage_source, contract_id
            rows between unbounded preceding and 1 preceding
        ) as covered_until_before
    from coverage_unioned

),

coverage_numbered as (

    select
        *,
        sum(
            case
                when covered_until_before is null or covered_from_date > covered_until_before then 1
                else 0
            end
        ) over (
            partition by customer_id
            order by covered_from_date, covered_until_date, coverage_source, contract_id
            rows between unbounded preceding and current row
        ) as episode_number
    from coverage_ordered

),

episodes_aggregated as (

    select
        customer_id,
        episode_number,
        min(covered_from_date) as episode_started_date,
        max(covered_until_date) as covered_until_date,
        min(purchase_date) as first_purchase_date,
        max(purchase_date) as last_purchase_date,
        count(purchase_date) as purchase_days,
        count(contract_id) as contract_terms
    from coverage_numbered
    group by customer_id, episode_number

),

episode_endings as (

    -- what ended the episode: the coverage that reached furthest (a contract term wins a tie)
    select distinct on (coverage_numbered.customer_id, coverage_numbered.episode_number)
        coverage_numbered.customer_id,
        coverage_numbered.episode_number,
        coverage_numbered.loss_type_if_last,
        coverage_numbered.contract_id as ending_contract_id
    from coverage_numbered
    inner join episodes_aggregated
        on coverage_numbered.customer_id = episodes_aggregated.customer_id
            and coverage_numbered.episode_number = episodes_aggregated.episode_number
            and coverage_numbered.covered_until_date = episodes_aggregated.covered_until_date
    order by
        coverage_numbered.customer_id asc,
        coverage_numbered.episode_number asc,
        (coverage_numbered.coverage_source = 'contract') desc,
        (coverage_numbered.loss_type_if_last = 'contract_cancelled') desc,
        coverage_numbered.contract_id desc

),

final as (

    select
        -- ids
        episodes_aggregated.customer_id,
        episodes_aggregated.episode_number::integer as episode_number,

        -- dates: coverage runs [episode_started_date, covered_until_date)
        episodes_aggregated.episode_started_date,
        episodes_aggregated.covered_until_date,
        case
            when episodes_aggregated.covered_until_date <= {{ as_of_date() }}
                then episodes_aggregated.covered_until_date
        end as lost_date,
        episodes_aggregated.first_purchase_date,
        episodes_aggregated.last_purchase_date,

        -- loss
        episodes_aggregated.covered_until_date <= {{ as_of_date() }} as is_lost,
        case
            when episodes_aggregated.covered_until_date <= {{ as_of_date() }}
                then episode_endings.loss_type_if_last
        end as loss_type,
        case
            when episodes_aggregated.covered_until_date <= {{ as_of_date() }}
                then episode_endings.ending_contract_id
        end as ending_contract_id,

        -- counts
        episodes_aggregated.purchase_days,
        episodes_aggregated.contract_terms,
        episodes_aggregated.episode_number = 1 as is_first_episode

    from episodes_aggregated
    inner join episode_endings
        on episodes_aggregated.customer_id = episode_endings.customer_id
            and episodes_aggregated.episode_number = episode_endings.episode_number

)

select * from final
{%- endmacro %}
