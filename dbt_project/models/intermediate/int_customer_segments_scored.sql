{#-
    Recency, frequency and monetary value of every customer at every snapshot date from their first
    purchase on, with quintile-style scores 1-5 and the trailing revenue and gross margin the value tier
    is decided on.

    Score rule (deterministic, tie-aware): score = 1 + floor(5 x share of the snapshot's customers with a
    strictly worse value). The worst value always scores 1, customers with equal values share a score,
    and a score needs at least 20%, 40%, 60%, 80% of customers strictly behind it for 2, 3, 4, 5.
    Worse = longer since the last purchase (R), fewer orders (F), less revenue (M).

    Incremental by closed periods (int_periods_open): an incremental build recomputes the snapshots of the
    open periods, and of a closed period without a snapshot at its end (macros/closed_periods.sql),
    replacing the stored rows of those periods, the previous as-of date's running snapshot included; closed snapshots stay as built, a --full-refresh
    too (full_refresh=false), like the customer_segments snapshots made from them. It sums each
    recomputed snapshot directly, without the running windows of a full build (which would walk every
    customer through every period of the trailing window to use only the last): each customer's opening
    balance (all purchases before the trailing window of the first recomputed snapshot) plus the purchase
    days since, up to the snapshot date; the trailing sums take the days from the snapshot's window start.
    The open snapshots equal a full computation (tests/dbt/test_dbt_incremental.py).
-#}
{#- how far back the trailing window reaches from a snapshot period's start (one period less than it) -#}
{%- set window_months = var('value_window_months') | int -%}
{%- set trailing_window_offset = {
    'week': window_months ~ ' months -7 days',
    'month': (window_months - 1) ~ ' months',
    'quarter': (window_months - 3) ~ ' months',
}[snapshot_grain() | trim] -%}

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        full_refresh=false,
        unique_key=snapshot_period_key() | trim,
        incremental_predicates=[open_periods_predicate() | trim],
        meta={'open_periods_column': 'snapshot_date'},
        on_schema_change='fail',
        indexes=[{'columns': ['snapshot_date']}],
        post_hook=["analyze {{ this }}"],
    )
}}
-- depends_on: {{ ref('int_periods_open') }}  (read on incremental builds only)
{%- set trailing = 'contributions.purchase_date >= recomputed_snapshots.trailing_start_date' %}
{%- set incremental = is_incremental() %}
{#- the first period the trailing window of the first rewritten snapshot reaches -#}
{%- set window_start = "((select min(period_start_date) from rewritten_periods) - interval '"
    ~ trailing_window_offset ~ "')::date" %}

with

{% if incremental -%}
rewritten_periods as (

    {{ rewritten_snapshot_periods() }}

),

{% endif -%}
snapshots as (

    select
        period_start_date,
        snapshot_date
    from {{ ref('int_periods_generated') }}
    where is_snapshot_period{% if incremental %}
        and period_start_date >= {{ window_start }}{% endif %}

),

{% if incremental -%}
recomputed_snapshots as (

    -- each recomputed snapshot with the first day of its trailing window: the start of the earliest
    -- snapshot period less than the window before its own
    select
        recomputed.snapshot_date,
        min(snapshots.period_start_date) as trailing_start_date
    from snapshots as recomputed
    inner join snapshots
        on snapshots.period_start_date
            >= recomputed.period_start_date - interval '{{ trailing_window_offset }}'
    where recomputed.snapshot_date in (select rewritten_periods.snapshot_date from rewritten_periods)
    group by recomputed.snapshot_date

),

{% endif -%}
purchase_days as (

    select
        customer_id,
        purchase_date,
        orders,
        revenue,
        cost
    from {{ ref('int_customer_purchase_days_aggregated') }}
    {% if incremental -%}
    where purchase_date >= {{ window_start }}
    {%- endif %}

),

{% if incremental -%}
opening_balances as (

    -- lifetime values before the trailing window of the first recomputed snapshot
    select
        customer_id,
        min(purchase_date) as first_purchase_date,
        max(purchase_date) as last_purchase_date,
        sum(orders) as orders,
        sum(revenue) as revenue
    from {{ ref('int_customer_purchase_days_aggregated') }}
    where purchase_date < {{ window_start }}
    group by customer_id

),

contributions as (

    -- per customer: the opening balance (lifetime only) and each purchase day since
    select
        customer_id,
        first_purchase_date,
        last_purchase_date,
        orders,
        revenue,
        null::date as purchase_date,
        null::numeric as cost,
        0 as is_unknown_cost
    from opening_balances

    union all

    select
        customer_id,
        purchase_date,
        purchase_date,
        orders,
        revenue,
        purchase_date,
        cost,
        case when cost is null then 1 else 0 end
    from purchase_days

),

cumulated as (

    select
        contributions.customer_id,
        recomputed_snapshots.snapshot_date,

        -- lifetime to the snapshot date
        min(contributions.first_purchase_date) as first_purchase_date,
        max(contributions.last_purchase_date) as last_purchase_date,
        sum(contributions.orders) as frequency_orders,
        sum(contributions.revenue) as monetary_revenue,

        -- trailing window (var value_window_months) ending at the snapshot date
        coalesce(sum(contributions.revenue) filter (where {{ trailing }}), 0) as trailing_revenue,
        coalesce(sum(contributions.cost) filter (where {{ trailing }}), 0) as trailing_known_cost,
        coalesce(sum(contributions.is_unknown_cost) filter (where {{ trailing }}), 0)
            as trailing_days_with_unknown_cost

    from contributions
    inner join recomputed_snapshots
        on contributions.first_purchase_date <= recomputed_snapshots.snapshot_date
    group by contributions.customer_id, recomputed_snapshots.snapshot_date

),
{%- else -%}
purchases_aggregated_to_snapshots as (

    select
        purchase_days.customer_id,
        snapshots.period_start_date,
        count(*) as purchase_days,
        sum(purchase_days.orders) as orders,
        sum(purchase_days.revenue) as revenue,
        sum(purchase_days.cost) as known_cost,
        count(*) filter (where purchase_days.cost is null) as days_with_unknown_cost,
        min(purchase_days.purchase_date) as first_purchase_date,
        max(purchase_days.purchase_date) as last_purchase_date
    from purchase_days
    inner join snapshots
        on purchase_days.purchase_date between snapshots.period_start_date and snapshots.snapshot_date
    group by purchase_days.customer_id, snapshots.period_start_date

),

customer_first_periods as (

    select
        customer_id,
        min(period_start_date) as first_period_start_date
    from purchases_aggregated_to_snapshots
    group by customer_id

),

customer_snapshots as (

    select
        customer_first_periods.customer_id,
        snapshots.period_start_date,
        snapshots.snapshot_date
    from customer_first_periods
    inner join snapshots
        on customer_first_periods.first_period_start_date <= snapshots.period_start_date

),

cumulated as (

    select
        customer_snapshots.customer_id,
        customer_snapshots.snapshot_date,

        -- lifetime to the snapshot date
        min(purchases.first_purchase_date) over lifetime_window as first_purchase_date,
        max(purchases.last_purchase_date) over lifetime_window as last_purchase_date,
        sum(coalesce(purchases.orders, 0)) over lifetime_window as frequency_orders,
        sum(coalesce(purchases.revenue, 0)) over lifetime_window as monetary_revenue,

        -- trailing window (var value_window_months) ending at the snapshot date
        sum(coalesce(purchases.revenue, 0)) over trailing_window as trailing_revenue,
        sum(coalesce(purchases.known_cost, 0)) over trailing_window as trailing_known_cost,
        sum(coalesce(purchases.days_with_unknown_cost, 0)) over trailing_window as trailing_days_with_unknown_cost

    from customer_snapshots
    left join purchases_aggregated_to_snapshots as purchases
        on customer_snapshots.customer_id = purchases.customer_id
            and customer_snapshots.period_start_date = purchases.period_start_date
    window
        lifetime_window as (
            partition by customer_snapshots.customer_id
            order by customer_snapshots.period_start_date
            rows between unbounded preceding and current row
        ),
        trailing_window as (
            partition by customer_snapshots.customer_id
            order by customer_snapshots.period_start_date
            -- the window's snapshot periods: this one and those starting less than the window before it
            range between interval '{{ trailing_window_offset }}' preceding and current row
        )

),
{%- endif %}

measured as (

    select
        customer_id,
        snapshot_date,
        first_purchase_date,
        last_purchase_date,
        snapshot_date - last_purchase_date as recency_days,
        frequency_orders,
        monetary_revenue,
        trailing_revenue,
        case
            when {{ sales_costs_recorded() }} and trailing_days_with_unknown_cost = 0
                then trailing_revenue - trailing_known_cost
        end as trailing_gross_margin
    from cumulated

),

ranked as (

    -- rank() - 1 = the number of customers with a strictly worse value (peers share a rank)
    select
        *,
        rank() over (partition by snapshot_date order by recency_days desc) - 1 as customers_less_recent,
        rank() over (partition by snapshot_date order by frequency_orders asc) - 1 as customers_less_frequent,
        rank() over (partition by snapshot_date order by monetary_revenue asc) - 1 as customers_spending_less,
        count(*) over (partition by snapshot_date) as snapshot_customers
    from measured

),

scored as (

    select
        -- keys
        customer_id,
        snapshot_date,

        -- recency, frequency, monetary (lifetime up to the snapshot date)
        first_purchase_date,
        last_purchase_date,
        recency_days,
        frequency_orders,
        monetary_revenue,

        -- scores: integer division = floor
        1 + (5 * customers_less_recent) / snapshot_customers as r_score,
        1 + (5 * customers_less_frequent) / snapshot_customers as f_score,
        1 + (5 * customers_spending_less) / snapshot_customers as m_score,

        -- trailing window (value tiers)
        trailing_revenue,
        trailing_gross_margin

    from ranked

)

select * from scored
