{#-
    The grain test for composite keys: no two rows share the same values of `combination_of_columns`.
    Returns the duplicated combinations (with how often they occur).
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with

grouped as (

    select
        {{ combination_of_columns | join(',\n        ') }},
        count(*) as occurrences
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}

)

select *
from grouped
where occurrences > 1

{% endtest %}
