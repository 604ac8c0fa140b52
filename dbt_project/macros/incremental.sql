{#-
    Where an incremental model resumes reading the raw layer, as a timestamptz literal read once when the
    model compiles (so PostgreSQL plans the "loaded since" filter with a known bound: the block-range
    index on the raw table, index lookups for the rows already built); '-infinity' (read everything) on
    a full build.

    A raw row that the model's last build did not see was loaded after that build's dbt invocation
    started (the ledger key 'loaded_through', written by the post-hook record_loaded_through), or by a
    batch of `entities` that was still running then and committed later, with older `_loaded_at` values
    (a row's load transaction start). So the bound is the earlier of that start and the earliest start
    among the loaded batches of `entities` that finished after it (no row of a batch has a `_loaded_at`
    before its start), minus var('incremental_lookback_hours') as an extra margin. A batch that finished
    before the last build started was read by it and is not read again; wall-clock lookbacks alone would
    re-read everything after a bulk initial load. (A batch's finish stamp is its load's last statement
    before the commit, and a build reads the raw layer only after dbt has parsed and compiled, seconds
    after its start: a commit would have to lag its stamp by that long to be missed.)

    The invocation's start, not the model's: what the model reads from earlier models of the same run
    (orders reads order_lines) was built after it. Without a ledger entry (a table built before the
    ledger existed) the model's newest `merged_column` value stands in for it, if given.
-#}
{% macro loaded_since(batches_relation, entities, merged_column=none) -%}
    {%- if execute and this is not none and is_incremental() -%}
        '{{ loaded_since_bound(this.identifier, batches_relation, entities, this if merged_column else none, merged_column) }}'::timestamptz
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}

{#-
    The bound of loaded_since for the model `identifier` (whose ledger entry 'loaded_through' it reads;
    or the newest `merged_column` value of `merged_relation`), as timestamptz text; '-infinity' when
    nothing is recorded. Also what the data tests of the staging views read (macros/test_scope.sql).
-#}
{% macro loaded_since_bound(identifier, batches_relation, entities, merged_relation=none, merged_column=none) -%}
    {%- set lookback = var('incremental_lookback_hours') | int -%}
    {%- set ledger = adapter.get_relation(this.database, target.schema, '_lens_build_inputs') -%}
    {%- set query -%}
        with

        recorded as (
            select coalesce(
                {%- if ledger is not none %}
                (
                    select max(fingerprint::timestamptz)
                    from {{ ledger }}
                    where model_name = '{{ identifier }}'
                        and input_key = 'loaded_through'
                ),
                {%- endif %}
                {%- if merged_column %}
                (select max({{ merged_column }}) from {{ merged_relation }}),
                {%- endif %}
                null::timestamptz
            ) as loaded_through
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
        from recorded
        cross join overlapping_batches
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0]) }}
{%- endmacro %}

{#-
    post-hook of a model using loaded_since: record the start of this dbt invocation as the point the
    model has read through (inside the model's transaction, so a failed build records nothing).
-#}
{% macro record_loaded_through() -%}
    {{ record_build_input('loaded_through', "'" ~ run_started_at.isoformat() ~ "'") }}
{%- endmacro %}

{#- Hook SQL: set the running model's ledger entry `input_key` (_lens_build_inputs) to the SQL text `value_sql`. -#}
{% macro record_build_input(input_key, value_sql) -%}
    {{ create_build_inputs_ledger() }};
    insert into {{ target.schema }}._lens_build_inputs (model_name, input_key, fingerprint)
    values ('{{ this.identifier }}', '{{ input_key }}', {{ value_sql }})
    on conflict (model_name, input_key) do update
    set fingerprint = excluded.fingerprint, recorded_at = now()
{%- endmacro %}

{#- SQL: the ids of the orders whose header or lines were loaded since `since` (a timestamptz literal). -#}
{% macro order_ids_loaded_since(since) -%}
    select order_id
    from {{ source('sales', 'orders') }}
    where _loaded_at >= {{ since }}
    union
    select order_id
    from {{ source('sales', 'order_lines') }}
    where _loaded_at >= {{ since }}
{%- endmacro %}

{#-
    An incremental fact's loaded_since bound, kept for its post-hook record_merged_since in the setting
    lens.merged_since of the model's transaction (read when the model compiles, in that transaction;
    outside one it is lost and the tests read every row). Returns the bound, for the model's SQL.
-#}
{% macro merged_since(batches_relation, entities) -%}
    {%- set since = loaded_since(batches_relation, entities, 'loaded_at') -%}
    {%- if execute -%}
        {%- do run_query("select set_config('lens.merged_since', (" ~ since ~ ")::text, true)") -%}
    {%- endif -%}
    {{ return(since) }}
{%- endmacro %}

{#-
    post-hook of an incremental fact: record the bound its build merged from (merged_since; ledger key
    'merged_since', '-infinity' on a full build), so that its data tests in `dbt build` read only the rows
    it wrote: those whose loaded_at is on or after it (a row the build did not rewrite keeps an older
    loaded_at; macros/test_scope.sql, merged_rows_scope).
-#}
{% macro record_merged_since() -%}
    {{ record_build_input('merged_since', "coalesce(nullif(current_setting('lens.merged_since', true), ''), '-infinity')") }}
{%- endmacro %}

{#-
    SQL: (customer_id, email) of the customers with a version loaded since the running model's last build
    (loaded_since), current values; for the models whose rows a customer's arrival or new email can
    change (the ticket and survey matching). The ids are read as an array, so they reach the version index
    of the staging view.
-#}
{% macro customers_loaded_since() -%}
    select
        customer_id,
        email
    from {{ ref('stg_sales__customers') }}
    where customer_id = any(array(
        select customer_id
        from {{ source('sales', 'customers') }}
        where _loaded_at >= {{ loaded_since(ref('stg_sales__load_batches'), ['customers']) }}
    ))
{%- endmacro %}
