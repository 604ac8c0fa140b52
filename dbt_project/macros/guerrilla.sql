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
    What int_guerrilla_groups_aggregated reads of a customer_period_groups row (all but the attribute
    group): its fingerprint per period end (fingerprint_partitions) is that model's 'memberships' input.
-#}
{% macro membership_fingerprint_row() -%}
    {{ return(
        '(customer_id, period_type, period_start_date, rfm_segment, value_tier, is_active_in_period, is_new_in_period)'
    ) }}
{%- endmacro %}

{#- Each customer's current attribute group (var group_attribute), as (customer_id, fingerprint). -#}
{% macro guerrilla_customer_attributes() -%}
    select customer_id, {{ group_attribute_value('customers') }} as fingerprint
    from {{ ref('stg_sales__customers') }} as customers
{%- endmacro %}

{#-
    The inputs of int_guerrilla_groups_aggregated: each month's customer events (keyed by the month's
    first day), each period end's memberships without the attribute group (a move is applied as a delta,
    see apply_group_attribute_moves; customer_period_groups keeps these fingerprints up to date), the
    as-of date, and as 'config' the group attribute and the first period (an earlier first activity adds
    periods before all others). The group values are not inputs:
    guerrilla_metrics adds every value to every period when it is rebuilt from this table.
-#}
{% macro guerrilla_build_inputs() -%}
    select 'events@' || month_start_date::text as input_key, {{ rows_fingerprint('events') }} as fingerprint
    from {{ ref('int_customer_events_aggregated_to_months') }} as events
    group by month_start_date
    union all
    select 'memberships@' || partition_key, fingerprint
    from ({{ partition_fingerprints_sql(ref('customer_period_groups')) }}) as memberships
    union all
    select 'as_of', as_of_date::text
    from {{ ref('int_as_of_date') }}
    union all
    select
        'config',
        md5('{{ group_attribute_column() | trim }}|' || min(period_start_date)::text)
    from {{ ref('int_periods_generated') }}
{%- endmacro %}

{#-
    post-hook of int_guerrilla_groups_aggregated: customers whose attribute group changed since the last
    build (ledger _lens_build_customers) take their contributions to the periods this run kept (ending
    before lens.recompute_from) out of the old group and into the new one. A contribution is what the
    customer adds to a group's row in a period they have a membership in: the membership (active, new)
    and their events of that period (events without a membership count under 'unknown' and stay).
    No-op on full builds and when everything was recomputed.
-#}
{% macro apply_group_attribute_moves() -%}
    {%- set ledger = adapter.get_relation(this.database, target.schema, '_lens_build_customers') %}
    {%- if is_incremental() and ledger is not none %}
    {%- set measures = guerrilla_measure_columns() %}
    {%- set event_measures = guerrilla_event_measures() %}
    with

    recompute_bound as (
        select {{ recompute_from_bound() }} as recompute_from_date
    ),

    moved_customers as (
        select
            current_customers.customer_id,
            recorded.fingerprint as old_value,
            current_customers.fingerprint as new_value
        from ({{ guerrilla_customer_attributes() }}) as current_customers
        inner join {{ ledger }} as recorded
            on recorded.model_name = '{{ this.identifier }}'
                and recorded.customer_id = current_customers.customer_id
        where recorded.fingerprint <> current_customers.fingerprint
    ),

    kept_periods as (
        select periods.period_type, periods.period_start_date
        from {{ ref('int_periods_generated') }} as periods
        cross join recompute_bound
        where periods.period_type in ('month', 'quarter', 'year')
            and periods.period_end_date < recompute_bound.recompute_from_date
    ),

    memberships as (
        select
            memberships.customer_id,
            memberships.period_type,
            memberships.period_start_date,
            case when memberships.is_active_in_period then 1 else 0 end as active_customers,
            memberships.is_new_in_period
        from {{ ref('customer_period_groups') }} as memberships
        inner join moved_customers
            on memberships.customer_id = moved_customers.customer_id
        inner join kept_periods
            on memberships.period_type = kept_periods.period_type
                and memberships.period_start_date = kept_periods.period_start_date
    ),

    events as (
        select
            customer_months.customer_id,
            kept_periods.period_type,
            kept_periods.period_start_date,
            {%- for column in event_measures %}
            sum(customer_months.{{ column }}) as {{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        from {{ ref('int_customer_events_aggregated_to_months') }} as customer_months
        inner join moved_customers
            on customer_months.customer_id = moved_customers.customer_id
        inner join kept_periods
            on date_trunc(kept_periods.period_type, customer_months.month_start_date)::date
                = kept_periods.period_start_date
        group by 1, 2, 3
    ),

    contributions as (
        -- only periods with a membership: events without one count under 'unknown' whatever the attribute
        select
            memberships.customer_id,
            memberships.period_type,
            memberships.period_start_date,
            1 as contributing_customers,
            memberships.active_customers,
            case when memberships.is_new_in_period then coalesce(events.revenue, 0) else 0 end
                as new_customer_revenue,
            {%- for column in event_measures %}
            coalesce(events.{{ column }}, 0) as {{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        from memberships
        left join events
            on memberships.customer_id = events.customer_id
                and memberships.period_type = events.period_type
                and memberships.period_start_date = events.period_start_date
    ),

    deltas as (
        -- out of the old group (-1), into the new one (+1)
        select
            contributions.period_type,
            contributions.period_start_date,
            moves.group_value,
            {%- for column, data_type in measures %}
            sum(moves.sign * contributions.{{ column }}) as {{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        from contributions
        inner join moved_customers
            on contributions.customer_id = moved_customers.customer_id
        cross join lateral (
            values (-1, moved_customers.old_value), (1, moved_customers.new_value)
        ) as moves (sign, group_value)
        group by 1, 2, 3
    )

    insert into {{ this }} as target (
        period_type, period_start_date, group_type, group_value, period_end_date,
        {%- for column, data_type in measures %} {{ column }}{{ ',' if not loop.last }}{% endfor %}
    )
    select
        deltas.period_type,
        deltas.period_start_date,
        '{{ group_attribute_column() | trim }}',
        deltas.group_value,
        periods.period_end_date,
        {%- for column, data_type in measures %}
        deltas.{{ column }}::{{ data_type }}{{ ',' if not loop.last }}
        {%- endfor %}
    from deltas
    inner join {{ ref('int_periods_generated') }} as periods
        on deltas.period_type = periods.period_type
            and deltas.period_start_date = periods.period_start_date
    on conflict (period_type, period_start_date, group_type, group_value) do update
    set
        {%- for column, data_type in measures %}
        {{ column }} = target.{{ column }} + excluded.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %};

    -- a group the moves left without anyone has no row, as in a full build
    delete from {{ this }}
    where contributing_customers = 0
    {%- endif %}
{%- endmacro %}
