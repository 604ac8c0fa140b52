-- depends_on: {{ ref('stg_survey__load_batches') }}  (read by the post-hook record_tested_keys: built first)
with

source as (

    select
        response_id,
        {{ optional_column(source('survey', 'responses'), 'customer_ref', 'text') }},
        {{ optional_column(source('survey', 'responses'), 'order_id', 'bigint') }},
        {{ source_column(source('survey', 'responses'), 'submitted_at', 'timestamptz') }},
        {{ source_column(source('survey', 'responses'), 'kind', 'text') }},
        {{ optional_column(source('survey', 'responses'), 'nps_score', 'integer') }},
        {{ optional_column(source('survey', 'responses'), 'csat_score', 'integer') }},
        {{ optional_column(source('survey', 'responses'), 'reason', 'text') }},
        {{ optional_column(source('survey', 'responses'), 'would_refer', 'text') }},
        {{ optional_column(source('survey', 'responses'), 'comment', 'text') }},
        {{ optional_column(source('survey', 'responses'), 'language', 'text') }},
        _loaded_at
    from {{ source('survey', 'responses') }}

),

latest_versions as (

    -- the newest version of each record; distinct on (not a ranking window) lets the planner estimate
    -- the row count from the key's statistics, which keeps downstream join plans sane
    select distinct on (response_id) *
    from source
    order by response_id asc, submitted_at desc, _loaded_at desc

),

renamed as (

    select
        -- ids
        trim(response_id) as response_id,
        nullif(trim(customer_ref), '') as customer_ref,
        order_id as rated_order_id,

        -- attributes
        nullif(lower(trim(kind)), '') as response_kind,
        nullif(lower(trim(reason)), '') as stated_reason,
        nullif(lower(trim(would_refer)), '') as would_refer,
        nullif(trim(comment), '') as response_comment,
        nullif(lower(trim(language)), '') as language_code,

        -- scores
        nps_score,
        csat_score,

        -- timestamps (UTC)
        submitted_at,
        _loaded_at as loaded_at

    from latest_versions

)

select * from renamed
