{#-
    The additive measures of guerrilla_metrics per period and customer group (the four group types), over
    the groups that have members or events in the period. Every event (an order, a ticket, a new or
    won-back customer, a loss, a renewal, a referral, an NPS answer) counts in the period of its date and
    in the group its customer belonged to in that period (customer_period_groups); records that match no
    customer count under 'unmatched'. Quarter and year rows come from each customer's events of the whole
    quarter or year, not from month rows (a customer's segment can differ between a month and its quarter).

    Window-incremental (macros/recompute.sql): an incremental run replaces the periods ending on or after
    the earliest of: the first changed month of events, the first period end whose memberships (segment,
    tier, activity) changed, the previous and the current as-of date. A changed var group_attribute or an
    earlier first period recomputes everything. The attribute group is the customer's current value, so a
    customer who moved (var group_attribute) would change every period's rows: instead, the post-hook
    apply_group_attribute_moves moves their contributions to the kept periods from the old group to the
    new one. All measures are sums, so this equals a recomputation; a group left without contributing
    customers loses its row, as in a full build.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_from',
        replace_from_column='period_end_date',
        on_schema_change='fail',
        indexes=[{'columns': ['period_type', 'period_start_date', 'group_type', 'group_value'], 'unique': true}],
        pre_hook=[
            "{{ set_recompute_from(guerrilla_build_inputs()) }}",
            "set local work_mem = '{{ var('guerrilla_work_mem') }}'",
        ],
        post_hook=[
            "{{ apply_group_attribute_moves() }}",
            "{{ record_build_inputs(guerrilla_build_inputs()) }}",
            "{{ record_build_customers(guerrilla_customer_attributes()) }}",
            "analyze {{ this }}",
        ],
    )
}}
{%- set recompute_from_date = recompute_from(guerrilla_build_inputs()) %}
{%- set event_measures = guerrilla_event_measures() %}
-- depends_on: {{ ref('stg_sales__customers') }}

with

periods as (

    select
        period_type,
        period_start_date,
        period_end_date
    from {{ ref('int_periods_generated') }}
    where period_type in ('month', 'quarter', 'year')
    {%- if recompute_from_date %}
        and period_end_date >= '{{ recompute_from_date }}'
    {%- endif %}

),

period_types as (

    -- per period type, the first day of the first recomputed period
    select
        period_type,
        {%- if recompute_from_date %}
        date_trunc(period_type, '{{ recompute_from_date }}'::date)::date as first_start_date
        {%- else %}
        '-infinity'::date as first_start_date
        {%- endif %}
    from unnest(array['month', 'quarter', 'year']) as period_types (period_type)

),

memberships as (

    select
        customer_id,
        period_type,
        period_start_date,
        rfm_segment,
        value_tier,
        attribute_value,
        is_active_in_period,
        is_new_in_period
    from {{ ref('customer_period_groups') }}
    {%- if recompute_from_date %}
    where period_end_date >= '{{ recompute_from_date }}'
    {%- endif %}

),

customer_months as (

    select *
    from {{ ref('int_customer_events_aggregated_to_months') }}
    {%- if recompute_from_date %}
    where month_start_date >= date_trunc('year', '{{ recompute_from_date }}'::date)::date
    {%- endif %}

),

events_aggregated_to_customer_periods as (

    select
        customer_months.customer_id,
        period_types.period_type,
        date_trunc(period_types.period_type, customer_months.month_start_date)::date as period_start_date,
        {%- for column in event_measures %}
        sum(customer_months.{{ column }}) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from customer_months
    inner join period_types
        on customer_months.month_start_date >= period_types.first_start_date
    group by 1, 2, 3

),

memberships_aggregated as (

    -- the memberships per combination of groups: narrow rows, most customer periods have no events
    select
        period_type,
        period_start_date,
        coalesce(rfm_segment, 'unsegmented') as rfm_segment,
        coalesce(value_tier, 'unsegmented') as value_tier,
        coalesce(attribute_value, 'unknown') as attribute_value,
        count(*) as contributing_customers,
        sum(case when is_active_in_period then 1 else 0 end) as active_customers
    from memberships
    group by 1, 2, 3, 4, 5

),

