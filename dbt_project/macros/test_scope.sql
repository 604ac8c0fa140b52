{#-
    Data tests of a `dbt build` check only the rows a window-incremental model (incremental_strategy
    'replace_from') rewrote in that build: the rows on or after the date it recomputed from, and with
    replace_customers_column the rows of the customers it recomputed whole. A snapshot mart with closed
    periods (config meta open_periods_column) is tested on its open periods (int_periods_open). The rows
    before were checked by the build that wrote them and have not changed since. The whole table stays
    guarded: the marts' primary keys are database constraints (contracts), and the snapshot guard checks
    every mart in full before it becomes the baseline. `dbt test` on its own, full builds, and every other model: all rows.

    An incremental fact merged from the raw layer (order_lines, tickets: record_merged_since) is tested on
    the rows whose loaded_at is on or after the bound its build merged from: the rows it rewrote.

    A model written by difference with a change log (capture_replaced_rows, macros/changes.sql) is
    tested on the rows its builds inserted since the log was last emptied (this build's, unless the
    model that empties it was skipped), read from the log: a daily build recomputes a wide window but
    writes few rows. After a full build (a log of this invocation's generation): all rows. Updates made
    in place by a post-hook (update_current_attributes) are not in the log.

    The staging views are recomputed from the raw layer at every read, so a test of one reads all of it.
    Those a later incremental mart depends on (config meta tested_since) are tested, in `dbt build`, on
    the records loaded since that mart's last build (every version of each such key): the keys before
    were tested by the builds that got as far as that mart, which `dbt build` only reaches past passing
    tests. The view's build records those keys once (post-hook record_tested_keys, table
    _lens_tested_keys); each of its tests reads them with one lookup. A load of more than
    var('tested_keys_limit') keys, or a view not built in the same invocation, is tested in full.

    dbt renders each generic test's model through get_where_subquery; this project's version adds the
    scope to any `where` the test configures.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- set log = logged_rows_scope(relation) -%}
    {%- if log is not none -%}
        {%- do return(
            '(select * from ' ~ log ~ " where change_kind = 'inserted' and " ~ ('(' ~ where ~ ')' if where else 'true')
            ~ ') dbt_subquery'
        ) -%}
    {%- endif -%}
    {%- set scope = rewritten_rows_scope(relation) -%}
    {%- set merged = merged_rows_scope(relation) if scope is none else none -%}
    {%- set keys = loaded_keys_scope(relation) if scope is none and merged is none else none -%}
    {%- if scope is none and merged is none and keys is none and not where -%}
        {%- do return(relation) -%}
    {%- endif -%}
    {%- set filter = '(' ~ where ~ ')' if where else 'true' -%}
    {%- if merged is not none -%}
        {%- do return(
            '(select * from ' ~ relation ~ ' where ' ~ filter ~ " and loaded_at >= '" ~ merged ~ "'::timestamptz) dbt_subquery"
        ) -%}
    {%- endif -%}
    {%- if keys is not none -%}
        {%- do return(
            '(select * from ' ~ relation ~ ' where ' ~ filter ~ ' and ' ~ keys.column
            ~ " = any('" ~ keys['values'] ~ "'::" ~ keys.data_type ~ '[])) dbt_subquery'
        ) -%}
    {%- endif -%}
    {%- if scope is none -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ filter ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- set subquery -%}
        (
            select * from {{ relation }}
            where {{ filter }} and {{ scope.column }} >= '{{ scope.recomputed_from }}'
            {%- if scope.customers_column %}
            union all
            select * from {{ relation }}
            where {{ filter }} and {{ scope.column }} < '{{ scope.recomputed_from }}'
                and {{ scope.customers_column }} in ({{ scope.customers_sql }})
            {%- endif %}
        ) dbt_subquery
    {%- endset -%}
    {%- do return(subquery) -%}
{%- endmacro %}

{#-
    The rows of `relation` that its model's last build rewrote (see above), as {column, recomputed_from,
    customers_column, customers_sql}, or none (all rows). The date comes from the ledger row
    'recomputed_from' (record_build_inputs); the customers are the _lens_build_customers rows recorded in
    the same transaction. Read when the test compiles, in `dbt build` right after its model was built, so
    the planner sees the date as a literal.
-#}
{% macro rewritten_rows_scope(relation) -%}
    {%- set model = tested_model(relation) -%}
    {%- set open_periods_column = model.config.get('meta', {}).get('open_periods_column') if model is not none -%}
    {%- if open_periods_column -%}
        {%- set rows = run_query(
            'select rewrite_from_date::text from ' ~ relation.schema ~ '.int_periods_open'
        ).rows -%}
        {{ return({'column': open_periods_column, 'recomputed_from': rows[0][0]} if rows | length == 1 else none) }}
    {%- endif -%}
    {%- if model is none or model.config.get('incremental_strategy') != 'replace_from' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set row = build_ledger_row(relation, 'recomputed_from') -%}
    {%- if row is none or row[0] == '-infinity' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set rows = [row] -%}
    {%- set model_config = model.config -%}
    {%- set customers_sql -%}
        select customer_id from {{ relation.schema }}._lens_build_customers
        where model_name = '{{ relation.identifier }}' and recorded_at = '{{ rows[0][1] }}'::timestamptz
    {%- endset -%}
    {{ return({
        'column': model_config.get('replace_from_column'),
        'recomputed_from': rows[0][0],
        'customers_column': model_config.get('replace_customers_column'),
        'customers_sql': customers_sql,
    }) }}
{%- endmacro %}

