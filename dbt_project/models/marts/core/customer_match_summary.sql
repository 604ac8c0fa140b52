{#-
    How many records of each source entity were matched to a customer (or, for order lines, to an order)
    and how many were not, by reason. Every record of every matched entity is counted exactly once, so
    the counts of an entity add up to its staging row count (a test checks it).
-#}
with

orders as (

    select
        order_id,
        is_customer_matched
    from {{ ref('orders') }}

),

order_lines as (

    select order_id
    from {{ ref('order_lines') }}

),

contracts as (

    select is_customer_matched
    from {{ ref('int_contracts_matched') }}

),

tickets as (

    select match_status
    from {{ ref('int_tickets_matched') }}

),

responses as (

    select match_status
    from {{ ref('int_survey_responses_matched') }}

),

statuses_unioned as (

    select
        'sales' as source_name,
        'orders' as entity_name,
        case when is_customer_matched then 'matched' else 'unknown_customer_id' end as match_status
    from orders

    union all

    select
        'sales' as source_name,
        'order_lines' as entity_name,
        case when orders.order_id is null then 'unknown_order_id' else 'matched' end as match_status
    from order_lines
    left join orders
        on order_lines.order_id = orders.order_id

    union all

    select
        'sales' as source_name,
        'contracts' as entity_name,
        case when is_customer_matched then 'matched' else 'unknown_customer_id' end as match_status
    from contracts

    union all

    select
        'service' as source_name,
        'tickets' as entity_name,
        match_status
    from tickets

    union all

    select
        'survey' as source_name,
        'responses' as entity_name,
        match_status
    from responses

),

aggregated as (

    select
        source_name,
        entity_name,
        match_status,
        count(*) as records
    from statuses_unioned
    group by source_name, entity_name, match_status

),

final as (

    select
        -- keys
        source_name::text as source_name,
        entity_name::text as entity_name,
        match_status::text as match_status,

        -- counts
        records::bigint as records,
        sum(records) over (partition by source_name, entity_name)::bigint as entity_records,
        {{ ratio('records', 'sum(records) over (partition by source_name, entity_name)', 100, 2) }}::numeric(9, 2)
            as share_of_entity_pct,
        (match_status = 'matched')::boolean as is_matched

    from aggregated

)

select * from final
