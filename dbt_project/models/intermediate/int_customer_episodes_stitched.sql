{#-
    The loss rule. A customer is active while covered by
      - a contract term: from its start_date through its end_date, or
      - a purchase day: for var('lost_after_days') days from the purchase — except that a purchase made
        during a term the customer later cancelled covers no further than that cancellation (the
        cancellation is the stronger signal).
    Overlapping or touching coverage is stitched into episodes. An episode that stops before the as-of
    date ends in a loss on its first uncovered day (lost_date): 'contract_cancelled' or 'contract_expired'
    when a contract term ended it (the term ended without a renewal and without purchases carrying the
    customer past it), 'no_purchase' when the last purchase did. A later purchase or contract starts a
    new episode (a win-back). Customers who lapse a contract but keep buying are therefore not lost.
-#}
{#- The SQL is the macro customer_episodes_stitched (customer_episodes builds it per customer). -#}
{{ customer_episodes_stitched() }}
