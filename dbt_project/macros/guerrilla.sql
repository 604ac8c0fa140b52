{#-
    The guerrilla metrics' building blocks: int_guerrilla_groups_aggregated (window-incremental, additive
    measures per period and group) and guerrilla_metrics (every group in every period, derived figures).
-#}

{#-
    The additive measures of a group in a period, in table order: (column, type). contributing_customers
    counts the customers with a membership or events in the group and period (the unmatched records as one).
-#}
{% macro guerrilla_measure_columns() -%}
    {{ return([
        ('contributing_customers', 'bigint'),
        ('active_customers', 'bigint'),
        ('new_customers', 'bigint'),
        ('new_customer_revenue', 'numeric'),
        ('reactivated_customers', 'bigint'),
        ('lost_customers', 'bigint'),
        ('lost_customer_value', 'numeric'),
        ('renewals', 'bigint'),
        ('renewal_value', 'numeric'),
        ('orders', 'bigint'),
        ('revenue', 'numeric'),
        ('known_cost', 'numeric'),
        ('orders_with_unknown_cost', 'bigint'),
        ('tickets', 'bigint'),
        ('complaints', 'bigint'),
        ('referrals', 'bigint'),
        ('nps_responses', 'bigint'),
        ('promoters', 'bigint'),
        ('passives', 'bigint'),
        ('detractors', 'bigint'),
        ('csat_responses', 'bigint'),
        ('csat_satisfied_responses', 'bigint'),
    ]) }}
{%- endmacro %}

{#- The measures that come from events (all but the membership's: contributing, active, new revenue). -#}
{% macro guerrilla_event_measures() -%}
    {%- set membership_measures = ('contributing_customers', 'active_customers', 'new_customer_revenue') -%}
    {{ return(guerrilla_measure_columns() | map(attribute=0) | reject('in', membership_measures) | list) }}
{%- endmacro %}

{#-
    The event measures as a select list, each from `values` (measure: SQL expression) or 0 (an event
    contributes to its own measures only): the branches of the event union in one column order.
-#}
{% macro guerrilla_event_values(values) -%}
    {%- set types = dict(guerrilla_measure_columns()) -%}
    {%- for column in guerrilla_event_measures() %}
        ({{ values.get(column, '0') }})::{{ types[column] }} as {{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- The measures of `alias`, cast, as a select list. -#}
{% macro guerrilla_measures(alias) -%}
    {%- for column, data_type in guerrilla_measure_columns() %}
        {{ alias }}.{{ column }}::{{ data_type }} as {{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#-
    The (group_type, group_value) pairs every period of guerrilla_metrics has, observed or not: all; the
    rule seed's segments; the value tiers (unknown = margin unknown); the customers' current values of var
    group_attribute; and unsegmented (no purchase yet), unknown (attribute missing) and unmatched (records
    matching no customer). guerrilla_metrics adds any other value that occurs in some period.
-#}
{% macro guerrilla_group_values() -%}
    select 'all' as group_type, 'all' as group_value
    union
    select 'segment', rfm_segment
    from {{ ref('rfm_segment_rules') }}
    union
    select 'segment', group_value
    from unnest(array['unsegmented', 'unmatched']) as extra_values (group_value)
    union
    select 'value_tier', group_value
    from unnest(array[
        'power_player', 'core', 'low_margin', 'long_tail', 'inactive', 'unknown', 'unsegmented', 'unmatched'
    ]) as tiers (group_value)
    union
    select '{{ group_attribute_column() }}', {{ group_attribute_value('customers') }}
    from {{ ref('stg_sales__customers') }} as customers
    union
    select '{{ group_attribute_column() }}', group_value
    from unnest(array['unknown', 'unmatched']) as extra_values (group_value)
{%- endmacro %}

{#-
    The groups a customer period counts in (rfm_segment, value_tier, attribute_value, as a select list):
    its membership's, else (events without one) unsegmented/unknown for a customer and unmatched for the
    records that match no customer. The full build and the applied changes of
    int_guerrilla_groups_aggregated must attribute alike. memberships: the membership's alias (its
    customer_id null = none); customer_id: the customer period's customer.
-#}
{% macro guerrilla_groups(memberships, customer_id) -%}
    {%- for column, default, unmatched in [
        ('rfm_segment', 'unsegmented', 'unmatched'),
        ('value_tier', 'unsegmented', 'unmatched'),
        ('attribute_value', 'unknown', 'unmatched'),
    ] %}
        case
            when {{ memberships }}.customer_id is not null then coalesce({{ memberships }}.{{ column }}, '{{ default }}')
            when {{ customer_id }} is null then '{{ unmatched }}'
            else '{{ default }}'
        end as {{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#-
    A left join (lateral) of a record to its customer_period_groups membership of one period, by the
    membership key: `customer_id`, `period_type` and `period_start_date` are SQL expressions over the
    record; `columns` the membership columns wanted, under alias `alias`. Joined instead, the planner
    hashes every customer's memberships of every period (8.5M month rows at large) for a few hundred
    thousand records; looked up, each reads one row through the primary key. The limit, harmless under
    a unique key, keeps the planner from turning the lookup back into that join.
-#}
{% macro membership_lookup(customer_id, period_type, period_start_date, columns, alias='memberships') -%}
    left join lateral (
        select
            {%- for column in columns %}
            customer_period_groups.{{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        from {{ ref('customer_period_groups') }} as customer_period_groups
        where customer_period_groups.customer_id = {{ customer_id }}
            and customer_period_groups.period_type = {{ period_type }}
            and customer_period_groups.period_start_date = {{ period_start_date }}
        limit 1
    ) as {{ alias }} on true
{%- endmacro %}

{#- A query of the customer events by month in `event_months`, summed per customer and month, quarter, year. -#}
{% macro guerrilla_events_to_periods(event_months) -%}
    select
        event_months.customer_id,
        period_types.period_type,
        date_trunc(period_types.period_type, event_months.month_start_date)::date as period_start_date,
        {%- for column in guerrilla_event_measures() %}
        sum(event_months.{{ column }}) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ event_months }} as event_months
    cross join unnest(array['month', 'quarter', 'year']) as period_types (period_type)
    group by 1, 2, 3
{%- endmacro %}

{#- Each customer's current attribute group (var group_attribute), as (customer_id, fingerprint). -#}
{% macro guerrilla_customer_attributes() -%}
    select customer_id, {{ group_attribute_value('customers') }} as fingerprint
    from {{ ref('stg_sales__customers') }} as customers
{%- endmacro %}

{#-
    The inputs of int_guerrilla_groups_aggregated, which it applies changes for as long as they are the
    same (macros/changes.sql): as 'config' the group attribute, the first period (an earlier first
    activity adds periods before all others) and the generations of the change logs it reads; the as-of
    date only so that recompute_from has a date to return. The group values are not inputs:
    guerrilla_metrics adds every value to every period when it is rebuilt from this table.
-#}
{% macro guerrilla_build_inputs() -%}
    select 'as_of' as input_key, as_of_date::text as fingerprint
    from {{ ref('int_as_of_date') }}
    union all
    select
        'config',
        md5(
            '{{ group_attribute_column() | trim }}|' || min(period_start_date)::text
            {%- for identifier in guerrilla_change_logs() %}
            || '|' || {{ change_log_generation(identifier) }}
            {%- endfor %}
        )
    from {{ ref('int_periods_generated') }}
{%- endmacro %}

{#- The change logs int_guerrilla_groups_aggregated applies: its memberships' and its events'. -#}
{% macro guerrilla_change_logs() -%}
    {{ return(['customer_period_groups', 'int_customer_events_aggregated_to_months']) }}
{%- endmacro %}

{#-
    Every event guerrilla_metrics counts, one row per event with the measures it contributes (0 = not this
    kind of event): an order, a ticket, a new or won-back customer, a loss, a renewal, a referral (for the
    referrer, on the day the referred customer started), an NPS or CSAT answer. customer_id null = the record
    matches no customer. int_customer_events_aggregated_to_months sums them per customer and month.
    customer_ids: an SQL bigint[] expression; when given, only the events of those customers and of no
    customer (each source read through its customer index where it has one).
-#}
{% macro guerrilla_customer_events(customer_ids=none) -%}
with

orders as (

    select
        case when is_customer_matched then customer_id end as customer_id,
        order_date,
        revenue,
        cost
    from {{ ref('orders') }}
    where is_revenue_order
        and order_date <= {{ as_of_date() }}
        {%- if customer_ids %}
        and (customer_id = any({{ customer_ids }}) or not is_customer_matched)
        {%- endif %}

),

tickets as (

    select
        customer_id,
        created_date,
        is_complaint
    from {{ ref('int_tickets_matched') }}
    where created_date <= {{ as_of_date() }}
        {%- if customer_ids %}
        and (customer_id = any({{ customer_ids }}) or customer_id is null)
        {%- endif %}

),

episodes as (

    select
        customer_id,
        episode_number,
        episode_started_date
    from {{ ref('customer_episodes') }}

),

losses as (

    select
        customer_id,
        lost_date,
        revenue_12m_before_loss
    from {{ ref('int_customer_losses_stored') }}
    {%- if customer_ids %}
    where customer_id = any({{ customer_ids }})
    {%- endif %}

),

renewals as (

    select
        customer_id,
        signed_date,
        annual_value
    from {{ ref('int_contracts_matched') }}
    where is_renewal
        and is_customer_matched
        and signed_date <= {{ as_of_date() }}
        {%- if customer_ids %}
        and customer_id = any({{ customer_ids }})
        {%- endif %}

),

customers as (

    select
        customer_id,
        referred_by_customer_id
    from {{ ref('stg_sales__customers') }}

),

survey_answers as (

    -- the NPS and CSAT answers with a score (nps_by_segment counts them from the group sums too)
    select
        customer_id,
        submitted_date,
        response_kind,
        nps_category,
        is_csat_satisfied
    from {{ ref('int_survey_responses_matched') }}
    where submitted_date <= {{ as_of_date() }}
        and (
            (response_kind = 'nps' and nps_score is not null)
            or (response_kind = 'csat' and csat_score is not null)
        )
        {%- if customer_ids %}
        and (customer_id = any({{ customer_ids }}) or customer_id is null)
        {%- endif %}

),

referrals as (

    -- a new customer's referral counts for the referrer, on the day the new customer started
    select
        referrers.customer_id,
        episodes.episode_started_date as referred_date
    from episodes
    inner join customers as referred
        on episodes.customer_id = referred.customer_id
    left join customers as referrers
        on referred.referred_by_customer_id = referrers.customer_id
    where episodes.episode_number = 1
        and referred.referred_by_customer_id is not null
        {%- if customer_ids %}
        and (referrers.customer_id = any({{ customer_ids }}) or referrers.customer_id is null)
        {%- endif %}

),

events_unioned as (

    -- one row per event with the measures it contributes (0 = not this kind of event);
    -- customer_id null = the record matches no customer
    select
        customer_id,
        order_date as event_date,
        {{ guerrilla_event_values({
            'orders': '1',
            'revenue': 'revenue',
            'known_cost': 'coalesce(cost, 0)',
            'orders_with_unknown_cost': 'case when cost is null then 1 else 0 end'
        }) }}
    from orders

    union all

    select
        customer_id,
        created_date as event_date,
        {{ guerrilla_event_values({
            'tickets': '1',
            'complaints': 'case when is_complaint then 1 else 0 end'
        }) }}
    from tickets

    union all

    select
        customer_id,
        episode_started_date as event_date,
        {{ guerrilla_event_values({
            'new_customers': 'case when episode_number = 1 then 1 else 0 end',
            'reactivated_customers': 'case when episode_number > 1 then 1 else 0 end'
        }) }}
    from episodes
    {%- if customer_ids %}
    where customer_id = any({{ customer_ids }})
    {%- endif %}

    union all

    select
        customer_id,
        lost_date as event_date,
        {{ guerrilla_event_values({
            'lost_customers': '1',
            'lost_customer_value': 'revenue_12m_before_loss'
        }) }}
    from losses

    union all

    select
        customer_id,
        signed_date as event_date,
        {{ guerrilla_event_values({
            'renewals': '1',
            'renewal_value': 'annual_value'
        }) }}
    from renewals

    union all

    select
        customer_id,
        referred_date as event_date,
        {{ guerrilla_event_values({
            'referrals': '1'
        }) }}
    from referrals

    union all

    select
        customer_id,
        submitted_date as event_date,
        {{ guerrilla_event_values({
            'nps_responses': "case when response_kind = 'nps' then 1 else 0 end",
            'promoters': "case when response_kind = 'nps' and nps_category = 'promoter' then 1 else 0 end",
            'passives': "case when response_kind = 'nps' and nps_category = 'passive' then 1 else 0 end",
            'detractors': "case when response_kind = 'nps' and nps_category = 'detractor' then 1 else 0 end",
            'csat_responses': "case when response_kind = 'csat' then 1 else 0 end",
            'csat_satisfied_responses': "case when response_kind = 'csat' and is_csat_satisfied then 1 else 0 end"
        }) }}
    from survey_answers

)

select * from events_unioned
{%- endmacro %}