{#-
    The keys of the staging view `relation` loaded since its tested_since mart's last build (see above),
    as {column, values (an array literal), data_type}, read from what the view's own build in this
    invocation recorded (record_tested_keys); none (all rows) outside `dbt build`, for other models, when
    the view was not built in this invocation, without a record of that mart, or beyond
    var('tested_keys_limit') keys. One lookup per test: the keys are computed once per view and build.
-#}
{% macro loaded_keys_scope(relation) -%}
    {%- set model = tested_model(relation) -%}
    {%- set since = model.config.get('meta', {}).get('tested_since') if model is not none else none -%}
    {%- if not since or adapter.get_relation(relation.database, relation.schema, '_lens_tested_keys') is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set rows = run_query(
        'select key_values, key_type from ' ~ relation.schema ~ "._lens_tested_keys where model_name = '"
        ~ relation.identifier ~ "' and invocation_id = '" ~ invocation_id ~ "' and key_values is not null"
    ).rows -%}
    {%- if rows | length == 0 -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return({'column': since['key'], 'values': rows[0]['key_values'], 'data_type': rows[0]['key_type']}) }}
{%- endmacro %}

{#-
    Post-hook of the staging views (dbt_project.yml): for a view with config meta tested_since, in `dbt
    build`, records in _lens_tested_keys (one row per view, replaced by each of its builds, in the view's
    transaction) the keys loaded since that mart's last build, as an array literal of the view's key
    column type: the scope its tests read (loaded_keys_scope). key_values stays null (test all rows)
    after a full load ('-infinity': no record of the mart) or beyond var('tested_keys_limit') keys.
    Empty (no statement) otherwise.
-#}
{% macro record_tested_keys() -%}
    {%- set since = config.get('meta', {}).get('tested_since') if execute else none -%}
    {%- if not since or flags.WHICH != 'build' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set sources = [] -%}
    {%- for node_id in graph.nodes[model.unique_id].depends_on.nodes if node_id.startswith('source.') -%}
        {%- do sources.append(node_id) -%}
    {%- endfor -%}
    {%- set batches = adapter.get_relation(this.database, this.schema, since['batches']) -%}
    {%- set bound = loaded_since_bound(since['model'], batches, since['entities'])
        if batches is not none and sources | length == 1 else '-infinity' -%}
    {%- set limit = var('tested_keys_limit') | int -%}
    {{ lock_build_ledgers() }};
    create table if not exists {{ this.schema }}._lens_tested_keys (
        model_name text primary key,
        invocation_id text not null,
        key_type text not null,
        key_values text,
        recorded_at timestamptz not null default now()
    );
    delete from {{ this.schema }}._lens_tested_keys where model_name = '{{ this.identifier }}';
    insert into {{ this.schema }}._lens_tested_keys (model_name, invocation_id, key_type, key_values)
    select
        '{{ this.identifier }}',
        '{{ invocation_id }}',
        (
            select format_type(atttypid, atttypmod) from pg_attribute
            where attrelid = '{{ this.include(database=false) }}'::regclass and attname = '{{ since['key'] }}'
        ),
        {%- if bound.startswith('-infinity') %}
        null
    {%- else %}
        case when count(*) <= {{ limit }} then coalesce(array_agg(key)::text, '{}') end
    from (
        select distinct {{ since['key'] }} as key
        from {{ graph.sources[sources[0]].relation_name }}
        where _loaded_at >= '{{ bound }}'::timestamptz
        limit {{ limit + 1 }}
    ) as loaded
    {%- endif %}
{%- endmacro %}

{#-
    The merge bound of the incremental fact `relation` (its build's record_merged_since), as timestamptz
    text: its tests read the rows with loaded_at on or after it. None (all rows) outside `dbt build`, for
    other models, or after a full build ('-infinity').
-#}
{% macro merged_rows_scope(relation) -%}
    {%- set model = tested_model(relation) -%}
    {%- if model is none or model.config.get('incremental_strategy') != 'merge' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set row = build_ledger_row(relation, 'merged_since') -%}
    {%- if row is none or row[0] is none or row[0].startswith('-infinity') -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(row[0]) }}
{%- endmacro %}

{#-
    The change log to test instead of `relation` (see above), or none: outside `dbt build`, for models
    without one, or when the log is of this invocation (a full build, or a log just started).
-#}
{% macro logged_rows_scope(relation) -%}
    {%- set model = tested_model(relation) -%}
    {%- if model is none or not model.config.get('capture_replaced_rows') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set generation = run_query(
        'select ' ~ change_log_generation(relation.identifier)
    ).columns[0].values()[0] -%}
    {%- if generation in ('none', invocation_id) -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(change_log_relation(relation.identifier)) }}
{%- endmacro %}

{#- The model node a generic test of a `dbt build` reads, by relation name; none when not applicable. -#}
{% macro tested_model(relation) -%}
    {%- if not execute or flags.WHICH != 'build' or relation.identifier is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set models = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('alias', 'equalto', relation.identifier) | list -%}
    {{ return(models[0] if models | length == 1 else none) }}
{%- endmacro %}

{#- The ledger row (fingerprint, recorded_at as text) of `relation`'s model under `input_key`; none without one. -#}
{% macro build_ledger_row(relation, input_key) -%}
    {%- if adapter.get_relation(relation.database, relation.schema, '_lens_build_inputs') is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set rows = run_query(
        "select fingerprint, recorded_at::text from " ~ relation.schema ~ "._lens_build_inputs"
        ~ " where model_name = '" ~ relation.identifier ~ "' and input_key = '" ~ input_key ~ "'"
    ).rows -%}
    {{ return(rows[0] if rows | length > 0 else none) }}
{%- endmacro %}
