{#-
    Data tests of a `dbt build` check only the rows a window-incremental model (incremental_strategy
    'replace_from') rewrote in that build: the rows on or after the date it recomputed from, and with
    replace_customers_column the rows of the customers it recomputed whole. The rows before were checked
    by the build that wrote them and have not changed since. The whole table stays guarded: the marts'
    primary keys are database constraints (contracts), and the snapshot guard checks every mart in full
    before it becomes the baseline. `dbt test` on its own, full builds, and every other model: all rows.

    dbt renders each generic test's model through get_where_subquery; this project's version adds the
    scope to any `where` the test configures.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- set scope = rewritten_rows_scope(relation) -%}
    {%- if scope is none and not where -%}
        {%- do return(relation) -%}
    {%- endif -%}
    {%- set filter = '(' ~ where ~ ')' if where else 'true' -%}
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
    {%- if not execute or flags.WHICH != 'build' or relation.identifier is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set models = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('alias', 'equalto', relation.identifier) | list -%}
    {%- if models | length != 1 or models[0].config.get('incremental_strategy') != 'replace_from' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if adapter.get_relation(relation.database, relation.schema, '_lens_build_inputs') is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set rows = run_query(
        "select fingerprint, recorded_at::text from " ~ relation.schema ~ "._lens_build_inputs"
        ~ " where model_name = '" ~ relation.identifier ~ "' and input_key = 'recomputed_from'"
    ).rows -%}
    {%- if rows | length == 0 or rows[0][0] == '-infinity' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set model_config = models[0].config -%}
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
