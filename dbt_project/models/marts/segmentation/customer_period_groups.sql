{#-
    Which groups each customer belongs to in each reporting period — the one place where the group
    assignment of guerrilla_metrics, renewals_by_reason, complaint_trends and nps_by_segment is defined.
    A customer's segment and value tier for a period are those of the period's last segment snapshot
    (its end, or the as-of date for the running period); customers without a purchase by then are
    'unsegmented'. The attribute group (var group_attribute) is the customer's current value.

    Window-incremental (macros/recompute.sql): an incremental run recomputes the periods ending on or after
    the earliest date the segment history changed, and all periods of the customers whose episodes or
    creation date changed (per-customer fingerprints), and writes only the rows that changed
    (keep_unchanged_rows). Within the window it recomputes only the customers whose rows can differ
    (list_regrouped_customers: their episodes changed or began, or their stored group differs from their
    segment snapshot now), unless a new period begins: a daily run recomputes a small share of the customers'
    running month, quarter and year instead of every customer's. So no column may change with the as-of date alone (the running periods' segment
    snapshot is int_periods_generated.segment_snapshot_date). The rows written go to the change log
    (macros/changes.sql) from which int_guerrilla_groups_aggregated updates its sums. A post-hook brings
    the attribute group of older periods up to date.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_from',
        replace_from_column='period_end_date',
        replace_customers_column='customer_id',
        keep_unchanged_rows=true,
        capture_replaced_rows=true,
        on_schema_change='fail',
        indexes=[{'columns': ['period_end_date']}],
        pre_hook=["{{ set_recompute_from(customer_group_build_inputs()) }}", "{{ start_change_log('pre') }}"],
        post_hook=[
            "{{ update_current_attributes({'attribute_value': group_attribute_value('customers')}) }}",
            "{{ record_build_inputs(customer_group_build_inputs()) }}",
            "{{ record_customer_fingerprints(customer_group_fingerprints()) }}",
            "{{ start_change_log('post') }}",
        ],
    )
}}
-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by update_current_attributes on incremental runs)
{%- set recompute_from_date = recompute_from(customer_group_build_inputs()) %}
{#-
    customers whose episodes or creation date changed since the last build (list_changed_customers): all
    their periods; every customer's without a recorded fingerprint
-#}
{%- set customers_listed = list_changed_customers(customer_group_fingerprints()) if recompute_from_date else false %}
{%- set changed_customers = 'select customer_id from ' ~ changed_customers_table() %}
{#-
    of those and the rest, the customers whose rows of the window can differ from the stored ones
    (list_regrouped_customers): the window for them alone; for every customer when a period begins
-#}
{%- set customers_regrouped = list_regrouped_customers(recompute_from_date) if customers_listed else false %}

with

periods as (

    select
        period_type,
        period_start_date,
        period_end_date,
        snapshot_date,
        segment_snapshot_date
    from {{ ref('int_periods_generated') }}
    where period_type in ('month', 'quarter', 'year')

),

customers as (

    select
        customer_id,
        {{ group_attribute_column() }} as attribute_value,
        {{ to_utc_date('created_at') }} as created_date
    from {{ ref('stg_sales__customers') }}

),

episodes as (

    select
        customer_id,
        episode_number,
        episode_started_date,
        covered_until_date
    from {{ ref('customer_episodes') }}

),

segments as (

    select
        customer_id,
        snapshot_date,
        rfm_segment,
        value_tier
    from {{ ref('customer_segments') }}
    {% if recompute_from_date -%}
    where snapshot_date >= (
            select min(segment_snapshot_date) from periods where period_end_date >= '{{ recompute_from_date }}'
        )
        or {% if customers_listed %}customer_id in ({{ changed_customers }}){% else %}true{% endif %}
    {%- endif %}

),

customer_starts as (

    select
        customers.customer_id,
        least(customers.created_date, min(episodes.episode_started_date)) as customer_start_date,
        min(episodes.episode_started_date) as first_active_date
    from customers
    left join episodes
        on customers.customer_id = episodes.customer_id
    group by customers.customer_id, customers.created_date

),

customer_periods as (

    select
        customer_starts.customer_id,
        customer_starts.first_active_date,
        periods.*
    from customer_starts
    inner join periods
        on customer_starts.customer_start_date <= periods.period_end_date
    {% if recompute_from_date -%}
    where periods.period_end_date >= '{{ recompute_from_date }}'
        {%- if customers_regrouped %}
        and customer_starts.customer_id in (select customer_id from {{ regrouped_customers_table() }})
        {%- endif %}

    union all

    -- (apart, not an "or": the window's few periods would otherwise be paired with every customer first)
    select
        customer_starts.customer_id,
        customer_starts.first_active_date,
        periods.*
    from customer_starts
    inner join periods
        on customer_starts.customer_start_date <= periods.period_end_date
    where periods.period_end_date < '{{ recompute_from_date }}'
        {%- if customers_listed %}
        and customer_starts.customer_id in ({{ changed_customers }})
        {%- endif %}
    {%- endif %}

),

activity_in_periods as (

    select
        customer_periods.customer_id,
        customer_periods.period_type,
        customer_periods.period_start_date,
        count(episodes.episode_number) > 0 as is_active_in_period
    from customer_periods
    left join episodes
        on customer_periods.customer_id = episodes.customer_id
            and customer_periods.snapshot_date >= episodes.episode_started_date
            and customer_periods.period_start_date < episodes.covered_until_date
    group by customer_periods.customer_id, customer_periods.period_type, customer_periods.period_start_date

),

final as (

    select
        -- keys
        customer_periods.customer_id::bigint as customer_id,
        customer_periods.period_type::text as period_type,
        customer_periods.period_start_date::date as period_start_date,

        -- period
        customer_periods.period_end_date::date as period_end_date,

        -- groups
        ({{ period_group_segment('segments', 'rfm_segment') }})::text as rfm_segment,
        ({{ period_group_segment('segments', 'value_tier') }})::text as value_tier,
        {{ group_attribute_value('customers', column='attribute_value') }}::text as attribute_value,

        -- flags
        activity_in_periods.is_active_in_period::boolean as is_active_in_period,
        coalesce(
            customer_periods.first_active_date between customer_periods.period_start_date
            and customer_periods.snapshot_date,
            false
        )::boolean as is_new_in_period

    from customer_periods
    inner join customers
        on customer_periods.customer_id = customers.customer_id
    inner join activity_in_periods
        on customer_periods.customer_id = activity_in_periods.customer_id
            and customer_periods.period_type = activity_in_periods.period_type
            and customer_periods.period_start_date = activity_in_periods.period_start_date
    left join segments
        on customer_periods.customer_id = segments.customer_id
            and customer_periods.segment_snapshot_date = segments.snapshot_date

)

select * from final
