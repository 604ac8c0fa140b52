{#-
    A breakdown adds up: within each partition (e.g. a period), the rows of every group type sum `column_name`
    to the value of the total row (`group_column` = `total_group`). Returns the partitions and group types
    that do not (beyond a cent).
-#}
{% test group_sums_match_total(model, column_name, partition_by, group_column, total_group='all') %}

with

totals as (

    select
        {{ partition_by | join(', ') }},
        {{ column_name }} as total
    from {{ model }}
    where {{ group_column }} = '{{ total_group }}'

),

group_sums as (

    select
        {{ partition_by | join(', ') }},
        {{ group_column }},
        sum({{ column_name }}) as group_sum
    from {{ model }}
    where {{ group_column }} <> '{{ total_group }}'
    group by {{ partition_by | join(', ') }}, {{ group_column }}

)

select
    group_sums.*,
    totals.total
from group_sums
left join totals using ({{ partition_by | join(', ') }})
where abs(coalesce(group_sums.group_sum, 0) - coalesce(totals.total, 0)) > 0.01

{% endtest %}
