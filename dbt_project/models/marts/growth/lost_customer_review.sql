{#-
    The lost-customer review: for each month and each quarter, every customer lost in it (see the loss
    rule in int_customer_episodes_stitched) with their value, history and why they left, ranked by value.

    Window-incremental (macros/recompute.sql): a period's rows depend on its losses and on the period
    itself (its end, whether it is complete), so the build inputs are fingerprints of both per quarter
    (a quarter's months and the quarter lie within it). An incremental run recomputes the periods that
    start on or after the earliest quarter whose fingerprint changed (or the as-of date, if earlier), whole:
    the ranks are within a period. A post-hook brings the customer attributes of the older rows up to date
    (they are current values).
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_from',
        replace_from_column='period_start_date',
        on_schema_change='fail',
        pre_hook=["{{ set_recompute_from(lost_review_build_inputs()) }}"],
        post_hook=[
            "{{ update_current_attributes({
                'customer_name': 'customers.customer_name',
                'country_code': 'customers.country_code',
                'region': 'customers.region',
                'industry': 'customers.industry',
                'company_size': 'customers.company_size',
            }) }}",
            "{{ record_build_inputs(lost_review_build_inputs()) }}",
        ],
    )
}}
-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by update_current_attributes on incremental runs)
{%- set recompute_from_date = recompute_from(lost_review_build_inputs()) %}

with

periods as (

    select
        period_type,
        period_start_date,
        period_end_date,
        is_complete_period
    from {{ ref('int_periods_generated') }}
    where period_type in ('month', 'quarter'){% if recompute_from_date %}
        and period_start_date >= '{{ recompute_from_date }}'{% endif %}

),

losses as (

    select
        customer_id,
        episode_number,
        ending_contract_id,
        lost_date,
        episode_started_date,
        customer_since_date,
        last_purchase_date,
        loss_type,
        stated_reason,
        stated_reason_source,
        exit_comment,
        revenue_12m_before_loss,
        gross_margin_12m_before_loss,
        ending_contract_annual_value,
        tenure_days,
        complaints_before_loss,
        last_nps_score,
        last_nps_category,
        last_nps_comment,
        last_nps_date
    from {{ ref('int_customer_losses_stored') }}
    {%- if recompute_from_date %}
    -- (a loss in a recomputed period is dated on or after the period's start)
    where lost_date >= '{{ recompute_from_date }}'
    {%- endif %}

),

customers as (

    select
        customer_id,
        customer_name,
        country_code,
        region,
        industry,
        company_size
    from {{ ref('stg_sales__customers') }}
    {%- if recompute_from_date %}
    -- the customers lost in the recomputed periods (an array: the ids reach the version index)
    where customer_id = any(array(
        select customer_id
        from {{ ref('int_customer_losses_stored') }}
        where lost_date >= '{{ recompute_from_date }}'
    ))
    {%- endif %}

),

losses_in_periods as (

    select
        periods.period_type,
        periods.period_start_date,
        periods.period_end_date,
        periods.is_complete_period,
        losses.*
    from losses
    inner join periods
        on losses.lost_date between periods.period_start_date and periods.period_end_date

),

ranked as (

    select
        *,
        rank() over (
            partition by period_type, period_start_date
            order by revenue_12m_before_loss desc
        ) as value_rank,
        sum(revenue_12m_before_loss) over (partition by period_type, period_start_date) as period_lost_value
    from losses_in_periods

),

final as (

    select
        -- keys
        ranked.period_type::text as period_type,
        ranked.period_start_date::date as period_start_date,
        ranked.customer_id::bigint as customer_id,
        ranked.lost_date::date as lost_date,

        -- period
        ranked.period_end_date::date as period_end_date,
        ranked.is_complete_period::boolean as is_complete_period,

        -- customer
        customers.customer_name::text as customer_name,
        customers.country_code::text as country_code,
        customers.region::text as region,
        customers.industry::text as industry,
        customers.company_size::text as company_size,

        -- value and rank
        ranked.value_rank::bigint as value_rank,
        ranked.revenue_12m_before_loss::numeric(18, 6) as revenue_12m_before_loss,
        ranked.gross_margin_12m_before_loss::numeric(18, 6) as gross_margin_12m_before_loss,
        {{ ratio('ranked.revenue_12m_before_loss', 'ranked.period_lost_value', 100, 2) }}::numeric(9, 2)
            as share_of_period_lost_value_pct,
        ranked.ending_contract_annual_value::numeric(18, 6) as ending_contract_annual_value,

        -- history
        ranked.customer_since_date::date as customer_since_date,
        ranked.episode_started_date::date as episode_started_date,
        ranked.episode_number::integer as episode_number,
        ranked.tenure_days::integer as tenure_days,
        ranked.last_purchase_date::date as last_purchase_date,
        ranked.complaints_before_loss::bigint as complaints_before_loss,
        ranked.last_nps_score::integer as last_nps_score,
        ranked.last_nps_category::text as last_nps_category,
        ranked.last_nps_date::date as last_nps_date,
        ranked.last_nps_comment::text as last_nps_comment,

        -- why
        ranked.loss_type::text as loss_type,
        ranked.ending_contract_id::bigint as ending_contract_id,
        ranked.stated_reason::text as stated_reason,
        ranked.stated_reason_source::text as stated_reason_source,
        ranked.exit_comment::text as exit_comment

    from ranked
    left join customers
        on ranked.customer_id = customers.customer_id

)

select * from final
