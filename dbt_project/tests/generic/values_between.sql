{#- Returns the rows where the column lies outside [min_value, max_value] (nulls pass). -#}
{% test values_between(model, column_name, min_value, max_value) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ min_value }}
    or {{ column_name }} > {{ max_value }}

{% endtest %}
