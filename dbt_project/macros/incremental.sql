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
