{#-
    Per customer, the inputs of the BG/NBD and Gamma-Gamma lifetime-value models in the convention of
    the Python `lifetimes` library (summary_data_from_transaction_data with freq='D'), at the as-of date:
      frequency       purchase days - 1 (repeat purchase days)
      recency         days from the first to the last purchase day
      t               days from the first purchase day to the as-of date (lifetimes' T)
      monetary_value  mean revenue of the repeat purchase days (the first day excluded), 0 when none
    A purchase day is a day with at least one completed order; its value is the revenue of that day.
-#}
with

purchase_days as (

    select
        customer_id,
        purchase_date,
        revenue
    from {{ ref('int_customer_purchase_days_aggregated') }}

),

as_of as (

    select as_of_date
    from {{ ref('int_as_of_date') }}

),

purchase_days_numbered as (

    select
        *,
        row_number() over (partition by customer_id order by purchase_date) as purchase_day_number
    from purchase_days

),

aggregated as (

    select
        customer_id,
        min(purchase_date) as first_purchase_date,
        max(purchase_date) as last_purchase_date,
        count(*) as purchase_days,
        sum(revenue) as total_revenue,
        avg(revenue) filter (where purchase_day_number > 1) as repeat_mean_revenue
    from purchase_days_numbered
    group by customer_id

),

final as (

    select
        -- keys
        aggregated.customer_id::bigint as customer_id,
        as_of.as_of_date::date as snapshot_date,

        -- lifetimes summary (daily grain, days)
        (aggregated.purchase_days - 1)::integer as frequency,
        (aggregated.last_purchase_date - aggregated.first_purchase_date)::integer as recency,
        (as_of.as_of_date - aggregated.first_purchase_date)::integer as t,
        coalesce(aggregated.repeat_mean_revenue, 0)::numeric(18, 6) as monetary_value,

        -- context
        aggregated.first_purchase_date::date as first_purchase_date,
        aggregated.last_purchase_date::date as last_purchase_date,
        aggregated.purchase_days::integer as purchase_days,
        aggregated.total_revenue::numeric(18, 6) as total_revenue

    from aggregated
    cross join as_of

)

select * from final
