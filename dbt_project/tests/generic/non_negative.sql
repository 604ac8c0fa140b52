{#- Counts and amounts that cannot be negative: returns the rows where the column is below zero. -#}
{% test non_negative(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < 0

{% endtest %}
