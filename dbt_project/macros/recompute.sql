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

    The strategy 'replace_from' then deletes the target rows from that date on and inserts the
    recomputed ones (macro get_incremental_replace_from_sql; the date reaches it through the model's
    pre-hook set_recompute_from). Fingerprints are exact in
    practice: per date, the row count and the sum of 64-bit hashes of each row's values.
-#}

{#-
    The ledgers are created by the first build that records into them (as the role that builds the
    models, so it owns them like the marts). Under a transaction-scoped advisory lock: two models
    recording in parallel would race to create them (PostgreSQL fails one of two concurrent CREATE TABLE
    IF NOT EXISTS); the lock is held to the model's commit, a moment after its post-hooks.
-#}
{% macro lock_build_ledgers() -%}
    select pg_advisory_xact_lock(hashtext('lens-build-ledgers:{{ target.schema }}'))
{%- endmacro %}

{#- The ledger of inputs: one row per model and input key, replaced whole by each build. -#}
{% macro create_build_inputs_ledger() -%}
    {{ lock_build_ledgers() }};
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
    They are computed once per build: the first call (when the model's SQL compiles) keeps them in a
    temporary table that lives until the model's transaction ends (built_inputs_sql), and the pre-hook
    and record_build_inputs read it instead of scanning the inputs again.
-#}
{% macro recompute_from(inputs_sql) -%}
    {#- unit tests render models without a relation of their own: never incremental -#}
    {%- set incremental = execute and this is not none and is_incremental() -%}
    {%- set current_inputs_sql = built_inputs_sql(inputs_sql, create=true) if incremental else inputs_sql -%}
    {%- set query -%}
        with

        current_inputs as (
            {{ current_inputs_sql }}
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
    {%- if not incremental -%}
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

{#-
    The inputs of the running build as a query: the temporary table recompute_from filled earlier in this
    model's transaction if there is one, else `inputs_sql` itself. With create, fills that table first.
    The table is dropped on commit, so no later model or build can read it.
-#}
{% macro built_inputs_sql(inputs_sql, create=false) -%}
    {%- set table_name = 'lens_inputs__' ~ this.identifier -%}
    {%- set exists_query = "select to_regclass('pg_temp." ~ table_name ~ "') is not null" -%}
    {%- if not execute -%}
        {{ return(inputs_sql) }}
    {%- endif -%}
    {%- set exists = run_query(exists_query).columns[0].values()[0] -%}
    {%- if not exists and create -%}
        {%- do run_query(
            'create temporary table ' ~ table_name ~ ' on commit drop as select input_key, fingerprint from ('
            ~ inputs_sql ~ ') as current_inputs'
        ) -%}
        {#- outside a transaction block the table is gone at once: then read the inputs themselves -#}
        {%- set exists = run_query(exists_query).columns[0].values()[0] -%}
    {%- endif -%}
    {{ return('select input_key, fingerprint from pg_temp.' ~ table_name if exists else inputs_sql) }}
{%- endmacro %}

{#- post-hook: record the inputs this build used (inside the model's transaction). -#}
{% macro record_build_inputs(inputs_sql) -%}
    {{ create_build_inputs_ledger() }};
    -- (the raw layer's read marks are kept: their own hooks write them, before or after this one)
    delete from {{ target.schema }}._lens_build_inputs
    where model_name = '{{ this.identifier }}'
        and input_key not in ('loaded_through', 'merged_since');
    insert into {{ target.schema }}._lens_build_inputs (model_name, input_key, fingerprint)
    select '{{ this.identifier }}', input_key, fingerprint
    from ({{ built_inputs_sql(inputs_sql) }}) as current_inputs
    union all
    -- what this build recomputed (not an input: for people and tests; -infinity = everything)
    select
        '{{ this.identifier }}',
        'recomputed_from',
        {{ recompute_from_bound() }}::text
{%- endmacro %}

{#-
    SQL: the date the running replace_from model recomputes from (its pre-hook's lens.recompute_from), or
    -infinity (everything) when the transaction has none: a full build. For the model's own SQL and hooks.
-#}
{% macro recompute_from_bound() -%}
    coalesce(nullif(current_setting('lens.recompute_from', true), ''), '-infinity')::date
{%- endmacro %}

{#-
    incremental_strategy='replace_from' (config replace_from_column, optional replace_customers_column):
    delete the target rows from the model's recompute_from date on, then insert the recomputed rows.
    The date comes from the model's pre-hook set_recompute_from (the transaction's setting
    lens.recompute_from; a model without that pre-hook fails here, loudly). Every row from that date on
    is recomputed, so nothing is kept twice and nothing stale survives, such as the previous as-of
    date's running snapshot, whose date lies between the recompute date and the new snapshot's.
    With replace_customers_column (customer_period_groups) the model also recomputes whole customers,
    whose inputs of their own changed: their rows before the date are replaced as well.
    With keep_unchanged_rows, a recomputed row identical to a stored one is left in place: only the rows
    that differ, disappeared or are new are written (set differences of whole rows). For a model whose
    recomputed window is large but changes little from day to day (every customer's running periods),
    this saves rewriting (and re-indexing) the whole window; the result is the same. Without replace_from_column
    the window is the whole table (a table recomputed whole, written by difference), or, with
    replace_customers_column, when the model's SQL listed the customers it recomputes
    (list_changed_customers), their rows and those of no customer (null). With both columns and
    keep_unchanged_rows, when the model's SQL narrowed the window to some customers
    (list_regrouped_customers), the stored rows of the window compared are theirs only. With
    capture_replaced_rows too, the deleted and the inserted rows are also appended to the model's change
    log for a downstream model that maintains sums by difference (macros/changes.sql).
-#}
{% macro get_incremental_replace_from_sql(arg_dict) -%}
    {%- set column = config.get('replace_from_column') -%}
    {%- set customer_column = config.get('replace_customers_column') -%}
    {%- set target_relation = arg_dict['target_relation'] -%}
    {%- set temp_relation = arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set bound = "current_setting('lens.recompute_from')::date" %}
    {%- if not config.get('keep_unchanged_rows') %}
    delete from {{ target_relation }}
    where {{ config.require('replace_from_column') }} >= {{ bound }}
    {%- if customer_column %}
        or {{ customer_column }} in (
            select {{ customer_column }} from {{ temp_relation }} where {{ column }} < {{ bound }}
        )
    {%- endif %};

    insert into {{ target_relation }} ({{ columns }})
    select {{ columns }}
    from {{ temp_relation }}
    {%- else %}
    {%- set changes = change_log_relation() if config.get('capture_replaced_rows') else none -%}
    {%- set names = arg_dict['dest_columns'] | map(attribute='name') | list -%}
    {%- set prefix = 'lens_' ~ this.identifier %}
    {%- set listed = not column and customer_column and customers_are_listed() %}
    {%- set regrouped = column and customer_column and temp_table_exists(regrouped_customers_table()) %}
    set local work_mem = '{{ var('build_work_mem') }}';

    -- the stored rows of the window, with their physical ids for the delete below
    create temporary table {{ prefix }}__stored on commit drop as
    select ctid as stored_ctid, {{ columns }}
    from {{ target_relation }}
    {%- if listed %}
    -- the customers list_changed_customers listed, and the rows of no customer
    where {{ customer_column }} in (select customer_id from {{ changed_customers_table() }})
    union all
    select ctid, {{ columns }}
    from {{ target_relation }}
    where {{ customer_column }} is null
    {%- elif column %}
    where {{ column }} >= {{ bound }}
    {%- if regrouped %}
        -- only the customers list_regrouped_customers found: the model recomputed the window for them alone
        and {{ customer_column }} in (select customer_id from {{ regrouped_customers_table() }})
    {%- endif %}
    {%- if customer_column %}
    union all
    -- (apart: the customers' rows through the key index, not a scan of the table)
    select ctid, {{ columns }}
    from {{ target_relation }}
    where {{ column }} < {{ bound }}
        and {{ customer_column }} in (
            select {{ customer_column }} from {{ temp_relation }} where {{ column }} < {{ bound }}
        )
    {%- endif %}
    {%- endif %};

    -- what changed: recomputed rows not stored as they are, stored rows not recomputed as they are
    create temporary table {{ prefix }}__inserted on commit drop as
    select {{ columns }} from {{ temp_relation }}
    except all
    select {{ columns }} from {{ prefix }}__stored;

    create temporary table {{ prefix }}__deleted on commit drop as
    select {{ columns }} from {{ prefix }}__stored
    except all
    select {{ columns }} from {{ temp_relation }};

    -- (the rows compared as text: hashed, and equal whatever nulls they hold)
    delete from {{ target_relation }}
    where ctid = any(array(
        select stored.stored_ctid
        from {{ prefix }}__stored as stored
        where ({{ qualified_columns('stored', names) }})::text in (
            select ({{ qualified_columns('deleted', names) }})::text from {{ prefix }}__deleted as deleted
        )
    ));
    {%- if changes %}

    -- (two statements: a row's deletion is logged before its new version)
    insert into {{ changes }} ({{ columns }}, change_kind)
    select {{ columns }}, 'deleted' from {{ prefix }}__deleted;

    insert into {{ changes }} ({{ columns }}, change_kind)
    select {{ columns }}, 'inserted' from {{ prefix }}__inserted;
    {%- endif %}

    insert into {{ target_relation }} ({{ columns }})
    select {{ columns }}
    from {{ prefix }}__inserted
    {%- endif %}
{%- endmacro %}

{#- `names` (quoted) prefixed with `alias`, comma-separated. -#}
{% macro qualified_columns(alias, names) -%}
    {%- for name in names %}{{ alias }}.{{ adapter.quote(name) }}{{ ', ' if not loop.last }}{% endfor -%}
{%- endmacro %}

{#-
    pre-hook of every replace_from model: its recompute_from date as the transaction's setting
    lens.recompute_from ('-infinity' = everything), for the strategy's delete. The inputs are tables
    built earlier in the run and the ledger changes only in the model's post-hook, so this is the date
    the model's SQL was compiled with.
-#}
{% macro set_recompute_from(inputs_sql) -%}
    {%- if is_incremental() -%}
    {%- set recompute_from_date = recompute_from(inputs_sql) -%}
    {%- if recompute_from_date and execute -%}
        {%- do log(this.identifier ~ ': recomputing from ' ~ recompute_from_date, info=true) -%}
    {%- endif -%}
    select set_config('lens.recompute_from', '{{ recompute_from_date or "-infinity" }}', true)
    {%- endif -%}
{%- endmacro %}

{#-
    Per-customer inputs (customer_period_groups): a fingerprint per customer of what its rows depend on
    beyond the calendar and the segment history, recorded in _lens_build_customers after each build. A
    customer whose fingerprint changed (an episode that starts or ends differently, a new customer) has
    all its rows recomputed; the others only from the model's recompute_from date on.
-#}
{% macro create_build_customers_ledger() -%}
    {{ lock_build_ledgers() }};
    create table if not exists {{ target.schema }}._lens_build_customers (
        model_name text not null,
        customer_id bigint not null,
        fingerprint text not null,
        recorded_at timestamptz not null default now(),
        primary key (model_name, customer_id)
    );
    -- older ledgers lack recorded_at (checked first: ALTER TABLE would lock the ledger for every model)
    do $$
    begin
        if not exists (
            select 1 from information_schema.columns
            where table_schema = '{{ target.schema }}'
                and table_name = '_lens_build_customers'
                and column_name = 'recorded_at'
        ) then
            alter table {{ target.schema }}._lens_build_customers
                add column recorded_at timestamptz not null default now();
        end if;
    end
    $$
{%- endmacro %}

{% macro changed_customers_sql(fingerprints_sql) -%}
    {%- set has_ledger = adapter.get_relation(this.database, target.schema, '_lens_build_customers') is not none %}
    select current_customers.customer_id
    from ({{ fingerprints_sql }}) as current_customers
    {%- if has_ledger %}
    left join {{ target.schema }}._lens_build_customers as recorded
        on recorded.model_name = '{{ this.identifier }}'
            and recorded.customer_id = current_customers.customer_id
    where recorded.fingerprint is distinct from current_customers.fingerprint
    {%- endif %}
{%- endmacro %}

{#- The temporary tables of list_changed_customers for the running model, schema-qualified. -#}
{% macro changed_customers_table() -%}
    {{ return('pg_temp.lens_changed__' ~ this.identifier) }}
{%- endmacro %}

{% macro customer_fingerprints_table() -%}
    {{ return('pg_temp.lens_customers__' ~ this.identifier) }}
{%- endmacro %}

{#- Whether the temporary table `table` (pg_temp.<name>) exists in this session (false when not executing). -#}
{% macro temp_table_exists(table) -%}
    {{ return(execute and run_query("select to_regclass('" ~ table ~ "') is not null").columns[0].values()[0]) }}
{%- endmacro %}

{#- Whether list_changed_customers listed the running model's customers in this transaction. -#}
{% macro customers_are_listed() -%}
    {{ return(temp_table_exists(changed_customers_table())) }}
{%- endmacro %}

{#- A literal bigint[] of `ids` (the planner sees how many there are). -#}
{% macro bigint_array(ids) -%}
    '{ {{- ids | join(',') -}} }'::bigint[]
{%- endmacro %}

{#-
    Models recomputed per customer (int_customer_events_aggregated_to_months): a fingerprint per customer of
    the model's own input rows, compared as the model compiles with the one recorded in
    _lens_build_customers by its last build. Returns true when the customers to recompute are known: then
    pg_temp.lens_changed__<model> lists them (fingerprint changed, new, or no rows any more) and
    pg_temp.lens_customers__<model> holds the current fingerprints for the post-hook
    record_customer_fingerprints; both live until the model's transaction ends. Returns false (recompute
    everyone) on a full build, or without a recorded fingerprint for this model.
-#}
{% macro list_changed_customers(fingerprints_sql) -%}
    {%- if not (execute and this is not none and is_incremental()) -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set ledger = adapter.get_relation(this.database, target.schema, '_lens_build_customers') -%}
    {%- if ledger is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set recorded = run_query(
        "select exists (select 1 from " ~ ledger ~ " where model_name = '" ~ this.identifier ~ "')"
    ).columns[0].values()[0] -%}
    {%- if not recorded -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set customers = customer_fingerprints_table() -%}
    {%- set changed = changed_customers_table() -%}
    {%- do run_query(
        'drop table if exists ' ~ customers ~ '; drop table if exists ' ~ changed ~ ';'
        ~ ' create temporary table ' ~ customers.split('.')[1] ~ ' on commit drop as'
        ~ ' select customer_id, fingerprint from (' ~ fingerprints_sql ~ ') as current_customers;'
        ~ ' create temporary table ' ~ changed.split('.')[1] ~ ' on commit drop as'
        ~ ' select coalesce(current_customers.customer_id, recorded.customer_id) as customer_id'
        ~ ' from ' ~ customers ~ ' as current_customers'
        ~ ' full outer join (select customer_id, fingerprint from ' ~ ledger
        ~ " where model_name = '" ~ this.identifier ~ "') as recorded"
        ~ ' on current_customers.customer_id = recorded.customer_id'
        ~ ' where current_customers.fingerprint is distinct from recorded.fingerprint;'
        ~ ' analyze ' ~ changed
    ) -%}
    {#- outside a transaction block the tables are gone at once: then recompute everyone -#}
    {{ return(customers_are_listed()) }}
{%- endmacro %}

{#-
    post-hook of the models that call list_changed_customers: record the current fingerprints and forget
    the customers that have no input rows any more. After list_changed_customers, only the customers it
    listed, from its tables; on a full build, every customer (`fingerprints_sql`, computed once here).
-#}
{% macro record_customer_fingerprints(fingerprints_sql) -%}
    {%- set customers = customer_fingerprints_table() -%}
    {%- set changed = changed_customers_table() -%}
    {%- set listed = customers_are_listed() -%}
    {%- if not listed %}
    drop table if exists {{ customers }};
    create temporary table {{ customers.split('.')[1] }} on commit drop as
    select customer_id, fingerprint from ({{ fingerprints_sql }}) as current_customers;
    {%- endif %}
    {%- set current_sql -%}
        select customer_id, fingerprint from {{ customers }}
        {%- if listed %}
        where customer_id in (select customer_id from {{ changed }})
        {%- endif %}
    {%- endset %}
    {{ record_build_customers(current_sql) }};
    delete from {{ target.schema }}._lens_build_customers as recorded
    where recorded.model_name = '{{ this.identifier }}'
        {%- if listed %}
        and recorded.customer_id in (select customer_id from {{ changed }})
        {%- endif %}
        and not exists (
            select 1 from {{ customers }} as current_customers
            where current_customers.customer_id = recorded.customer_id
        )
{%- endmacro %}

{#-
    SQL condition: `column` is one of the customers changed_customers_sql finds, which it runs now (as the
    model compiles; the ledger changes only in the model's post-hooks). Written as a literal list, so the
    planner knows how few rows match and reads them through the key index: as a subquery, it expects
    every customer and reads every row. Beyond var('tested_keys_limit') customers, or when not executing,
    the subquery itself.
-#}
{% macro changed_customers_condition(column, fingerprints_sql) -%}
    {%- set query = changed_customers_sql(fingerprints_sql) -%}
    {%- set ids = run_query(query).columns[0].values() | list if execute else none -%}
    {%- if ids is not none and ids | length <= var('tested_keys_limit') | int -%}
    {{ column }} = any({{ bigint_array(ids) }})
    {%- else -%}
    {{ column }} in ({{ query }})
    {%- endif -%}
{%- endmacro %}

{% macro record_build_customers(fingerprints_sql) -%}
    {{ create_build_customers_ledger() }};
    insert into {{ target.schema }}._lens_build_customers as recorded (model_name, customer_id, fingerprint)
    select '{{ this.identifier }}', customer_id, fingerprint
    from ({{ fingerprints_sql }}) as current_customers
    on conflict (model_name, customer_id) do update
        set fingerprint = excluded.fingerprint, recorded_at = excluded.recorded_at
        where recorded.fingerprint is distinct from excluded.fingerprint
{%- endmacro %}

{#- customer_period_groups' per-customer inputs: creation date and episodes (starts, ends). -#}
{% macro customer_group_fingerprints() -%}
    select
        customers.customer_id,
        md5(
            coalesce(customers.created_date::text, '') || '|'
            || coalesce(
                string_agg(
                    (episodes.episode_number, episodes.episode_started_date, episodes.covered_until_date)::text,
                    ',' order by episodes.episode_number
                ),
                ''
            )
        ) as fingerprint
    from (
        select customer_id, {{ to_utc_date('created_at') }} as created_date
        from {{ ref('stg_sales__customers') }}
    ) as customers
    left join {{ ref('customer_episodes') }} as episodes
        on customers.customer_id = episodes.customer_id
    group by customers.customer_id, customers.created_date
{%- endmacro %}

{#-
    customer_period_groups' segment or value tier (`column`) of a customer period, from its segment
    snapshot `segments` (left-joined: customer_id null = no snapshot): 'unsegmented' without one, a value
    tier unknown without costs. The model and list_regrouped_customers must assign alike.
-#}
{% macro period_group_segment(segments, column) -%}
    {%- if column == 'rfm_segment' -%}
    coalesce({{ segments }}.rfm_segment, case when {{ segments }}.customer_id is null then 'unsegmented' end)
    {%- else -%}
    case when {{ segments }}.customer_id is null then 'unsegmented' else coalesce({{ segments }}.value_tier, 'unknown') end
    {%- endif -%}
{%- endmacro %}

{#- The temporary table of list_regrouped_customers for the running model, schema-qualified. -#}
{% macro regrouped_customers_table() -%}
    {{ return('pg_temp.lens_regrouped__' ~ this.identifier) }}
{%- endmacro %}

{#-
    customer_period_groups: which customers' rows in the recomputed window (the periods ending on or after
    `recompute_from_date`) can differ from the stored ones. Called after list_changed_customers has listed
    the customers whose episodes or creation date changed. A row of the window depends, beyond those, on
    the customer's segment snapshot of the period (a daily build replaces the running snapshot, and a late
    purchase the snapshots after it), on the period's end and on its snapshot date (the as-of date for
    the running periods: an episode that starts after the last build's as-of date makes the customer
    active and perhaps new in them). So the customers are:
      - those list_changed_customers listed;
      - those whose stored segment or value tier of a window period differs from their segment snapshot
        of that period now (compared through the snapshot's key: a join, not a recomputation);
      - those with an episode starting on or after `recompute_from_date` (no later than the last as-of
        date: recompute_from is at most that).
    The attribute group is brought up to date by the post-hook update_current_attributes for every row.
    When the window's periods are not those stored (a new month, quarter or year begins; the as-of date
    went back), every customer is recomputed: returns false. Else fills
    pg_temp.lens_regrouped__<model> (dropped on commit) and returns true.
-#}
{% macro list_regrouped_customers(recompute_from_date) -%}
    {%- if not (execute and recompute_from_date and customers_are_listed()) -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set window_periods -%}
        select period_type, period_start_date, period_end_date, segment_snapshot_date
        from {{ ref('int_periods_generated') }}
        where period_type in ('month', 'quarter', 'year')
            and period_end_date >= '{{ recompute_from_date }}'
    {%- endset -%}
    {%- set periods_differ = run_query(
        'select count(*) from (select distinct period_type, period_start_date, period_end_date from ' ~ this
        ~ " where period_end_date >= '" ~ recompute_from_date ~ "') as stored"
        ~ ' full outer join (' ~ window_periods ~ ') as recomputed'
        ~ ' on stored.period_type = recomputed.period_type'
        ~ ' and stored.period_start_date = recomputed.period_start_date'
        ~ ' and stored.period_end_date = recomputed.period_end_date'
        ~ ' where stored.period_type is null or recomputed.period_type is null'
    ).columns[0].values()[0] > 0 -%}
    {%- if periods_differ -%}
        {{ return(false) }}
    {%- endif -%}
    {#- the window's segment snapshots, few, as a literal list: the planner then reads them by the snapshot
        index and hashes them, instead of looking up each stored row's snapshot by key -#}
    {%- set snapshot_dates = run_query(
        "select coalesce(array_agg(distinct segment_snapshot_date::text), '{}')::text from (" ~ window_periods
        ~ ") as window_periods where segment_snapshot_date is not null"
    ).columns[0].values()[0] -%}
    {%- set regrouped = regrouped_customers_table() -%}
    {%- set query -%}
        drop table if exists {{ regrouped }};
        -- (it underestimates the stored rows of the window, and would look their snapshots up one by one)
        set local enable_nestloop = off;
        create temporary table {{ regrouped.split('.')[1] }} on commit drop as
        with

        window_periods as (
            {{ window_periods }}
        ),

        stored as (
            select customer_id, period_type, period_start_date, rfm_segment, value_tier
            from {{ this }}
            where period_end_date >= '{{ recompute_from_date }}'
        ),

        regrouped as (
            select stored.customer_id
            from stored
            inner join window_periods
                on stored.period_type = window_periods.period_type
                    and stored.period_start_date = window_periods.period_start_date
            left join (
                select customer_id, snapshot_date, rfm_segment, value_tier
                from {{ ref('customer_segments') }}
                where snapshot_date = any('{{ snapshot_dates }}'::date[])
            ) as segments
                on stored.customer_id = segments.customer_id
                    and window_periods.segment_snapshot_date = segments.snapshot_date
            where (stored.rfm_segment, stored.value_tier) is distinct from (
                {{ period_group_segment('segments', 'rfm_segment') }},
                {{ period_group_segment('segments', 'value_tier') }}
            )
        )

        select customer_id from regrouped
        union
        select customer_id from {{ ref('customer_episodes') }}
        where episode_started_date >= '{{ recompute_from_date }}'
        union
        select customer_id from {{ changed_customers_table() }};
        set local enable_nestloop to default;
        analyze {{ regrouped }}
    {%- endset -%}
    {%- do run_query(query) -%}
    {{ return(temp_table_exists(regrouped)) }}
{%- endmacro %}

{#-
    The dated inputs of customer_period_groups: purchase days by date, the as-of date, the first period
    the segment history rewrites (customer_segments changes from there on: a restatement reaches back),
    and as 'config' the grain and the group attribute var (its per-customer inputs:
    customer_group_fingerprints).
-#}
{% macro customer_group_build_inputs() -%}
    select 'purchase_days@' || purchase_date::text as input_key, fingerprint
    from {{ ref('int_customer_purchase_days_fingerprinted') }}
    union all
    select 'as_of', as_of_date::text
    from {{ ref('int_as_of_date') }}
    union all
    select 'segments_rewritten_from@' || rewrite_from_date::text, 'rewritten'
    from {{ ref('int_periods_open') }}
    union all
    select 'config', md5('{{ snapshot_grain() | trim }}|{{ group_attribute_column() | trim }}')
{%- endmacro %}

{#-
    post-hook of the marts that carry current customer attributes on history rows: rows built before
    an attribute changed get the current value. assignments: {mart column: SQL expression over
    `customers` (stg_sales__customers)}. Only rows whose values differ are written; no-op on full builds.
    A customer's attributes change only when a version of their record is loaded, so an incremental
    build looks only at the rows of the customers loaded since its last build (loaded_since; the model
    records loaded_through here), through the mart's key index, instead of comparing every customer's
    values; without a record, at all rows. The customers are read as a literal list: the planner then
    reads their rows through the key index (a subquery would make it compare every row).
-#}
{% macro update_current_attributes(assignments, key='customer_id') -%}
    {%- set loaded = none -%}
    {%- if execute and is_incremental() -%}
        {%- set since = loaded_since(ref('stg_sales__load_batches'), ['customers']) -%}
        {%- if since != "'-infinity'::timestamptz" -%}
            {%- set loaded = run_query(
                "select distinct customer_id from " ~ source('sales', 'customers') ~ " where _loaded_at >= " ~ since
            ).columns[0].values() | list -%}
        {%- endif -%}
    {%- endif %}
    {%- if is_incremental() and (loaded is none or loaded | length > 0) %}
    update {{ this }} as target
    set
        {%- for column, expression in assignments.items() %}
        {{ column }} = {{ expression }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('stg_sales__customers') }} as customers
    where target.{{ key }} = customers.customer_id
        {%- if loaded is not none %}
        and target.{{ key }} = any({{ bigint_array(loaded) }})
        and customers.customer_id = any({{ bigint_array(loaded) }})
        {%- endif %}
        and ({% for column in assignments.keys() %}target.{{ column }}{{ ', ' if not loop.last }}{% endfor %})
        is distinct from ({% for expression in assignments.values() %}{{ expression }}{{ ', ' if not loop.last }}{% endfor %});
    {%- endif %}
    {{ record_loaded_through() }}
{%- endmacro %}

{#-
    Models rebuilt per customer from what touched them (int_customer_purchase_days_aggregated,
    customer_episodes): each row depends on one customer's records and on the as-of date, so an
    incremental build recomputes only the customers whose records a load touched since the model's last
    build (loaded_since) or whose rows the as-of date's move can change, and writes by difference
    (replace_from with replace_customers_column and keep_unchanged_rows). Unlike list_changed_customers
    no fingerprint of every customer is computed: the candidates come from the raw layer's load stamps
    and from date ranges, each read through an index or a small table.

    The inputs recorded after each build (record_build_inputs): the as-of date and, as 'config', the vars
    the rows depend on (`config_text`). A changed config or no record recomputes every customer.
-#}
{% macro customer_build_inputs(config_text='') -%}
    select 'as_of' as input_key, as_of_date::text as fingerprint
    from {{ ref('int_as_of_date') }}
    union all
    select 'config', md5('{{ config_text }}')
{%- endmacro %}

{#-
    The dates the as-of date moved over since the model's last build, as {'after': d0, 'through': d1}
    (a row whose date lies in (d0, d1] may be in or out now; d0 < d1, or equal when it did not move), or
    none when every customer is to be recomputed (not an incremental run, no record, a config change).
-#}
{% macro as_of_moved(inputs_sql) -%}
    {%- set after = recompute_from(inputs_sql) -%}
    {%- if after is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set through = run_query(
        "select greatest(max(recorded.fingerprint::date), (select as_of_date from " ~ ref('int_as_of_date') ~ "))::text"
        ~ " from " ~ target.schema ~ "._lens_build_inputs as recorded"
        ~ " where recorded.model_name = '" ~ this.identifier ~ "' and recorded.input_key = 'as_of'"
    ).columns[0].values()[0] -%}
    {{ return({'after': after, 'through': through}) }}
{%- endmacro %}

{#-
    Fill pg_temp.lens_changed__<model> (changed_customers_table, dropped on commit) with the distinct
    customers of `candidates_sql` and return true, so the model recomputes them alone and the strategy
    compares their stored rows only; false outside a transaction (recompute everyone).
-#}
{% macro list_touched_customers(candidates_sql) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set changed = changed_customers_table() -%}
    {%- do run_query(
        'drop table if exists ' ~ changed ~ ';'
        ~ ' create temporary table ' ~ changed.split('.')[1] ~ ' on commit drop as'
        ~ ' select distinct customer_id from (' ~ candidates_sql ~ ') as candidates'
        ~ ' where customer_id is not null;'
        ~ ' analyze ' ~ changed
    ) -%}
    {%- set listed = customers_are_listed() -%}
    {%- if listed -%}
        {%- set count = run_query('select count(*) from ' ~ changed).columns[0].values()[0] -%}
        {%- do log(this.identifier ~ ': recomputing ' ~ count ~ ' customers', info=true) -%}
    {%- endif -%}
    {{ return(listed) }}
{%- endmacro %}

{#-
    The customers whose purchase days can differ from the last build's: every customer any version of an
    order had, for the orders whose header or lines were loaded since `since` (a corrected order may
    change hands); the customers loaded since (their orders may match now); the customers of the orders
    dated within the as-of date's move (`as_of_range`, from as_of_moved).
-#}
{% macro sales_customers_touched(since, as_of_range) -%}
    select order_versions.customer_id
    from {{ source('sales', 'orders') }} as order_versions
    where order_versions.order_id in (
        {{ order_ids_loaded_since(since) | indent(8) }}
    )
    union all
    select customer_id
    from {{ source('sales', 'customers') }}
    where _loaded_at >= {{ since }}
    union all
    select customer_id
    from {{ ref('orders') }}
    where order_date > '{{ as_of_range.after }}'::date
        and order_date <= '{{ as_of_range.through }}'::date
{%- endmacro %}

{#-
    The customers any of whose own records or derived rows can differ from the calling model's last
    build (int_customer_losses_stored, int_customer_events_aggregated_to_months): those of
    customer_episodes' candidates (sales_customers_touched, the contract terms loaded since, the episodes
    ending and the terms starting within the as-of date's move), the renewals signed within it, the
    tickets and survey answers loaded since or dated within it (through every version's customer id,
    e-mail or rated order), and the referrers of all of them. A
    ticket or answer found by email may have belonged, at the last build, to another customer: every
    customer who now holds an email that any version of such a record, or of a customer loaded since,
    carries is listed too (an email's owner changes only when a customer record is loaded).
-#}
{% macro customer_inputs_touched(as_of_range) -%}
    {%- set sales_since = loaded_since(ref('stg_sales__load_batches'), ['orders', 'order_lines', 'customers', 'contracts']) -%}
    {%- set service_since = loaded_since(ref('stg_service__load_batches'), ['tickets']) -%}
    {%- set survey_since = loaded_since(ref('stg_survey__load_batches'), ['responses']) -%}
    {%- set after = "'" ~ as_of_range.after ~ "'::date" -%}
    {%- set through = "'" ~ as_of_range.through ~ "'::date" -%}
    {#- raw versions are read directly where a superset does (every version instead of the latest): the
        staging views would sort every record of the source first -#}
    with

    response_versions as (
        -- every version of the survey answers loaded since
        select
            nullif(trim(customer_ref), '') as customer_ref,
            order_id
        from (
            select
                {{ optional_column(source('survey', 'responses'), 'customer_ref', 'text') }},
                {{ optional_column(source('survey', 'responses'), 'order_id', 'bigint') }}
            from {{ source('survey', 'responses') }}
            where trim(response_id) in (
                select trim(response_id)
                from {{ source('survey', 'responses') }}
                where _loaded_at >= {{ survey_since }}
            )
        ) as raw_responses
    ),

    ticket_versions as (
        -- every version of the tickets loaded since (an array: the ticket ids reach the version index)
        select
            requester_email,
            requester_customer_id
        from {{ ref('stg_service__ticket_versions') }}
        where ticket_id = any(array(
            select ticket_id
            from {{ source('service', 'tickets') }}
            where _loaded_at >= {{ service_since }}
        ))
    ),

    customer_versions as (
        select
            customer_id,
            nullif(lower(trim(email)), '') as email,
            referred_by_customer_id
        from (
            select
                customer_id,
                {{ optional_column(source('sales', 'customers'), 'email', 'text') }},
                {{ optional_column(source('sales', 'customers'), 'referred_by_customer_id', 'bigint') }}
            from {{ source('sales', 'customers') }}
        ) as raw_customers
    ),

    emails_touched as (
        select customer_versions.email
        from customer_versions
        where customer_versions.customer_id = any(array(
            select customer_id
            from {{ source('sales', 'customers') }}
            where _loaded_at >= {{ sales_since }}
        ))
        union
        select requester_email
        from ticket_versions
        union
        select lower(customer_ref)
        from response_versions
        where customer_ref like '%@%'
    ),

    touched as (
        {{ sales_customers_touched(sales_since, as_of_range) | indent(8) }}
        union all
        {{ contract_customers_touched(sales_since, as_of_range) | indent(8) }}
        union all
        select customer_id
        from {{ ref('customer_episodes') }}
        where covered_until_date > {{ after }} and covered_until_date <= {{ through }}
        union all
        select customer_id
        from {{ ref('int_tickets_matched') }}
        where created_date > {{ after }} and created_date <= {{ through }}
        union all
        select customer_id
        from {{ ref('int_survey_responses_matched') }}
        where submitted_date > {{ after }} and submitted_date <= {{ through }}
        union all
        select customer_ref::bigint
        from response_versions
        where customer_ref ~ '^[0-9]{1,18}$'
        union all
        select customer_id
        from {{ ref('orders') }}
        where order_id in (select order_id from response_versions where customer_ref is null)
        union all
        select requester_customer_id
        from ticket_versions
        union all
        -- everyone who holds, or held, an email touched
        select customer_id
        from customer_versions
        where email in (select email from emails_touched)
    )

    select customer_id
    from touched
    union all
    -- a referral counts for the referrer: the referrers, now and before, of everyone above
    select customer_versions.referred_by_customer_id
    from customer_versions
    where customer_versions.customer_id in (select customer_id from touched)
{%- endmacro %}

{#- What int_customer_losses_stored's rows depend on beyond its customers' records: its vars, the loss rule's. -#}
{% macro losses_config_text() -%}
    {{ return([
        var('lost_after_days'), var('complaint_window_days'), var('exit_survey_window_days'), sales_costs_recorded(),
    ] | join('|')) }}
{%- endmacro %}

{#-
    The customers list_touched_customers listed, as an SQL bigint[]: a literal (the planner sees how few
    there are) up to var('tested_keys_limit') customers, else an array built from the temporary table.
-#}
{% macro listed_customer_ids() -%}
    {%- set table = changed_customers_table() -%}
    {%- set row = run_query(
        'select count(*) as customers, array_agg(customer_id order by customer_id)::text as ids from ' ~ table
    ).rows[0] -%}
    {%- if row['customers'] <= var('tested_keys_limit') | int -%}
        {{ return("'" ~ (row['ids'] or '{}') ~ "'::bigint[]") }}
    {%- endif -%}
    {{ return('(select array_agg(customer_id) from ' ~ table ~ ')') }}
{%- endmacro %}

{#-
    The customers whose contract terms can differ from the last build's: every customer any version of a
    term loaded since `since` had, and those of the terms (any version) starting or signed within the
    as-of date's move (`as_of_range`).
-#}
{% macro contract_customers_touched(since, as_of_range) -%}
    {%- set after = "'" ~ as_of_range.after ~ "'::date" -%}
    {%- set through = "'" ~ as_of_range.through ~ "'::date" -%}
    select contract_versions.customer_id
    from {{ source('sales', 'contracts') }} as contract_versions
    where contract_versions.contract_id in (
        select contract_id
        from {{ source('sales', 'contracts') }}
        where _loaded_at >= {{ since }}
    )
        or (contract_versions.start_date > {{ after }} and contract_versions.start_date <= {{ through }})
        -- (signed_at is the source's created_at)
        or ({{ to_utc_date('contract_versions.created_at') }} > {{ after }}
            and {{ to_utc_date('contract_versions.created_at') }} <= {{ through }})
{%- endmacro %}

{#-
    The calling per-customer model's listing in one call: the as-of date's move since its last build
    (as_of_moved over customer_build_inputs(config_text)), then its candidates, `candidates` (a macro
    taking that range, rendered even when every customer is recomputed, so that its refs are
    dependencies), listed by list_touched_customers. Returns whether the customers are listed (false:
    recompute everyone).
-#}
{% macro list_customers_touched(candidates, config_text='') -%}
    {%- set as_of_range = as_of_moved(customer_build_inputs(config_text)) -%}
    {%- set candidates_sql = candidates(as_of_range or {'after': 'infinity', 'through': 'infinity'}) -%}
    {{ return(as_of_range is not none and list_touched_customers(candidates_sql)) }}
{%- endmacro %}

{#- list_customers_touched's candidates of the purchase days and their sums (sales_customers_touched). -#}
{% macro purchase_customers_touched(as_of_range) -%}
    {{ sales_customers_touched(
        loaded_since(ref('stg_sales__load_batches'), ['orders', 'order_lines', 'customers']), as_of_range
    ) }}
{%- endmacro %}

{#-
    customer_episodes' candidates for list_customers_touched: the purchase days' and the contract terms'
    (since its last build), and its own episodes whose coverage ends within the as-of date's move (lost
    now, or not any more when the date went back). Reads `this`: for customer_episodes only.
-#}
{% macro episode_customers_touched(as_of_range) -%}
    {%- set since = loaded_since(ref('stg_sales__load_batches'), ['orders', 'order_lines', 'customers', 'contracts']) -%}
    {{ sales_customers_touched(since, as_of_range) }}
    union all
    {{ contract_customers_touched(since, as_of_range) }}
    union all
    select customer_id
    from {{ this }}
    where covered_until_date > '{{ as_of_range.after }}'::date
        and covered_until_date <= '{{ as_of_range.through }}'::date
{%- endmacro %}
