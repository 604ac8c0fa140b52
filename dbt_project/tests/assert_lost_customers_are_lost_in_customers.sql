-- Every customer whose status is lost in customers must appear in the monthly lost_customer_review on the
-- same lost_date. Returns the customers missing from the review.
with

lost_customers as (

    select
        customer_id,
        lost_date
    from {{ ref('customers') }}
    where customer_status = 'lost'

),

reviewed_losses as (

    select
        customer_id,
        lost_date
    from {{ ref('lost_customer_review') }}
    where period_type = 'month'

)

select lost_customers.*
from lost_customers
left join reviewed_losses
    on lost_customers.customer_id = reviewed_losses.customer_id
        and lost_customers.lost_date = reviewed_losses.lost_date
where reviewed_losses.customer_id is null
