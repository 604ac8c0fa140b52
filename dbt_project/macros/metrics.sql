{#- NPS answer category from a 0-10 score: promoter (9-10), passive (7-8), detractor (0-6). -#}
{% macro nps_category(score) -%}
    case
        when {{ score }} >= 9 then 'promoter'
        when {{ score }} >= 7 then 'passive'
        when {{ score }} >= 0 then 'detractor'
    end
{%- endmacro %}

{#- Percentage change from previous to current, 2 decimals; null when there is no positive base. -#}
{% macro pct_change(current_value, previous_value) -%}
    case
        when {{ previous_value }} > 0
            then round(100.0 * (({{ current_value }}) - ({{ previous_value }})) / ({{ previous_value }}), 2)
    end
{%- endmacro %}

{#- numerator / denominator x scale, rounded; null when the denominator is 0 or null. -#}
{% macro ratio(numerator, denominator, scale=1, digits=4) -%}
    round(({{ scale }}) * ({{ numerator }})::numeric / nullif({{ denominator }}, 0), {{ digits }})
{%- endmacro %}
