{#-
    The customer attribute named by var('group_attribute'), validated: it becomes a column reference of
    stg_sales__customers, so only known, harmless names are accepted.
-#}
{% macro group_attribute_column() -%}
    {%- set allowed = ['region', 'country_code', 'industry', 'company_size', 'acquisition_channel'] -%}
    {%- set attribute = var('group_attribute') | string | trim | lower -%}
    {%- if attribute not in allowed -%}
        {{ exceptions.raise_compiler_error(
            "var group_attribute must be one of " ~ allowed | join(', ') ~ "; got '" ~ attribute ~ "'"
        ) }}
    {%- endif -%}
    {{ attribute }}
{%- endmacro %}

{#- A customer's attribute group: the var group_attribute column of `alias` (its `column`), 'unknown' if null. -#}
{% macro group_attribute_value(alias, column=none) -%}
    coalesce({{ alias }}.{{ column or (group_attribute_column() | trim) }}, 'unknown')
{%- endmacro %}

{#- var('snapshot_grain'), validated (a date_trunc field). -#}
{% macro snapshot_grain() -%}
    {%- set allowed = ['week', 'month', 'quarter'] -%}
    {%- set grain = var('snapshot_grain') | string | trim | lower -%}
    {%- if grain not in allowed -%}
        {{ exceptions.raise_compiler_error(
            "var snapshot_grain must be one of " ~ allowed | join(', ') ~ "; got '" ~ grain ~ "'"
        ) }}
    {%- endif -%}
    {{ grain }}
{%- endmacro %}