events_attributed as (

    -- each customer period's events in the groups of its membership; events without one count under
    -- 'unsegmented'/'unknown' (a customer) or 'unmatched' (records that match no customer)
    select
        events.period_type,
        events.period_start_date,
        case
            when memberships.customer_id is not null then coalesce(memberships.rfm_segment, 'unsegmented')
            when events.customer_id is null then 'unmatched'
            else 'unsegmented'
        end as rfm_segment,
        case
            when memberships.customer_id is not null then coalesce(memberships.value_tier, 'unsegmented')
            when events.customer_id is null then 'unmatched'
            else 'unsegmented'
        end as value_tier,
        case
            when memberships.customer_id is not null then coalesce(memberships.attribute_value, 'unknown')
            when events.customer_id is null then 'unmatched'
            else 'unknown'
        end as attribute_value,
        memberships.customer_id is null as is_without_membership,
        coalesce(memberships.is_new_in_period, false) as is_new_in_period,
        {%- for column in event_measures %}
        events.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from events_aggregated_to_customer_periods as events
    left join memberships
        on events.customer_id = memberships.customer_id
            and events.period_type = memberships.period_type
            and events.period_start_date = memberships.period_start_date

),

events_aggregated as (

    select
        period_type,
        period_start_date,
        rfm_segment,
        value_tier,
        attribute_value,
        count(*) filter (where is_without_membership) as contributing_customers,
        sum(case when is_new_in_period then revenue else 0 end) as new_customer_revenue,
        {%- for column in event_measures %}
        sum({{ column }}) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from events_attributed
    group by period_type, period_start_date, rfm_segment, value_tier, attribute_value

),

combinations_aggregated as (

    -- per combination of groups: its members and its events (a few thousand rows), so the grouping
    -- sets below roll up these instead of sorting every customer period four times
    select
        coalesce(memberships_aggregated.period_type, events_aggregated.period_type) as period_type,
        coalesce(memberships_aggregated.period_start_date, events_aggregated.period_start_date)
            as period_start_date,
        coalesce(memberships_aggregated.rfm_segment, events_aggregated.rfm_segment) as rfm_segment,
        coalesce(memberships_aggregated.value_tier, events_aggregated.value_tier) as value_tier,
        coalesce(memberships_aggregated.attribute_value, events_aggregated.attribute_value) as attribute_value,
        coalesce(memberships_aggregated.contributing_customers, 0)
            + coalesce(events_aggregated.contributing_customers, 0) as contributing_customers,
        coalesce(memberships_aggregated.active_customers, 0) as active_customers,
        coalesce(events_aggregated.new_customer_revenue, 0) as new_customer_revenue,
        {%- for column in event_measures %}
        coalesce(events_aggregated.{{ column }}, 0) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from memberships_aggregated
    full outer join events_aggregated
        on memberships_aggregated.period_type = events_aggregated.period_type
            and memberships_aggregated.period_start_date = events_aggregated.period_start_date
            and memberships_aggregated.rfm_segment = events_aggregated.rfm_segment
            and memberships_aggregated.value_tier = events_aggregated.value_tier
            and memberships_aggregated.attribute_value = events_aggregated.attribute_value

),

groups_aggregated as (

    -- all four group types in one pass (grouping sets, not a 4x cross join)
    select
        period_type,
        period_start_date,
        case
            when grouping(rfm_segment) = 0 then 'segment'
            when grouping(value_tier) = 0 then 'value_tier'
            when grouping(attribute_value) = 0 then '{{ group_attribute_column() }}'
            else 'all'
        end as group_type,
        case
            when grouping(rfm_segment) = 0 then rfm_segment
            when grouping(value_tier) = 0 then value_tier
            when grouping(attribute_value) = 0 then attribute_value
            else 'all'
        end as group_value,
        {%- for column, data_type in guerrilla_measure_columns() %}
        sum({{ column }}) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from combinations_aggregated
    group by grouping sets (
        (period_type, period_start_date),
        (period_type, period_start_date, rfm_segment),
        (period_type, period_start_date, value_tier),
        (period_type, period_start_date, attribute_value)
    )

),

final as (

    select
        -- keys
        groups_aggregated.period_type::text as period_type,
        groups_aggregated.period_start_date::date as period_start_date,
        groups_aggregated.group_type::text as group_type,
        groups_aggregated.group_value::text as group_value,

        -- period
        periods.period_end_date::date as period_end_date,

        -- additive measures
        {{ guerrilla_measures('groups_aggregated') }}

    from groups_aggregated
    inner join periods
        on groups_aggregated.period_type = periods.period_type
            and groups_aggregated.period_start_date = periods.period_start_date

)

select * from final
