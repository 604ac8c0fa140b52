{#-
    Contract renewals by stated reason, per period and customer group (the third guerrilla metric in
    detail). A renewal counts in the period it was signed; its reason is the renewing contract's
    renewal_reason ('not_stated' when the contract has none).
-#}
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

renewals as (

    select
        contract_id,
        customer_id,
        signed_date,
        annual_value,
        coalesce(renewal_reason, 'not_stated') as renewal_reason
    from {{ ref('int_contracts_matched') }}
    where is_renewal
        and is_customer_matched
        and signed_date <= {{ as_of_date() }}

),

group_types as (

    select group_type
    from unnest(array['all', 'segment', 'value_tier', '{{ group_attribute_column() }}']) as group_types (group_type)

),

renewals_in_periods as (

    select
        renewals.*,
        periods.period_type,
        periods.period_start_date,
        periods.period_end_date,
        periods.is_complete_period
    from renewals
    inner join periods
        on renewals.signed_date between periods.period_start_date and periods.period_end_date

),

renewals_grouped as (

    -- a renewal's groups, looked up by the membership key (macro membership_lookup)
    select
        renewals_in_periods.*,
        memberships.rfm_segment,
        memberships.value_tier,
        memberships.attribute_value
    from renewals_in_periods
    {{ membership_lookup(
        'renewals_in_periods.customer_id', 'renewals_in_periods.period_type',
        'renewals_in_periods.period_start_date', ['rfm_segment', 'value_tier', 'attribute_value']
    ) }}

),

renewals_in_groups as (

    select
        renewals_grouped.*,
        group_types.group_type,
        case group_types.group_type
            when 'all' then 'all'
            when 'segment' then coalesce(renewals_grouped.rfm_segment, 'unsegmented')
            when 'value_tier' then coalesce(renewals_grouped.value_tier, 'unsegmented')
            else coalesce(renewals_grouped.attribute_value, 'unknown')
        end as group_value
    from renewals_grouped
    cross join group_types

),

aggregated as (

    select
        -- keys
        period_type::text as period_type,
        period_start_date::date as period_start_date,
        group_type::text as group_type,
        group_value::text as group_value,
        renewal_reason::text as renewal_reason,

        -- period
        period_end_date::date as period_end_date,
        is_complete_period::boolean as is_complete_period,

        -- renewals
        count(*)::bigint as renewals,
        sum(annual_value)::numeric(18, 6) as renewal_value

    from renewals_in_groups
    group by 1, 2, 3, 4, 5, 6, 7

)

select * from aggregated
