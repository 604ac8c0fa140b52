{#-
    A source column that a user's source may not have: the column itself when the raw table has it, else
    a typed null under the same name. A source configured without e.g. unit_cost (a transaction file with
    no cost) then still builds, and every figure that depends on cost is null, never zero-filled.
    Keys, timestamps and the load metadata are required and referenced directly: their absence is an error.
-#}
{% macro optional_column(relation, column_name, data_type) -%}
    {%- if execute and column_name | lower not in _relation_column_names(relation) -%}
        null::{{ data_type }} as {{ column_name }}
    {%- else -%}
        {{ column_name }}
    {%- endif -%}
{%- endmacro %}

{#- The lower-cased column names of a relation (one catalog query; empty when the relation is missing). -#}
{% macro _relation_column_names(relation) -%}
    {%- set names = [] -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- do names.append(column.name | lower) -%}
    {%- endfor -%}
    {{- return(names) -}}
{%- endmacro %}

{#-
    'true' when the sales source records costs (raw order lines have unit_cost), else 'false', as SQL.
    "Nothing bought, so nothing cost" holds only for a source that records costs at all: where a figure
    would be a filled-in 0 for a customer, order or group without purchases, it is 0 only when this is
    true and null otherwise, like every other cost figure of such a source. Read from the catalog at run
    time through the graph, so the models that use it get no lineage edge to the raw source.
-#}
{% macro sales_costs_recorded() -%}
    {%- if not execute -%}
        {{- return('true') -}}
    {%- endif -%}
    {%- set node = graph.sources.values()
        | selectattr('source_name', 'equalto', 'sales')
        | selectattr('name', 'equalto', 'order_lines')
        | first -%}
    {%- set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=node.identifier) -%}
    {{- return('true' if 'unit_cost' in _relation_column_names(relation) else 'false') -}}
{%- endmacro %}
