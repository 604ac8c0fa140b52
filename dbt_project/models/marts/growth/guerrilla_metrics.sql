{#-
    The five guerrilla metrics per period and customer group: every value a group can take (the rule
    seed's segments, the value tiers, the customers' attribute values, plus unsegmented / unknown /
    unmatched, and any other value that occurs) in every period, with zeros where nothing happened, and
    the derived figures (cost, margins, cost-to-serve, promoter share). The sums per period and group come
    from int_guerrilla_groups_aggregated, which an incremental run updates only where its inputs changed;
    this table is rebuilt from it (a few thousand rows).
-#}
{#-
    A period mart: a build rewrites the open periods only (int_periods_open); closed ones stay as built,
    a --full-refresh too (full_refresh=false): `lens restate` recomputes them, on request and audited.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        full_refresh=false,
        unique_key=['period_type', 'period_start_date'],
        on_schema_change='fail',
    )
}}
-- depends_on: {{ ref('int_periods_open') }}  (read on incremental builds only)

with

periods as (

    select
        period_type,
        period_start_date,
        period_end_date,
        is_complete_period
    from {{ ref('int_periods_generated') }}
    where period_type in ('month', 'quarter', 'year')

),

groups_aggregated as (

    select *
    from {{ ref('int_guerrilla_groups_aggregated') }}

),

group_values as (

    {{ guerrilla_group_values() }}
    union
    select
        group_type,
        group_value
    from groups_aggregated

),

spine as (

    select
        periods.period_type,
        periods.period_start_date,
        periods.period_end_date,
        periods.is_complete_period,
        group_values.group_type,
        group_values.group_value
    from periods
    cross join group_values

),

filled as (

    select
        spine.*,
        coalesce(groups_aggregated.active_customers, 0) as active_customers,
        coalesce(groups_aggregated.new_customers, 0) as new_customers,
        coalesce(groups_aggregated.new_customer_revenue, 0) as new_customer_revenue,
        coalesce(groups_aggregated.reactivated_customers, 0) as reactivated_customers,
        coalesce(groups_aggregated.lost_customers, 0) as lost_customers,
        coalesce(groups_aggregated.lost_customer_value, 0) as lost_customer_value,
        coalesce(groups_aggregated.renewals, 0) as renewals,
        coalesce(groups_aggregated.renewal_value, 0) as renewal_value,
        coalesce(groups_aggregated.orders, 0) as orders,
        coalesce(groups_aggregated.revenue, 0) as revenue,
        case
            when {{ sales_costs_recorded() }} and coalesce(groups_aggregated.orders_with_unknown_cost, 0) = 0
                then coalesce(groups_aggregated.known_cost, 0)
        end as cost,
        coalesce(groups_aggregated.tickets, 0) as tickets,
        coalesce(groups_aggregated.complaints, 0) as complaints,
        coalesce(groups_aggregated.referrals, 0) as referrals,
        coalesce(groups_aggregated.nps_responses, 0) as nps_responses,
        coalesce(groups_aggregated.promoters, 0) as promoters
    from spine
    left join groups_aggregated
        on spine.period_type = groups_aggregated.period_type
            and spine.period_start_date = groups_aggregated.period_start_date
            and spine.group_type = groups_aggregated.group_type
            and spine.group_value = groups_aggregated.group_value

),

final as (

    select
        -- keys
        period_type::text as period_type,
        period_start_date::date as period_start_date,
        group_type::text as group_type,
        group_value::text as group_value,

        -- period
        period_end_date::date as period_end_date,
        is_complete_period::boolean as is_complete_period,

        -- customers
        active_customers::bigint as active_customers,
        new_customers::bigint as new_customers,
        new_customer_revenue::numeric(18, 6) as new_customer_revenue,
        reactivated_customers::bigint as reactivated_customers,
        lost_customers::bigint as lost_customers,
        lost_customer_value::numeric(18, 6) as lost_customer_value,

        -- renewals
        renewals::bigint as renewals,
        renewal_value::numeric(18, 6) as renewal_value,

        -- revenue and profitability (sales currency)
        orders::bigint as orders,
        revenue::numeric(18, 6) as revenue,
        cost::numeric(18, 6) as cost,
        (revenue - cost)::numeric(18, 6) as gross_margin,
        {{ ratio('revenue - cost', 'revenue', 100, 2) }}::numeric(9, 2) as gross_margin_pct,
        tickets::bigint as tickets,
        complaints::bigint as complaints,
        (tickets * {{ var('cost_per_ticket') }})::numeric(18, 6) as cost_to_serve,
        (revenue - cost - tickets * {{ var('cost_per_ticket') }})::numeric(18, 6) as net_margin,
        {{ ratio('revenue - cost - tickets * ' ~ var('cost_per_ticket'), 'revenue', 100, 2) }}::numeric(9, 2)
            as net_margin_pct,

        -- referrals and advocacy
        referrals::bigint as referrals,
        nps_responses::bigint as nps_responses,
        promoters::bigint as promoters,
        {{ ratio('promoters', 'nps_responses', 100, 2) }}::numeric(9, 2) as promoter_share_pct

    from filled

)

select * from final
{% if is_incremental() %}
where period_end_date >= (select rewrite_from_date from {{ ref('int_periods_open') }})
{% endif %}
