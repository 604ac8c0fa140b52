{#-
    Applies the two segmentations to the scored snapshots:
    - rfm_segment: the first rule of seed rfm_segment_rules (by priority) whose score ranges contain the
      customer's R, F and M scores; the rules cover all 125 score combinations (a test checks it).
    - value_tier, from the trailing window's revenue and gross margin, in this order:
        inactive      no revenue in the trailing window
        (null)        gross margin unknown (a source lacks costs)
        power_player  ranked by gross margin, the customers that together carry the first
                      var('power_player_margin_share') of all positive gross margin
        low_margin    among the customers carrying the first var('low_margin_revenue_share') of revenue,
                      gross margin below var('low_margin_pct') of revenue: big but barely profitable
        core          the next customers by gross margin, up to var('core_margin_share')
        long_tail     everyone else
      "Carry the first x%" counts the customers ranked above: a customer is a power player when the
      customers ranked above them carry less than x% of the margin (so the one who crosses x% is included).

    A snapshot mart with closed periods, like int_customer_segments_scored: a build rewrites the snapshots
    of the open periods only (int_periods_open); closed ones stay as built, a --full-refresh too
    (full_refresh=false): what arrives later for them is counted in restatements_pending until `lens
    restate` recomputes them. Post-hooks bring the attributes of the older snapshots up to date for the
    customers whose attributes changed (they are current values); a pre-hook clears is_latest_snapshot
    on the stored latest snapshot, which a closed period may keep.
-#}
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
        pre_hook=[
            "{% if is_incremental() %}
            update {{ this }} set is_latest_snapshot = false
            where snapshot_date = (select max(snapshot_date) from {{ this }}) and is_latest_snapshot
            {% endif %}",
        ],
        post_hook=[
            "{{ update_current_attributes({
                'country_code': 'customers.country_code',
                'region': 'customers.region',
                'industry': 'customers.industry',
                'company_size': 'customers.company_size',
            }) }}",
        ],
    )
}}
-- depends_on: {{ ref('stg_sales__load_batches') }}  (read by update_current_attributes on incremental runs)
-- depends_on: {{ ref('int_periods_open') }} {{ ref('int_periods_generated') }}  (read on incremental builds only)

with

{% if is_incremental() -%}
rewritten_periods as (

    {{ rewritten_snapshot_periods() }}

),

{% endif -%}
scored as (

    select
        customer_id,
        snapshot_date,
        first_purchase_date,
        last_purchase_date,
        recency_days,
        frequency_orders,
        monetary_revenue,
        trailing_revenue,
        trailing_gross_margin,
        r_score,
        f_score,
        m_score
    from {{ ref('int_customer_segments_scored') }}
    {% if is_incremental() -%}
    where snapshot_date in (select rewritten_periods.snapshot_date from rewritten_periods)
    {%- endif %}

),

segment_rules as (

    select
        priority,
        rfm_segment,
        segment_label,
        r_score_min,
        r_score_max,
        f_score_min,
        f_score_max,
        m_score_min,
        m_score_max
    from {{ ref('rfm_segment_rules') }}

),

customers as (

    select
        customer_id,
        country_code,
        region,
        industry,
        company_size
    from {{ ref('stg_sales__customers') }}

),

as_of as (

    select as_of_date
    from {{ ref('int_as_of_date') }}

),

segments_matched as (

    -- the first rule (by priority) whose ranges contain the scores: evaluated per row over the few rules
    select
        scored.*,
        first_matching_rule.rfm_segment,
        first_matching_rule.segment_label as rfm_segment_label,
        scored.trailing_revenue > 0 and scored.trailing_gross_margin is not null as is_tier_ranked
    from scored
    left join lateral (
        select
            segment_rules.rfm_segment,
            segment_rules.segment_label
        from segment_rules
        where scored.r_score between segment_rules.r_score_min and segment_rules.r_score_max
            and scored.f_score between segment_rules.f_score_min and segment_rules.f_score_max
            and scored.m_score between segment_rules.m_score_min and segment_rules.m_score_max
        order by segment_rules.priority asc
        limit 1
    ) as first_matching_rule on true

),

