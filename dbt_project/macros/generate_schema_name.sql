{#-
    Every node builds into the target's schema, whatever `schema` config it carries: the whole build is
    one schema (LENS_DBT_SCHEMA) that the quality gate validates and promotes as a unit.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ target.schema | trim }}
{%- endmacro %}
