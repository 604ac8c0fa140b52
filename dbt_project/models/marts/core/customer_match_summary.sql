{#-
    How many records of each source entity were matched to a customer (or, for order lines, to an order)
    and how many were not, by reason (order lines: from the orders' line counts, see order_lines_matched).
    Every record of every matched entity is counted exactly once, so the counts of an entity add up to its
    staging row count (a test checks it). Each entity is counted by status on its own, before the union:
    a few rows to add up instead of millions to sort.
-#}
with

orders as not materialized (

    -- (read twice, by status and for the lines of known orders: scanned each time, not stored)
    select
        is_customer_matched,
        order_lines
    from {{ ref('orders') }}

),

order_lines as (

    select count(*) as order_lines
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

lines_of_known_orders as (

    select coalesce(sum(order_lines), 0) as order_lines
    from orders

),

order_lines_matched as (

    -- every order counts its lines (orders.order_lines), so the lines of known orders are their sum and
    -- the rest name an order the sales source has not sent: two aggregates instead of joining every line
    select
        lines_of_known_orders.order_lines as matched_lines,
        order_lines.order_lines - lines_of_known_orders.order_lines as unmatched_lines
    from order_lines
    cross join lines_of_known_orders

),

statuses_unioned as (

    select
        'sales' as source_name,
        'orders' as entity_name,
        case when is_customer_matched then 'matched' else 'unknown_customer_id' end as match_status,
        count(*) as records
    from orders
    group by is_customer_matched

    union all

    select
        'sales' as source_name,
        'order_lines' as entity_name,
        line_statuses.match_status,
        line_statuses.records
    from order_lines_matched
    cross join
        lateral (
            values
            ('matched', order_lines_matched.matched_lines),
            ('unknown_order_id', order_lines_matched.unmatched_lines)
        ) as line_statuses (match_status, records)
    where line_statuses.records > 0

    union all

    select
        'sales' as source_name,
        'contracts' as entity_name,
        case when is_customer_matched then 'matched' else 'unknown_customer_id' end as match_status,
        count(*) as records
    from contracts
    group by is_customer_matched

    union all

    select
        'service' as source_name,
        'tickets' as entity_name,
        match_status,
        count(*) as records
    from tickets
    group by match_status

    union all

    select
        'survey' as source_name,
        'responses' as entity_name,
        match_status,
        count(*) as records
    from responses
    group by match_status

),

aggregated as (

    select
        source_name,
        entity_name,
        match_status,
        sum(records) as records
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
