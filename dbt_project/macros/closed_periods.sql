{#-
    Config of the snapshot marts, which rewrite open periods only (int_periods_open), with dbt's
    delete+insert: the key is the snapshot's period, so a build replaces every stored row of the periods
    it recomputes (the previous as-of date's running snapshot included), and the predicate keeps the
    delete to the open periods and the last stored snapshot before them (through the snapshot_date
    index; see rewritten_snapshot_periods). Rendered when dbt parses the model: the predicate names
    int_periods_open by the model's own schema (every model builds into one).
-#}
{% macro snapshot_period_key() -%}
    date_trunc('{{ snapshot_grain() | trim }}', snapshot_date)
{%- endmacro %}

{% macro open_periods_predicate(column='snapshot_date') -%}
    {%- set rewrite_from = '(select rewrite_from_date from ' ~ this.schema ~ '.int_periods_open)' -%}
    DBT_INTERNAL_DEST.{{ column }} >= least(
        {{ rewrite_from }},
        (select max(stored.{{ column }}) from {{ this }} as stored where stored.{{ column }} < {{ rewrite_from }})
    )
{%- endmacro %}

{#-
    SQL: the snapshot periods (period_start_date, snapshot_date) an incremental build of the calling
    snapshot mart writes: the open ones, and a closed one it holds no snapshot of at the period's end
    (no build ran between its end and its closing: none at all, or a running snapshot of a day before,
    which is then replaced). A closed period it holds at its end stays as built.
-#}
{% macro rewritten_snapshot_periods() -%}
    select
        periods.period_start_date,
        periods.snapshot_date
    from {{ ref('int_periods_generated') }} as periods
    where periods.is_snapshot_period
        and (
            periods.period_start_date >= (select open_periods.rewrite_from_date from {{ ref('int_periods_open') }} as open_periods)
            or not exists (select from {{ this }} as stored where stored.snapshot_date = periods.snapshot_date)
        )
{%- endmacro %}
