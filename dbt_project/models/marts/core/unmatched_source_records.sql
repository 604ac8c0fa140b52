{#-
    Every source record that matches no customer (or, for order lines, no order) — kept visible instead of
    silently dropped, with the reference that failed and why. The marts count these records under the
    group 'unmatched' where a group is needed; customer_match_summary counts them per source and reason.
    Order lines without a known order are looked for only when there are any: every order counts its lines
    (orders.order_lines), so there are some exactly when order_lines holds more lines than the orders count
    (the same identity as customer_match_summary's); a daily build then skips joining every line.
-#}
with

orders as not materialized (

    -- (read three times; likewise)
    select
        order_id,
        customer_id,
        ordered_at,
        order_value,
        order_lines,
        is_customer_matched
    from {{ ref('orders') }}

),

order_lines as not materialized (

    -- (read twice: counted, and joined when there are lines without a known order)
    select
        order_line_id,
        order_id,
        line_revenue,
        created_at
    from {{ ref('order_lines') }}

),

lines_without_known_order_found as (

    select
        (select count(*) from order_lines) > (select coalesce(sum(order_lines), 0) from orders)
            as has_lines_without_known_order

),

contracts as (

    select
        contract_id,
        customer_id,
        signed_at,
        annual_value,
        is_customer_matched
    from {{ ref('int_contracts_matched') }}

),

tickets as (

    select
        ticket_id,
        coalesce(requester_email, requester_customer_id::text) as requester_ref,
        created_at,
        match_status
    from {{ ref('int_tickets_matched') }}

),

responses as (

    select
        response_id,
        coalesce(customer_ref, rated_order_id::text) as customer_ref,
        submitted_at,
        match_status
    from {{ ref('int_survey_responses_matched') }}

),

unmatched_unioned as (

    select
        'sales' as source_name,
        'orders' as entity_name,
        order_id::text as record_id,
        customer_id::text as reference_value,
        'unknown_customer_id' as unmatched_reason,
        ordered_at as occurred_at,
        order_value as amount
    from orders
    where not is_customer_matched

    union all

    select
        'sales' as source_name,
        'order_lines' as entity_name,
        order_lines.order_line_id::text as record_id,
        order_lines.order_id::text as reference_value,
        'unknown_order_id' as unmatched_reason,
        order_lines.created_at as occurred_at,
        order_lines.line_revenue as amount
    from order_lines
    left join orders
        on order_lines.order_id = orders.order_id
    where orders.order_id is null
        -- (a condition on no row: evaluated once, and when false the join is not run)
        and (select has_lines_without_known_order from lines_without_known_order_found)

    union all

    select
        'sales' as source_name,
        'contracts' as entity_name,
        contract_id::text as record_id,
        customer_id::text as reference_value,
        'unknown_customer_id' as unmatched_reason,
        signed_at as occurred_at,
        annual_value as amount
    from contracts
    where not is_customer_matched

    union all

    select
        'service' as source_name,
        'tickets' as entity_name,
        ticket_id::text as record_id,
        requester_ref as reference_value,
        match_status as unmatched_reason,
        created_at as occurred_at,
        null::numeric as amount
    from tickets
    where match_status != 'matched'

    union all

    select
        'survey' as source_name,
        'responses' as entity_name,
        response_id as record_id,
        customer_ref as reference_value,
        match_status as unmatched_reason,
        submitted_at as occurred_at,
        null::numeric as amount
    from responses
    where match_status != 'matched'

),

final as (

    select
        -- keys
        source_name::text as source_name,
        entity_name::text as entity_name,
        record_id::text as record_id,

        -- why it matches nothing
        reference_value::text as reference_value,
        unmatched_reason::text as unmatched_reason,

        -- when and how much
        occurred_at::timestamptz as occurred_at,
        {{ to_utc_date('occurred_at') }}::date as occurred_date,
        amount::numeric(18, 6) as amount

    from unmatched_unioned

)

select * from final
