-- Every combination of R, F and M scores (1-5 each) must match at least one rule of the seed, so that no
-- customer can ever be left without a segment. Returns the uncovered combinations.
with

scores as (

    select score
    from generate_series(1, 5) as scores (score)

),

combinations as (

    select
        r_scores.score as r_score,
        f_scores.score as f_score,
        m_scores.score as m_score
    from scores as r_scores
    cross join scores as f_scores
    cross join scores as m_scores

),

rules as (

    select
        r_score_min,
        r_score_max,
        f_score_min,
        f_score_max,
        m_score_min,
        m_score_max
    from {{ ref('rfm_segment_rules') }}

)

select combinations.*
from combinations
where not exists (
        select 1
        from rules
        where combinations.r_score between rules.r_score_min and rules.r_score_max
            and combinations.f_score between rules.f_score_min and rules.f_score_max
            and combinations.m_score between rules.m_score_min and rules.m_score_max
    )