value_ranked as (

    -- shares of the snapshot's totals carried by the customers ranked strictly above each customer, among
    -- the customers with trailing revenue and a known margin (the others get no tier rank)
    select
        *,
        coalesce(
            sum(greatest(trailing_gross_margin, 0)) over (
                partition by snapshot_date, is_tier_ranked
                order by trailing_gross_margin desc, customer_id asc
                rows between unbounded preceding and 1 preceding
            ),
            0
        ) / nullif(sum(greatest(trailing_gross_margin, 0)) over (partition by snapshot_date, is_tier_ranked), 0)
            as margin_share_above,
        coalesce(
            sum(trailing_revenue) over (
                partition by snapshot_date, is_tier_ranked
                order by trailing_revenue desc, customer_id asc
                rows between unbounded preceding and 1 preceding
            ),
            0
        ) / nullif(sum(trailing_revenue) over (partition by snapshot_date, is_tier_ranked), 0)
            as revenue_share_above
    from segments_matched

),

tiers_assigned as (

    select
        *,
        case
            when trailing_revenue <= 0 then 'inactive'
            when trailing_gross_margin is null then null
            when trailing_gross_margin > 0
                and margin_share_above < {{ var('power_player_margin_share') }}
                then 'power_player'
            when revenue_share_above < {{ var('low_margin_revenue_share') }}
                and trailing_gross_margin < {{ var('low_margin_pct') }} * trailing_revenue
                then 'low_margin'
            when trailing_gross_margin > 0
                and margin_share_above < {{ var('core_margin_share') }}
                then 'core'
            else 'long_tail'
        end as value_tier
    from value_ranked

),

final as (

    select
        -- keys
        tiers_assigned.customer_id::bigint as customer_id,
        tiers_assigned.snapshot_date::date as snapshot_date,
        (tiers_assigned.snapshot_date = as_of.as_of_date)::boolean as is_latest_snapshot,

        -- customer attributes (current values)
        customers.country_code::text as country_code,
        customers.region::text as region,
        customers.industry::text as industry,
        customers.company_size::text as company_size,

        -- recency, frequency, monetary (lifetime up to the snapshot date)
        tiers_assigned.first_purchase_date::date as first_purchase_date,
        tiers_assigned.last_purchase_date::date as last_purchase_date,
        tiers_assigned.recency_days::integer as recency_days,
        tiers_assigned.frequency_orders::bigint as frequency_orders,
        tiers_assigned.monetary_revenue::numeric(18, 6) as monetary_revenue,

        -- scores and RFM segment
        tiers_assigned.r_score::integer as r_score,
        tiers_assigned.f_score::integer as f_score,
        tiers_assigned.m_score::integer as m_score,
        (tiers_assigned.r_score::text || tiers_assigned.f_score::text || tiers_assigned.m_score::text)::text
            as rfm_score,
        tiers_assigned.rfm_segment::text as rfm_segment,
        tiers_assigned.rfm_segment_label::text as rfm_segment_label,

        -- value (trailing window) and value tier
        tiers_assigned.trailing_revenue::numeric(18, 6) as trailing_revenue,
        tiers_assigned.trailing_gross_margin::numeric(18, 6) as trailing_gross_margin,
        {{ ratio('tiers_assigned.trailing_gross_margin', 'tiers_assigned.trailing_revenue', 100, 2) }}::numeric(9, 2)
            as trailing_gross_margin_pct,
        (case when tiers_assigned.is_tier_ranked then round(tiers_assigned.margin_share_above, 6) end)::numeric(9, 6)
            as margin_share_above,
        (case when tiers_assigned.is_tier_ranked then round(tiers_assigned.revenue_share_above, 6) end)::numeric(9, 6)
            as revenue_share_above,
        tiers_assigned.value_tier::text as value_tier

    from tiers_assigned
    cross join as_of
    left join customers
        on tiers_assigned.customer_id = customers.customer_id

)

select * from final
