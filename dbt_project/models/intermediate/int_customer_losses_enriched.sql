{#-
    Every loss (an episode of int_customer_episodes_stitched that ended before the as-of date) with what a
    lost-customer review needs: its value (revenue of the 12 months before the loss), the complaints
    around it, the last NPS answer before it, and the stated reason — the cancellation reason of the
    contract that ended, else the reason of the latest exit survey stating one, answered between the last
    purchase and var('exit_survey_window_days') days after the loss.
-#}
{#- The SQL is the macro customer_losses_enriched (int_customer_losses_stored builds it per customer). -#}
{{ customer_losses_enriched() }}
