-- Nothing is dropped silently: for each matched entity, matched + unmatched records must equal the rows of
-- its staging model (orders, contracts, survey responses) or fact (order lines, tickets), and the
-- unmatched ones must be exactly those listed in unmatched_source_records.
with

summary as (

    select
        source_name,
        entity_name,
        sum(records) as records,
        sum(records) filter (where not is_matched) as unmatched_records
    from {{ ref('customer_match_summary') }}
    group by source_name, entity_name

),

listed as (

    select
        source_name,
        entity_name,
        count(*) as unmatched_records
    from {{ ref('unmatched_source_records') }}
    group by source_name, entity_name

),

expected as (

    select
        'sales' as source_name,
        'orders' as entity_name,
        count(*) as records
    from {{ ref('stg_sales__orders') }}

    union all

    select
        'sales' as source_name,
        'order_lines' as entity_name,
        count(*) as records
    from {{ ref('order_lines') }}

    union all

    select
        'sales' as source_name,
        'contracts' as entity_name,
        count(*) as records
    from {{ ref('stg_sales__contracts') }}

    union all

    select
        'service' as source_name,
        'tickets' as entity_name,
        count(*) as records
    from {{ ref('tickets') }}

    union all

    select
        'survey' as source_name,
        'responses' as entity_name,
        count(*) as records
    from {{ ref('stg_survey__responses') }}

)

select
    expected.source_name,
    expected.entity_name,
    expected.records as expected_records,
    summary.records as summarised_records,
    summary.unmatched_records,
    listed.unmatched_records as listed_unmatched_records
from expected
left join summary
    on expected.source_name = summary.source_name
        and expected.entity_name = summary.entity_name
left join listed
    on expected.source_name = listed.source_name
        and expected.entity_name = listed.entity_name
-- (an entity without records, e.g. a source that is not configured, has no summary row)
where coalesce(summary.records, 0) != expected.records
    or coalesce(summary.unmatched_records, 0) != coalesce(listed.unmatched_records, 0)
