{#-
    The losses' SQL (documented and unit-tested as the view int_customer_losses_enriched): one row per
    loss with its value, history and stated reason. customers_condition: an SQL condition on customer_id
    restricting the episodes, purchase days, complaints and survey answers read
    (int_customer_losses_stored recomputes only the customers whose inputs can have changed); every
    customer without one.
-#}
{% macro customer_losses_enriched(customers_condition=none) -%}
with

episodes as (

    select
        customer_id,
        episode_number,
        episode_started_date,
        lost_date,
        loss_type,
        ending_contract_id,
        last_purchase_date,
        is_lost
    from {{ ref('customer_episodes') }}
    {%- if customers_condition %}
    where {{ customers_condition }}
    {%- endif %}

),

purchase_days as (

    select
        customer_id,
        purchase_date,
        revenue,
        gross_margin
    from {{ ref('int_customer_purchase_days_aggregated') }}
    {%- if customers_condition %}
    where {{ customers_condition }}
    {%- endif %}

),

contracts as (

    select
        contract_id,
        annual_value,
        cancellation_reason
    from {{ ref('int_contracts_matched') }}

),

complaints as (

    select
        customer_id,
        created_date
    from {{ ref('int_tickets_matched') }}
    where is_complaint
        and match_status = 'matched'
        {%- if customers_condition %}
        and {{ customers_condition }}
        {%- endif %}

),

responses as (

    select
        response_id,
        customer_id,
        response_kind,
        nps_score,
        nps_category,
        stated_reason,
        response_comment,
        submitted_at,
        submitted_date
    from {{ ref('int_survey_responses_matched') }}
    where match_status = 'matched'
        {%- if customers_condition %}
        and {{ customers_condition }}
        {%- endif %}

),

losses as (

    select
        *,
        -- the customer's last sign of life in the episode: the last purchase, else the episode start
        coalesce(last_purchase_date, episode_started_date) as last_active_date
    from episodes
    where is_lost

),

loss_windows as (

    select
        customer_id,
        lost_date,
        (lost_date - interval '12 months')::date as value_window_start_date,
        last_active_date - {{ var('complaint_window_days') | int }} as complaint_window_start_date,
        last_active_date as exit_window_start_date,
        lost_date + {{ var('exit_survey_window_days') | int }} as exit_window_end_date
    from losses

),

first_episodes as (

    select
        customer_id,
        min(episode_started_date) as customer_since_date
    from episodes
    group by customer_id

),

value_before_loss as (

    select
        losses.customer_id,
        losses.lost_date,
        sum(purchase_days.revenue) as revenue_12m_before_loss,
        case
            when bool_and(purchase_days.gross_margin is not null) then sum(purchase_days.gross_margin)
        end as gross_margin_12m_before_loss
    from loss_windows as losses
    inner join purchase_days
        on losses.customer_id = purchase_days.customer_id
            and purchase_days.purchase_date between losses.value_window_start_date and losses.lost_date - 1
    group by losses.customer_id, losses.lost_date

),

complaints_before_loss as (

    select
        losses.customer_id,
        losses.lost_date,
        count(*) as complaints
    from loss_windows as losses
    inner join complaints
        on losses.customer_id = complaints.customer_id
            and complaints.created_date between losses.complaint_window_start_date and losses.lost_date - 1
    group by losses.customer_id, losses.lost_date

),

last_nps_before_loss as (

    select distinct on (losses.customer_id, losses.lost_date)
        losses.customer_id,
        losses.lost_date,
        responses.nps_score,
        responses.nps_category,
        responses.response_comment,
        responses.submitted_date
    from losses
    inner join responses
        on losses.customer_id = responses.customer_id
            and responses.response_kind = 'nps'
            and responses.nps_score is not null
            and losses.lost_date > responses.submitted_date
    order by losses.customer_id asc, losses.lost_date asc, responses.submitted_at desc, responses.response_id desc

),

exit_survey_after_loss as (

    select distinct on (losses.customer_id, losses.lost_date)
        losses.customer_id,
        losses.lost_date,
        responses.stated_reason,
        responses.response_comment
    from loss_windows as losses
    inner join responses
        on losses.customer_id = responses.customer_id
            and responses.response_kind = 'exit'
            and responses.submitted_date between losses.exit_window_start_date and losses.exit_window_end_date
    -- the latest answer that states a reason; a later one without a reason does not hide it
    order by
        losses.customer_id asc,
        losses.lost_date asc,
        responses.stated_reason is null asc,
        responses.submitted_at desc,
        responses.response_id desc

),

enriched as (

    select
        -- ids
        losses.customer_id,
        losses.episode_number,
        losses.ending_contract_id,

        -- dates
        losses.lost_date,
        losses.episode_started_date,
        first_episodes.customer_since_date,
        losses.last_purchase_date,
        losses.last_active_date,

        -- loss
        losses.loss_type,
        coalesce(contracts.cancellation_reason, exit_survey_after_loss.stated_reason) as stated_reason,
        case
            when contracts.cancellation_reason is not null then 'contract'
            when exit_survey_after_loss.stated_reason is not null then 'exit_survey'
        end as stated_reason_source,
        exit_survey_after_loss.response_comment as exit_comment,

        -- value
        coalesce(value_before_loss.revenue_12m_before_loss, 0) as revenue_12m_before_loss,
        case
            when value_before_loss.customer_id is not null then value_before_loss.gross_margin_12m_before_loss
            when {{ sales_costs_recorded() }} then 0
        end as gross_margin_12m_before_loss,
        contracts.annual_value as ending_contract_annual_value,

        -- relationship
        losses.lost_date - losses.episode_started_date as tenure_days,
        coalesce(complaints_before_loss.complaints, 0) as complaints_before_loss,

        -- last NPS answer before the loss
        last_nps_before_loss.nps_score as last_nps_score,
        last_nps_before_loss.nps_category as last_nps_category,
        last_nps_before_loss.response_comment as last_nps_comment,
        last_nps_before_loss.submitted_date as last_nps_date

    from losses
    inner join first_episodes
        on losses.customer_id = first_episodes.customer_id
    left join contracts
        on losses.ending_contract_id = contracts.contract_id
    left join value_before_loss
        on losses.customer_id = value_before_loss.customer_id
            and losses.lost_date = value_before_loss.lost_date
    left join complaints_before_loss
        on losses.customer_id = complaints_before_loss.customer_id
            and losses.lost_date = complaints_before_loss.lost_date
    left join last_nps_before_loss
        on losses.customer_id = last_nps_before_loss.customer_id
            and losses.lost_date = last_nps_before_loss.lost_date
    left join exit_survey_after_loss
        on losses.customer_id = exit_survey_after_loss.customer_id
            and losses.lost_date = exit_survey_after_loss.lost_date

)

select * from enriched
{%- endmacro %}

{#-
    The inputs of lost_customer_review (recompute_from): per quarter, a fingerprint of the losses dated in
    it and one of the review periods (months and the quarter) starting in it, and the as-of date.
-#}
{% macro lost_review_build_inputs() -%}
    select 'losses@' || date_trunc('quarter', losses.lost_date)::date::text as input_key,
        {{ rows_fingerprint('losses') }} as fingerprint
    from {{ ref('int_customer_losses_stored') }} as losses
    group by 1
    union all
    select 'periods@' || date_trunc('quarter', periods.period_start_date)::date::text,
        {{ rows_fingerprint('periods') }}
    from {{ ref('int_periods_generated') }} as periods
    where periods.period_type in ('month', 'quarter')
    group by 1
    union all
    select 'as_of', as_of_date::text
    from {{ ref('int_as_of_date') }}
{%- endmacro %}
