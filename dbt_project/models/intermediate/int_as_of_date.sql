{#-
    The reporting date of the build: var('as_of_date') when set, otherwise the last day that every raw
    entity has loaded in full — the end of its newest loaded batch interval, minus a day, taking the
    least advanced entity (a source that lags holds the others back, so no mart mixes a complete day of
    sales with half a day of tickets).

    A table, not a view: a single row that every mart reads (often several times per query); as a view each
    reference re-scans the load batches and PostgreSQL plans it blind.
-#}
{{ config(materialized='table', post_hook='analyze {{ this }}') }}

with

sales_batches as (

    select
        source_name,
        entity_name,
        batch_status,
        interval_end_at
    from {{ ref('stg_sales__load_batches') }}

),

service_batches as (

    select
        source_name,
        entity_name,
        batch_status,
        interval_end_at
    from {{ ref('stg_service__load_batches') }}

),

survey_batches as (

    select
        source_name,
        entity_name,
        batch_status,
        interval_end_at
    from {{ ref('stg_survey__load_batches') }}

),

batches_unioned as (

    select * from sales_batches
    union all
    select * from service_batches
    union all
    select * from survey_batches

),

entities_loaded_until as (

    select
        source_name,
        entity_name,
        max(interval_end_at) as loaded_until_at
    from batches_unioned
    where batch_status = 'loaded'
    group by source_name, entity_name

),

completeness_summarized as (

    select
        min(loaded_until_at) as loaded_until_at,
        count(*) as loaded_entities
    from entities_loaded_until

),

resolved as (

    select
        {% if var('as_of_date') -%}
        '{{ var("as_of_date") }}'::date as as_of_date,
        'var'::text as as_of_basis,
        {%- else -%}
        coalesce(
            {{ to_utc_date('loaded_until_at') }} - 1,
            {{ to_utc_date('now()') }} - 1
        ) as as_of_date,
        case when loaded_until_at is null then 'clock' else 'loaded_batches' end::text as as_of_basis,
        {%- endif %}
        loaded_until_at,
        loaded_entities
    from completeness_summarized

)

select * from resolved
