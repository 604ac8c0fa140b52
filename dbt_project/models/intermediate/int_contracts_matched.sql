{#- Contract terms with whether their customer is known, and the renewal they led to (if any). -#}
with

contracts as (

    select
        contract_id,
        customer_id,
        renewed_from_contract_id,
        contract_plan,
        contract_status,
        renewal_reason,
        cancellation_reason,
        start_date,
        end_date,
        annual_value,
        signed_at
    from {{ ref('stg_sales__contracts') }}

),

customers as (

    select customer_id
    from {{ ref('stg_sales__customers') }}

),

renewals as (

    select
        renewed_from_contract_id,
        min(contract_id) as renewal_contract_id
    from contracts
    where renewed_from_contract_id is not null
    group by renewed_from_contract_id

),

matched as (

    select
        contracts.*,
        {{ to_utc_date('contracts.signed_at') }} as signed_date,
        contracts.renewed_from_contract_id is not null as is_renewal,
        renewals.renewal_contract_id,
        renewals.renewal_contract_id is not null as was_renewed,
        customers.customer_id is not null as is_customer_matched
    from contracts
    left join customers
        on contracts.customer_id = customers.customer_id
    left join renewals
        on contracts.contract_id = renewals.renewed_from_contract_id

)

select * from matched
