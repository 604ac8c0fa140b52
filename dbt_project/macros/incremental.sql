{#-
    Where an incremental fact resumes reading, as a timestamptz literal read once when the model compiles
    (so PostgreSQL plans the "loaded since" filter with a known bound: the block-range index on the raw
    table, index lookups for the rows already merged).

    W = the newest `loaded_at` the model holds (a row's load transaction start). A batch that was still
    running when the newest merged batch started may have committed after the last merge, with older
    `loaded_at` values: so the bound is the earliest start among the loaded batches of this entity that
    finished at or after W (no row of a batch has a `loaded_at` before its start), minus
    var('incremental_lookback_hours') as an extra margin. Wall-clock lookbacks alone re-read everything
    after a bulk initial load; this re-reads only the batches that overlap the newest merged one.
-#}
{% macro incremental_watermark(batches_relation, entity_name, column='loaded_at') -%}
    {%- set lookback = var('incremental_lookback_hours') | int -%}
    {%- if execute -%}
        {%- set query -%}
            with merged as (
                select max({{ column }}) as newest_loaded_at
                from {{ this }}
            ),

            overlapping_batches as (
                select min(batches.started_at) as earliest_started_at
                from {{ batches_relation }} as batches
                cross join merged
                where batches.entity_name = '{{ entity_name }}'
                    and batches.batch_status = 'loaded'
                    and batches.finished_at >= merged.newest_loaded_at
            )

            select (
                coalesce(
                    least(merged.newest_loaded_at, overlapping_batches.earliest_started_at),
                    '-infinity'::timestamptz
                ) - interval '{{ lookback }} hours'
            )::text
            from merged
            cross join overlapping_batches
        {%- endset -%}
        '{{ run_query(query).columns[0].values()[0] }}'::timestamptz
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}

{#-
    Where a model that rebuilds the records touched by new raw loads (orders) resumes reading, as a
    timestamptz literal read once when the model compiles; '-infinity' (read everything) on a full build
    or without a ledger entry.

    A raw row that the model's last build did not see was loaded after that build's dbt invocation
    started (the ledger key 'loaded_through', see record_loaded_through), or by a batch of `entities` that
    was still running then: the bound is the earlier of that start and the earliest start among those
    batches (no row of a batch has a `loaded_at` before its start), minus var('incremental_lookback_hours').
    The invocation's start, not the model's: the facts the model reads (order_lines) were merged after it.
-#}
{% macro loaded_since(batches_relation, entities) -%}
    {%- set lookback = var('incremental_lookback_hours') | int -%}
    {%- if execute and this is not none and is_incremental()
        and adapter.get_relation(this.database, target.schema, '_lens_build_inputs') is not none -%}
        {%- set query -%}
            with

            recorded as (
                select fingerprint::timestamptz as loaded_through
                from {{ target.schema }}._lens_build_inputs
                where model_name = '{{ this.identifier }}'
                    and input_key = 'loaded_through'
            ),

            overlapping_batches as (
                select min(batches.started_at) as earliest_started_at
                from {{ batches_relation }} as batches
                cross join recorded
                where batches.entity_name in ('{{ entities | join("', '") }}')
                    and batches.batch_status = 'loaded'
                    and batches.finished_at >= recorded.loaded_through
            )

            select (
                coalesce(
                    least(recorded.loaded_through, overlapping_batches.earliest_started_at),
                    '-infinity'::timestamptz
                ) - interval '{{ lookback }} hours'
            )::text
            from (select 1) as one_row
            left join recorded on true
            cross join overlapping_batches
        {%- endset -%}
        '{{ run_query(query).columns[0].values()[0] }}'::timestamptz
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}

{#-
    post-hook of a model using loaded_since: record the start of this dbt invocation as the point the
    model has read through (inside the model's transaction, so a failed build records nothing).
-#}
{% macro record_loaded_through() -%}
    {{ create_build_inputs_ledger() }};
    insert into {{ target.schema }}._lens_build_inputs (model_name, input_key, fingerprint)
    values ('{{ this.identifier }}', 'loaded_through', '{{ run_started_at.isoformat() }}')
    on conflict (model_name, input_key) do update
    set fingerprint = excluded.fingerprint, recorded_at = now()
{%- endmacro %}
