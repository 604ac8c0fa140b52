{#-
    The additive measures of guerrilla_metrics per period and customer group (the four group types), over
    the groups that have members or events in the period. Every event (an order, a ticket, a new or
    won-back customer, a loss, a renewal, a referral, an NPS or CSAT answer) counts in the period of its date and
    in the group its customer belonged to in that period (customer_period_groups); records that match no
    customer count under 'unmatched'. Quarter and year rows come from each customer's events of the whole
    quarter or year, not from month rows (a customer's segment can differ between a month and its quarter).

    Maintained by difference (strategy add_changes, macros/changes.sql): every measure is a sum over
    customer periods of one customer's contribution (their membership and their events of the period),
    so an incremental run adds, for each customer period that changed since its last build, the new
    contribution and subtracts the old one. The changed customer periods are those customer_period_groups
    and int_customer_events_aggregated_to_months logged (their first logged version is the old one), and
    every period of the customers whose attribute group (var group_attribute) changed: their old group is
    the one recorded in _lens_build_customers by the last build. A group left without contributing
    customers loses its row, as in a full build. A changed var group_attribute, an earlier first period or
    a new change log (a producer rebuilt in full) recomputes everything.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='add_changes',
        unique_key=['period_type', 'period_start_date', 'group_type', 'group_value'],
        sum_columns=guerrilla_measure_columns() | map(attribute=0) | list,
        drop_rows_where='contributing_customers = 0',
        on_schema_change='fail',
        indexes=[{'columns': ['period_type', 'period_start_date', 'group_type', 'group_value'], 'unique': true}],
        pre_hook=[
            "{{ set_recompute_from(guerrilla_build_inputs()) }}",
            "set local work_mem = '{{ var('build_work_mem') }}'",
            "{{ lock_change_logs(guerrilla_change_logs()) }}",
        ],
        post_hook=[
            "{{ record_build_inputs(guerrilla_build_inputs()) }}",
            "{{ record_build_customers(guerrilla_customer_attributes()) }}",
            "{{ empty_change_logs(guerrilla_change_logs()) }}",
            "analyze {{ this }}",
        ],
    )
}}
{#- recompute_from returns a date when the recorded inputs allow applying changes, none to recompute all -#}
{%- set applies_changes = recompute_from(guerrilla_build_inputs()) is not none %}
{%- set event_measures = guerrilla_event_measures() %}
{%- set period_types = "unnest(array['month', 'quarter', 'year']) as period_types (period_type)" %}
{#- a join key for customer ids that matches the records of no customer (null) with each other -#}
{%- set no_customer = '-9223372036854775808' %}
-- depends_on: {{ ref('stg_sales__customers') }}

with

{% if not applies_changes -%}
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

),

events_aggregated_to_customer_periods as (

    {{ guerrilla_events_to_periods(ref('int_customer_events_aggregated_to_months')) }}

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
        {{- guerrilla_groups('memberships', 'events.customer_id') }},
        memberships.customer_id is null as is_without_membership,
        coalesce(memberships.is_new_in_period, false) as is_new_in_period,
        {%- for column in event_measures %}
        events.{{ column }}{% if not loop.last %},{% endif %}
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
        sum({{ column }}) as {{ column }}{% if not loop.last %},{% endif %}
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
        coalesce(events_aggregated.{{ column }}, 0) as {{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from memberships_aggregated
    full outer join events_aggregated
        on memberships_aggregated.period_type = events_aggregated.period_type
            and memberships_aggregated.period_start_date = events_aggregated.period_start_date
            and memberships_aggregated.rfm_segment = events_aggregated.rfm_segment
            and memberships_aggregated.value_tier = events_aggregated.value_tier
            and memberships_aggregated.attribute_value = events_aggregated.attribute_value

),

{%- else -%}
memberships_logged as (

    -- the first logged version of each customer period written since the last build: the one this
    -- model last saw if it was deleted then ('inserted': the customer period had no row)
    select distinct on (customer_id, period_type, period_start_date) *
    from {{ change_log_relation('customer_period_groups') }}
    order by customer_id, period_type, period_start_date, change_id

),

event_months_logged as (

    select distinct on (customer_id, month_start_date) *
    from {{ change_log_relation('int_customer_events_aggregated_to_months') }}
    order by customer_id, month_start_date, change_id

),

recorded_attributes as (

    -- each customer's attribute group when this model was last built
    select
        customer_id,
        fingerprint as attribute_value
    from {{ target.schema }}._lens_build_customers
    where model_name = '{{ this.identifier }}'

),

changed_customer_periods as (

    select customer_id, period_type, period_start_date
    from memberships_logged

    union

    select
        event_months_logged.customer_id,
        period_types.period_type,
        date_trunc(period_types.period_type, event_months_logged.month_start_date)::date
    from event_months_logged
    cross join {{ period_types }}

    union

    -- every period of the customers whose attribute group differs from the recorded one (or who have
    -- none recorded: new customers, whose periods are all logged anyway)
    select customer_id, period_type, period_start_date
    from {{ ref('customer_period_groups') }}
    where {{ changed_customers_condition('customer_id', guerrilla_customer_attributes()) }}

),

event_months_after as (

    -- every month of the customers (and of the records matching none) with a changed customer period
    select *
    from {{ ref('int_customer_events_aggregated_to_months') }}
    where customer_id in (select customer_id from changed_customer_periods)

    union all

    select *
    from {{ ref('int_customer_events_aggregated_to_months') }}
    where customer_id is null
        and exists (select 1 from changed_customer_periods where customer_id is null)

),

event_months_before as (

    select
        customer_id,
        month_start_date,
        {%- for column in event_measures %}
        {{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from event_months_logged
    where change_kind = 'deleted'

    union all

    select
        stored.customer_id,
        stored.month_start_date,
        {%- for column in event_measures %}
        stored.{{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from event_months_after as stored
    where not exists (
        select 1
        from event_months_logged as logged
        where coalesce(logged.customer_id, {{ no_customer }}) = coalesce(stored.customer_id, {{ no_customer }})
            and logged.month_start_date = stored.month_start_date
    )

),
{%- for state in ['before', 'after'] %}

events_{{ state }} as (

    {{ guerrilla_events_to_periods('event_months_' ~ state) }}

),

contributions_{{ state }} as (

    -- what each changed customer period adds to its groups {{ state }} the change (as in a full build:
    -- the membership counts the customer once, events without one count under unsegmented/unmatched)
    select
        changed.period_type,
        changed.period_start_date,
        {{- guerrilla_groups('memberships', 'changed.customer_id') }},
        1 as contributing_customers,
        case when memberships.is_active_in_period then 1 else 0 end as active_customers,
        case when memberships.is_new_in_period then coalesce(events.revenue, 0) else 0 end
            as new_customer_revenue,
        {%- for column in event_measures %}
        coalesce(events.{{ column }}, 0) as {{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from changed_customer_periods as changed
    {#- the memberships joined to the changed periods one by one, the stored ones through the table's key
        index: a join with a CTE of memberships, whose size the planner cannot estimate, once compared every
        changed period with every other (20 s at large) #}
    {%- if state == 'after' %}
    left join {{ ref('customer_period_groups') }} as memberships
        on changed.customer_id = memberships.customer_id
            and changed.period_type = memberships.period_type
            and changed.period_start_date = memberships.period_start_date
    {%- else %}
    left join memberships_logged as logged
        on changed.customer_id = logged.customer_id
            and changed.period_type = logged.period_type
            and changed.period_start_date = logged.period_start_date
    left join {{ ref('customer_period_groups') }} as stored
        on changed.customer_id = stored.customer_id
            and changed.period_type = stored.period_type
            and changed.period_start_date = stored.period_start_date
    left join recorded_attributes
        on changed.customer_id = recorded_attributes.customer_id
    -- the membership before: logged, the first logged version if it was deleted ('inserted': the customer
    -- period had no row); not logged (an event or attribute change only), the stored row; either with the
    -- attribute group of the last build
    left join lateral (
        select
            {%- for column in ['customer_id', 'rfm_segment', 'value_tier', 'attribute_value', 'is_active_in_period', 'is_new_in_period'] %}
            {%- set before = 'case when logged.customer_id is null then stored.' ~ column ~ ' else logged.' ~ column ~ ' end' %}
            {{ 'coalesce(recorded_attributes.attribute_value, ' ~ before ~ ')' if column == 'attribute_value' else before }}
                as {{ column }}{% if not loop.last %},{% endif %}
            {%- endfor %}
        where logged.change_kind = 'deleted'
            or (logged.customer_id is null and stored.customer_id is not null)
    ) as memberships on true
    {%- endif %}
    left join events_{{ state }} as events
        on coalesce(changed.customer_id, {{ no_customer }}) = coalesce(events.customer_id, {{ no_customer }})
            and changed.period_type = events.period_type
            and changed.period_start_date = events.period_start_date
    where memberships.customer_id is not null
        or events.period_type is not null

),
{%- endfor %}

combinations_aggregated as (

    -- per combination of groups: the new contributions less the old ones
    select
        period_type,
        period_start_date,
        rfm_segment,
        value_tier,
        attribute_value,
        {%- for column, data_type in guerrilla_measure_columns() %}
        sum(sign * {{ column }}) as {{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from (
        select -1 as sign, * from contributions_before
        union all
        select 1 as sign, * from contributions_after
    ) as contributions
    group by 1, 2, 3, 4, 5

),
{%- endif %}

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
        sum({{ column }}) as {{ column }}{% if not loop.last %},{% endif %}
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
        period_type::text as period_type,
        period_start_date::date as period_start_date,
        group_type::text as group_type,
        group_value::text as group_value,

        -- period
        (
            period_start_date
            + case period_type
                when 'month' then interval '1 month'
                when 'quarter' then interval '3 months'
                else interval '1 year'
            end
            - interval '1 day'
        )::date as period_end_date,

        -- additive measures
        {{ guerrilla_measures('groups_aggregated') }}

    from groups_aggregated

)

select * from final
