{#-
    Config of the snapshot marts, which rewrite open periods only (int_periods_open), with dbt's
    delete+insert: the key is the snapshot's period, so a build replaces every stored row of the periods
    it recomputes (the previous as-of date's running snapshot included), and the predicate keeps the
    delete to the open periods (through the snapshot_date index). Rendered when dbt parses the model:
    the predicate names int_periods_open by the model's own schema (every model builds into one).
-#}
{% macro snapshot_period_key() -%}
    date_trunc('{{ snapshot_grain() | trim }}', snapshot_date)
{%- endmacro %}

{% macro open_periods_predicate(column='snapshot_date') -%}
    DBT_INTERNAL_DEST.{{ column }} >= (select rewrite_from_date from {{ this.schema }}.int_periods_open)
{%- endmacro %}

{#-
    SQL: the snapshot periods (period_start_date, snapshot_date) an incremental build of the calling
    snapshot mart writes: the open ones, and a closed one it holds no row of (never built while open:
    no build ran between its end and its closing). A closed period it holds stays as built.
-#}
{% macro rewritten_snapshot_periods() -%}
    select
        periods.period_start_date,
        periods.snapshot_date
    from {{ ref('int_periods_generated') }} as periods
    where periods.is_snapshot_period
        and (
            periods.period_start_date >= (select open_periods.rewrite_from_date from {{ ref('int_periods_open') }} as open_periods)
            or not exists (
                select from {{ this }} as stored
                where stored.snapshot_date between periods.period_start_date and periods.period_end_date
            )
        )
{%- endmacro %}
