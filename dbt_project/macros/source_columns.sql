{#-
    A column of the data contract (customer_lens.config.contract, docs/data-contract.md) as a staging model reads
    it from a raw table: the source's mapping when config/sources.yml gives one (an expression over the raw
    table's columns, cast to the contract's type), else the raw column itself. For columns every source has
    (a missing one is an error, named by the config check before any load).
-#}
{% macro source_column(relation, column_name, data_type) -%}
    {%- set mapped = _source_mapping(relation).get(column_name) -%}
    {%- if mapped -%}
        {{ mapped }} as {{ column_name }}
    {%- else -%}
        {{ column_name }}
    {%- endif -%}
{%- endmacro %}

{#-
    A source column that a user's source may not have: its mapping (see source_column), else the column
    itself when the raw table has it, else a typed null under the same name. A source configured without
    e.g. unit_cost (a transaction file with no cost) then still builds, and every figure that depends on
    cost is null, never zero-filled. Keys, timestamps and the load metadata are required and referenced
    directly: their absence is an error.
-#}
{% macro optional_column(relation, column_name, data_type) -%}
    {%- set mapped = _source_mapping(relation).get(column_name) -%}
    {%- if mapped -%}
        {{ mapped }} as {{ column_name }}
    {%- elif execute and column_name | lower not in _relation_column_names(relation) -%}
        null::{{ data_type }} as {{ column_name }}
    {%- else -%}
        {{ column_name }}
    {%- endif -%}
{%- endmacro %}

{#-
    The mapped columns of a raw table ({column: SQL}): the sources configuration's `map` sections, rendered
    and checked by customer_lens (transform.dbt_env passes them as LENS_SOURCE_MAPPINGS).
-#}
{% macro _source_mapping(relation) -%}
    {%- set all = fromjson(env_var('LENS_SOURCE_MAPPINGS', '{}')) -%}
    {{- return(all.get(relation.schema ~ '.' ~ relation.identifier, {})) -}}
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
    {%- set recorded = 'unit_cost' in _relation_column_names(relation) or 'unit_cost' in _source_mapping(relation) -%}
    {{- return('true' if recorded else 'false') -}}
{%- endmacro %}
