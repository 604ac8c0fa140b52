{#-
    Window-incremental marts: recompute only the snapshots (or periods) whose inputs changed.

    A model that derives history from inputs by business date (purchase days, the as-of date, its
    vars and rule seeds) records, after each successful build and in the same transaction, a
    fingerprint of each input by business date in the ledger table _lens_build_inputs of the target
    schema. The next incremental build compares the current fingerprints with the recorded ones:

    - the earliest business date whose fingerprint differs (a late update, a new purchase, a customer
      whose old orders now match), the recorded and the current as-of date: the least of them is the
      date from which the model recomputes (recompute_from); everything before it is kept as built;
    - a changed 'config' fingerprint (a var or a rule seed row), or no ledger entry at all (first build
      after an upgrade, ledger dropped): everything is recomputed, in the same run, without a flag.

    The strategy 'replace_from' then deletes the target rows from the first recomputed date on and
    inserts the recomputed ones (macro get_incremental_replace_from_sql). Fingerprints are exact in
    practice: per date, the row count and the sum of 64-bit hashes of each row's values.
-#}

{#-
    The ledger: one row per model and input key, replaced whole by each build. Created by the first
    build that records into it (as the role that builds the models, so it owns it like the marts).
-#}
{% macro create_build_inputs_ledger() -%}
    create table if not exists {{ target.schema }}._lens_build_inputs (
        model_name text not null,
        input_key text not null,
        fingerprint text,
        recorded_at timestamptz not null default now(),
        primary key (model_name, input_key)
    )
{%- endmacro %}

{#- Fingerprint SQL fragment of a set of rows: count and the sum of the rows' 64-bit hashes. -#}
{% macro rows_fingerprint(row_expression) -%}
    count(*)::text || ':' || sum(hashtextextended(({{ row_expression }})::text, 0))::text
{%- endmacro %}

{#-
    The date from which the calling incremental model must recompute, as 'YYYY-MM-DD', or none to
    recompute everything (not an incremental run, no ledger entry, or a config change).
    inputs_sql: a query of (input_key, fingerprint): keys '<input>@YYYY-MM-DD' (fingerprint of that
    input's rows of that day), 'as_of' (the as-of date) and 'config' (anything whose change invalidates
    all history).
    The inputs are rendered even when not executing, so their refs become the model's dependencies.
-#}
{% macro recompute_from(inputs_sql) -%}
    {%- set query -%}
        with

        current_inputs as (
            {{ inputs_sql }}
        ),

        recorded_inputs as (
            select input_key, fingerprint
            from {{ target.schema }}._lens_build_inputs
            where model_name = '{{ this.identifier }}'
        ),

        compared as (
            select
                coalesce(current_inputs.input_key, recorded_inputs.input_key) as input_key,
                current_inputs.fingerprint as current_fingerprint,
                recorded_inputs.fingerprint as recorded_fingerprint
            from current_inputs
            full outer join recorded_inputs
                on current_inputs.input_key = recorded_inputs.input_key
        )

        select
            (select count(*) from recorded_inputs) > 0 as has_ledger,
            coalesce(
                bool_or(input_key = 'config' and current_fingerprint is distinct from recorded_fingerprint),
                false
            ) as config_changed,
            least(
                min(split_part(input_key, '@', 2)::date) filter (
                    where input_key like '%@%' and current_fingerprint is distinct from recorded_fingerprint
                ),
                min(current_fingerprint::date) filter (where input_key = 'as_of'),
                min(recorded_fingerprint::date) filter (where input_key = 'as_of')
            )::text as recompute_from_date
        from compared
    {%- endset -%}
    {#- unit tests render models without a relation of their own: never incremental -#}
    {%- if not execute or this is none or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if adapter.get_relation(this.database, target.schema, '_lens_build_inputs') is none -%}
        {%- do log(this.identifier ~ ': recomputing all history (no ledger yet)', info=true) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- if not row['has_ledger'] or row['config_changed'] or row['recompute_from_date'] is none -%}
        {%- do log(this.identifier ~ ': recomputing all history (no ledger entry or a config change)', info=true) -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(row['recompute_from_date']) }}
{%- endmacro %}

{#- post-hook: record the inputs this build used (inside the model's transaction). -#}
{% macro record_build_inputs(inputs_sql) -%}
    {{ create_build_inputs_ledger() }};
    delete from {{ target.schema }}._lens_build_inputs where model_name = '{{ this.identifier }}';
    insert into {{ target.schema }}._lens_build_inputs (model_name, input_key, fingerprint)
    select '{{ this.identifier }}', input_key, fingerprint
    from ({{ inputs_sql }}) as current_inputs
{%- endmacro %}

{#-
    incremental_strategy='replace_from' (config replace_from_column, optional replace_from_grain): delete
    the target rows from the earliest value of that column among the recomputed rows on, then insert the
    recomputed rows. The model recomputes every row from its recompute_from date on, so nothing is kept
    twice. With replace_from_grain (snapshot models: the snapshot grain) the bound is the start of that
    value's period: a period's snapshot date moves with the as-of date while the period runs, so the
    previous as-of date's snapshot, older than the new one, goes too.
-#}
{% macro get_incremental_replace_from_sql(arg_dict) -%}
    {%- set column = config.require('replace_from_column') -%}
    {%- set grain = config.get('replace_from_grain') -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set earliest -%}(select min({{ column }}) from {{ arg_dict['temp_relation'] }}){%- endset -%}
    delete from {{ arg_dict['target_relation'] }}
    where {{ column }} >= {% if grain %}date_trunc('{{ grain }}', {{ earliest }})::date{% else %}{{ earliest }}{% endif %};

    insert into {{ arg_dict['target_relation'] }} ({{ columns }})
    select {{ columns }}
    from {{ arg_dict['temp_relation'] }}
{%- endmacro %}


{#-
    The inputs of the segment history (int_customer_segments_scored, customer_segments,
    segment_migrations): purchase days by date, the as-of date, and as 'config' the vars and the rule
    seed that every snapshot depends on. extra_config: more text whose change invalidates everything.
-#}
{% macro segment_build_inputs(extra_inputs_sql=none, extra_config='') -%}
    {%- set config_text = [
        snapshot_grain() | trim, var('value_window_months'), var('power_player_margin_share'),
        var('core_margin_share'), var('low_margin_revenue_share'), var('low_margin_pct'), extra_config,
    ] | join('|') -%}
    select 'purchase_days@' || purchase_date::text as input_key, fingerprint
    from {{ ref('int_customer_purchase_days_fingerprinted') }}
    union all
    select 'as_of', as_of_date::text
    from {{ ref('int_as_of_date') }}
    union all
    select 'config', md5('{{ config_text }}|' || coalesce(string_agg(rules::text, '|' order by rules::text), ''))
    from {{ ref('rfm_segment_rules') }} as rules
    {%- if extra_inputs_sql %}
    union all
    {{ extra_inputs_sql }}
    {%- endif %}
{%- endmacro %}

{#-
    The inputs of customer_period_groups: the segment history's, plus each episode's start and end
    (covered-until) dates and each customer's creation date, so that a changed episode or a new customer
    recomputes the periods from the earliest date it touches; and the group attribute var.
-#}
{% macro customer_group_build_inputs() -%}
    {%- set extra -%}
    select 'episodes@' || event_date::text, {{ rows_fingerprint('episode_events.event_kind, episode_events.customer_id, episode_events.episode_number') }}
    from (
        select 'start' as event_kind, customer_id, episode_number, episode_started_date as event_date
        from {{ ref('customer_episodes') }}
        union all
        select 'end', customer_id, episode_number, covered_until_date
        from {{ ref('customer_episodes') }}
    ) as episode_events
    group by event_date
    union all
    select 'customers@' || created_date::text, {{ rows_fingerprint('created.customer_id') }}
    from (
        select customer_id, {{ to_utc_date('created_at') }} as created_date
        from {{ ref('stg_sales__customers') }}
    ) as created
    group by created_date
    {%- endset -%}
    {{ segment_build_inputs(extra, group_attribute_column() | trim) }}
{%- endmacro %}

{#-
    post-hook of the marts that carry current customer attributes on history rows: rows built before
    an attribute changed get the current value. assignments: {mart column: SQL expression over
    `customers` (stg_sales__customers)}. Only rows whose values differ are written; no-op on full builds.
-#}
{% macro update_current_attributes(assignments, key='customer_id') -%}
    {%- if is_incremental() %}
    update {{ this }} as target
    set
        {%- for column, expression in assignments.items() %}
        {{ column }} = {{ expression }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('stg_sales__customers') }} as customers
    where target.{{ key }} = customers.customer_id
        and ({% for column in assignments.keys() %}target.{{ column }}{{ ', ' if not loop.last }}{% endfor %})
        is distinct from ({% for expression in assignments.values() %}{{ expression }}{{ ', ' if not loop.last }}{% endfor %})
    {%- endif %}
{%- endmacro %}
