{#-
    Per customer, the inputs of the BG/NBD and Gamma-Gamma lifetime-value models in the convention of
    the Python `lifetimes` library (summary_data_from_transaction_data with freq='D'), at the as-of date:
      frequency       purchase days - 1 (repeat purchase days)
      recency         days from the first to the last purchase day
      t               days from the first purchase day to the as-of date (lifetimes' T)
      monetary_value  mean revenue of the repeat purchase days (the first day excluded), 0 when none
    A purchase day is a day with at least one completed order; its value is the revenue of that day
    (summed per customer in int_customer_purchases_summarized).
-#}
with

purchases as (

    select
        customer_id,
        first_purchase_date,
        last_purchase_date,
        purchase_days,
        revenue,
        repeat_mean_revenue
    from {{ ref('int_customer_purchases_summarized') }}

),

as_of as (

    select as_of_date
    from {{ ref('int_as_of_date') }}

),

aggregated as (

    select
        customer_id,
        first_purchase_date,
        last_purchase_date,
        purchase_days,
        revenue as total_revenue,
        repeat_mean_revenue
    from purchases

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
