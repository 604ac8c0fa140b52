{#-
    on-run-start: drop, one after the other, the existing views this run will rebuild.

    dbt replaces a view by renaming it and dropping the old one with CASCADE, which drops the views that
    depend on it. With two threads, two such cascades can reach the same dependent view at once and
    PostgreSQL aborts one of them with a deadlock (views that share a dependant view, as staging views
    do). Dropping the selected views
    up front, sequentially, leaves the threads nothing to cascade into. It removes nothing dbt would not
    have removed itself: the cascade drops the same dependants (which the run rebuilds when selected).
    adapter.drop_relation keeps dbt's relation cache in step.
-#}
{% macro drop_views_to_rebuild() %}
    {%- if execute and flags.WHICH in ('run', 'build') -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == 'model'
                and node.config.materialized == 'view'
                and node.unique_id in selected_resources -%}
                {%- set relation = adapter.get_relation(
                    database=node.database, schema=node.schema, identifier=node.alias
                ) -%}
                {%- if relation is not none and relation.is_view -%}
                    {%- do adapter.drop_relation(relation) -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{% endmacro %}
