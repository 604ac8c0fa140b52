{#-
    Change logs: how a model that keeps sums over another model's rows (int_guerrilla_groups_aggregated
    over customer_period_groups and int_customer_events_aggregated_to_months) maintains them by
    difference instead of recomputing them.

    A producer (config capture_replaced_rows, with the replace_from strategy's keep_unchanged_rows)
    appends every row its incremental build deletes ('deleted') or inserts ('inserted') to its change log
    _lens_changes__<model>, in the build's transaction. The log's table comment is its generation: a new
    log (a full build of the producer, or a missing log) gets the dbt invocation id. The consumer
    records the generations it read among its inputs ('config'), so a new generation, whose rows before
    were never logged, makes it recompute everything; else it applies the logged changes (the first
    logged version of a row is the one it last saw) and empties the logs in its own transaction, under
    a lock that keeps other builds from appending meanwhile.
-#}

{#- The change log of `identifier` (default: the running model), schema-qualified. -#}
{% macro change_log_relation(identifier=none) -%}
    {{ return(target.schema ~ '._lens_changes__' ~ (identifier or this.identifier)) }}
{%- endmacro %}

{#- Whether the change log of `identifier` exists (false when not executing). -#}
{% macro change_log_exists(identifier=none) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set name = change_log_relation(identifier).split('.')[1] -%}
    {{ return(adapter.get_relation(this.database, target.schema, name) is not none) }}
{%- endmacro %}

{#-
    Hook of a producer: before an incremental build, create its change log if missing (pre-hook);
    after a full build, replace it by an empty one, a new generation (post-hook: the table exists then).
-#}
{% macro start_change_log(hook) -%}
    {%- set log = change_log_relation() -%}
    {%- set new_log -%}
        drop table if exists {{ log }};
        create table {{ log }} (like {{ this }});
        alter table {{ log }}
            add column change_id bigint generated always as identity,
            add column change_kind text not null;
        comment on table {{ log }} is '{{ invocation_id }}'
    {%- endset -%}
    {%- if (hook == 'pre' and is_incremental() and execute and not change_log_exists())
        or (hook == 'post' and not is_incremental()) -%}
        {{ new_log }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- SQL: the generation of `identifier`'s change log, 'none' without one. -#}
{% macro change_log_generation(identifier) -%}
    coalesce(obj_description(to_regclass('{{ change_log_relation(identifier) }}'), 'pg_class'), 'none')
{%- endmacro %}

{#-
    Consumer pre-hook: lock the logs of `identifiers` against appends until the consumer commits (the
    producers of the same build have committed before it starts), so emptying them loses nothing.
-#}
{% macro lock_change_logs(identifiers) -%}
    {%- for identifier in identifiers %}
    {%- if change_log_exists(identifier) %}
    lock table {{ change_log_relation(identifier) }} in share row exclusive mode;
    {%- endif %}
    {%- endfor %}
    select 1
{%- endmacro %}

{#- Consumer post-hook: the logged changes are applied (or everything was recomputed): empty the logs. -#}
{% macro empty_change_logs(identifiers) -%}
    {%- for identifier in identifiers %}
    {%- if change_log_exists(identifier) %}
    delete from {{ change_log_relation(identifier) }};
    {%- endif %}
    {%- endfor %}
    select 1
{%- endmacro %}

{#-
    incremental_strategy='add_changes' (config unique_key, sum_columns, drop_rows_where): the model's
    rows are changes to add to the stored sums (an upsert adding sum_columns), after which the rows that
    match drop_rows_where (a group left empty) are deleted; or, when the pre-hook set_recompute_from
    found everything to recompute (lens.recompute_from = -infinity), the whole table.
-#}
{% macro get_incremental_add_changes_sql(arg_dict) -%}
    {%- set target_relation = arg_dict['target_relation'] -%}
    {%- set temp_relation = arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set keys = config.require('unique_key') -%}
    {%- set sums = config.require('sum_columns') -%}
    {%- set recomputes_all = "current_setting('lens.recompute_from')::date = '-infinity'" %}
    delete from {{ target_relation }}
    where {{ recomputes_all }};

    insert into {{ target_relation }} as stored ({{ columns }})
    select {{ columns }}
    from {{ temp_relation }}
    on conflict ({{ keys | join(', ') }}) do update
    set
        {%- for column in sums %}
        {{ column }} = stored.{{ column }} + excluded.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %};

    delete from {{ target_relation }}
    where {{ config.require('drop_rows_where') }}
{%- endmacro %}
