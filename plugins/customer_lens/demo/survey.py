"""The survey export of one chunk: NPS, CSAT, renewal and exit responses as CSV lines.

- ``nps``: every active customer is invited ~45 days after (re)joining and then every ~6 months;
  about a quarter answer. The score follows the hidden ``happiness`` trait and drops by ~3 points
  when the customer complained in the 90 days before answering, so detractors (0-6) are far
  likelier after a complaint.
- ``csat``: ~15% of solved tickets get a 1-5 rating a few hours to days later, consistent with the
  helpdesk satisfaction rating when there is one.
- ``renewal``: half of the contract renewals get a response with the renewal reason.
- ``exit``: ~55% of customers who cancel or let a contract lapse after churning answer with a reason.

Comments are real sentences in the respondent's language (en, pt, tr, ar, hu, de, es), matching
the score's sentiment and, for unhappy respondents, the topic of their last complaint.
``customer_ref`` is the customer id, or (~15% of rows, as when a form asks for an email) the email.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer_lens.demo import formats, phrases, sales, service
from customer_lens.demo.lifecycle import Activity, EventIndex
from customer_lens.demo.population import choose_by_row
from customer_lens.demo.timeline import DAY, Window

KINDS = ("nps", "csat", "renewal", "exit")
NPS, CSAT, RENEWAL, EXIT = range(4)
COLUMNS = (
    "response_id", "customer_ref", "submitted_at", "kind", "nps_score",
    "csat_score", "reason", "would_refer", "comment", "language",
)  # fmt: skip
HEADER = ",".join(COLUMNS) + "\n"
WOULD_REFER = ("yes", "no", "maybe")
REASONS = sales.RENEWAL_REASONS + sales.CANCELLATION_REASONS
EMAIL_REF_SHARE = 0.15
NPS_FIRST_INVITE_DAYS = 45
NPS_INVITE_EVERY_DAYS = 182
RESPONSE_RATE = {NPS: 0.25, CSAT: 0.15, RENEWAL: 0.5, EXIT: 0.55}
COMMENT_RATE = np.array([0.45, 0.30, 0.50, 0.70])
COMPLAINT_EFFECT_DAYS = 90
# would_refer answers (yes, no, maybe, empty) by sentiment: negative, neutral, positive.
WOULD_REFER_BY_SENTIMENT = np.array([[0.02, 0.70, 0.18, 0.10], [0.20, 0.10, 0.60, 0.10], [0.80, 0.00, 0.15, 0.05]])
# Comment topic when a complaint category explains the mood (index = service.CATEGORIES).
TOPIC_BY_CATEGORY = np.array(
    [phrases.COMMENT_TOPICS.index(t) for t in ("price", "delivery", "quality", "support", "support", "general")]
)
TOPIC_BY_REASON = np.array(
    [phrases.COMMENT_TOPICS.index("general")] * len(sales.RENEWAL_REASONS)
    + [
        phrases.COMMENT_TOPICS.index(t)
        for t in ("price", "delivery", "quality", "support", "general", "general", "general")
    ]
)

_COMMENTS = phrases.comment_bank()
_COMMENT_CSV = tuple(formats.csv_quote(text) for text in _COMMENTS.texts)


@dataclass
class Responses:
    """One chunk's survey responses as CSV lines sorted by file day."""

    lines: pa.Array
    day: np.ndarray
    count: int


def _sentiment(kind: np.ndarray, nps: np.ndarray, csat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    negative, neutral, positive = range(3)
    by_nps = np.where(nps >= 9, positive, np.where(nps >= 7, neutral, negative))
    by_csat = np.where(csat >= 4, positive, np.where(csat == 3, neutral, negative))
    by_renewal = np.where(rng.random(len(kind)) < 0.8, positive, neutral)
    return np.choose(kind, [by_nps, by_csat, by_renewal, np.full(len(kind), negative)])


def responses(
    rng: np.random.Generator,
    window: Window,
    customer_id: np.ndarray,
    emails: pa.Array,
    language: np.ndarray,
    size: np.ndarray,
    happiness: np.ndarray,
    activity: Activity,
    tickets: service.Tickets,
    contracts: sales.ContractEvents,
    first_response_id: int,
) -> Responses:
    """All survey responses of one chunk's customers."""
    end = window.end_ts
    # --- who answers what, when --------------------------------------------------------------------
    nps_customer, nps_invite = _nps_invitations(activity, end)
    answered = rng.random(len(nps_customer)) < RESPONSE_RATE[NPS]
    nps_customer, nps_at = nps_customer[answered], nps_invite[answered] + rng.uniform(0, 5 * DAY, answered.sum())

    rated = np.isfinite(tickets.solved_at) & (rng.random(len(tickets.customer)) < RESPONSE_RATE[CSAT])
    csat_ticket = np.flatnonzero(rated)
    csat_at = tickets.solved_at[csat_ticket] + rng.uniform(0.1 * DAY, 3 * DAY, len(csat_ticket))

    renewal_pick = rng.random(len(contracts.renewal_customer)) < RESPONSE_RATE[RENEWAL]
    exit_pick = rng.random(len(contracts.exit_customer)) < RESPONSE_RATE[EXIT]
    renewal_at = contracts.renewal_at[renewal_pick] + rng.uniform(0, 10 * DAY, renewal_pick.sum())
    exit_at = contracts.exit_at[exit_pick] + rng.uniform(0, 5 * DAY, exit_pick.sum())

    customer = np.concatenate(
        [
            nps_customer,
            tickets.customer[csat_ticket],
            contracts.renewal_customer[renewal_pick],
            contracts.exit_customer[exit_pick],
        ]
    )
    submitted = np.floor(np.concatenate([nps_at, csat_at, renewal_at, exit_at]))
    kind = np.repeat(np.arange(4), [len(nps_at), len(csat_at), len(renewal_at), len(exit_at)])
    source_ticket = np.concatenate([np.full(len(nps_at), -1), csat_ticket, np.full(len(renewal_at) + len(exit_at), -1)])
    renewal_reason = np.full(len(customer), -1)
    renewal_reason[kind == RENEWAL] = np.where(
        rng.random(renewal_pick.sum()) < 0.85,
        contracts.renewal_reason[renewal_pick],
        rng.integers(0, len(sales.RENEWAL_REASONS), renewal_pick.sum()),
    )
    renewal_reason[kind == EXIT] = len(sales.RENEWAL_REASONS) + contracts.exit_reason[exit_pick]
    inside = submitted < end
    customer, submitted, kind = customer[inside], submitted[inside], kind[inside]
    source_ticket, reason = source_ticket[inside], renewal_reason[inside]
    n = len(customer)

    # --- scores --------------------------------------------------------------------------------------
    complaints = EventIndex(
        tickets.customer[tickets.complaint], tickets.created[tickets.complaint],
        tickets.category[tickets.complaint], origin=window.start_ts,
    )  # fmt: skip
    recent = complaints.last_before(customer, submitted, COMPLAINT_EFFECT_DAYS * DAY)
    had_complaint = recent >= 0
    z = happiness[customer]
    nps_latent = 8.1 + 1.0 * z + 0.2 * (size[customer] - 2) - 3.0 * had_complaint + rng.normal(0, 1.4, n)
    nps = np.clip(np.round(nps_latent), 0, 10).astype(np.int64)
    ticket = np.maximum(source_ticket, 0)
    rating = np.where(source_ticket >= 0, tickets.satisfaction[ticket], -1)
    csat_latent = (
        4.0 + 0.4 * z - 1.0 * tickets.complaint[ticket] - 0.5 * tickets.reopened[ticket]
        - 0.25 * np.log1p(tickets.resolution_days[ticket]) + rng.normal(0, 0.8, n)
    )  # fmt: skip
    csat = np.clip(np.round(csat_latent), 1, 5).astype(np.int64)
    u = rng.random(n)
    csat = np.where(rating == 0, np.where(u < 0.6, 5, 4), np.where(rating == 1, np.where(u < 0.6, 1, 2), csat))

    # --- answers and comments ------------------------------------------------------------------------
    sentiment = _sentiment(kind, nps, csat, rng)
    would_refer = choose_by_row(rng, WOULD_REFER_BY_SENTIMENT, sentiment)
    would_refer = np.where((kind == CSAT) & (rng.random(n) < 0.7), 3, would_refer)  # mostly skipped on CSAT
    complaint_topic = np.where(had_complaint, TOPIC_BY_CATEGORY[complaints.kind[np.maximum(recent, 0)]], -1)
    random_negative = np.array([phrases.COMMENT_TOPICS.index(t) for t in ("support", "price", "general")])
    random_positive = np.array([phrases.COMMENT_TOPICS.index(t) for t in ("delivery", "support", "general", "general")])
    topic = np.where(
        sentiment == 0,
        np.where(
            kind == EXIT,
            TOPIC_BY_REASON[np.maximum(reason, 0)],
            np.where(complaint_topic >= 0, complaint_topic, random_negative[rng.integers(0, 3, n)]),
        ),
        random_positive[rng.integers(0, 4, n)],
    )
    english = phrases.LANGUAGES.index("en")
    answer_language = np.where(rng.random(n) < 0.85, language[customer], english)
    commented = rng.random(n) < COMMENT_RATE[kind]
    key = (answer_language * len(phrases.SENTIMENTS) + sentiment) * len(phrases.COMMENT_TOPICS) + topic
    comment = formats.labels(_COMMENT_CSV, _COMMENTS.pick(rng, key), commented)

    # --- lines ---------------------------------------------------------------------------------------
    answers = [
        formats.labels(KINDS, kind),
        formats.integers_text(nps, kind == NPS),
        formats.integers_text(csat, kind == CSAT),
        formats.labels(REASONS, np.maximum(reason, 0), reason >= 0),
        formats.labels((*WOULD_REFER, ""), would_refer),
        comment,
        formats.labels(phrases.LANGUAGES, answer_language),
    ]
    return _lines(rng, window, first_response_id, customer_id, emails, customer, submitted, answers)


def _nps_invitations(activity: Activity, end: float) -> tuple[np.ndarray, np.ndarray]:
    """NPS invitations (customer, time): the first some days into each active interval, then at a fixed pace."""
    invite_customer, invite_at = [], []
    for customer, begin, stop in activity.intervals():
        first = begin + NPS_FIRST_INVITE_DAYS * DAY
        until = np.minimum(stop, end)
        count = np.where(until > first, np.floor((until - first) / (NPS_INVITE_EVERY_DAYS * DAY)) + 1, 0).astype(
            np.int64
        )
        who = np.repeat(customer, count)
        nth = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        invite_customer.append(who)
        invite_at.append(np.repeat(first, count) + nth * NPS_INVITE_EVERY_DAYS * DAY)
    return np.concatenate(invite_customer), np.concatenate(invite_at)


def _lines(
    rng: np.random.Generator,
    window: Window,
    first_response_id: int,
    customer_id: np.ndarray,
    emails: pa.Array,
    customer: np.ndarray,
    submitted: np.ndarray,
    answers: list[pa.Array],
) -> Responses:
    """The CSV lines of the responses: id (in time order), who (e-mail or customer id), when, then ``answers``."""
    n = len(customer)
    day = window.day_index(submitted)
    order = np.lexsort((customer, submitted))
    response_id = np.empty(n, dtype=np.int64)
    response_id[order] = first_response_id + np.arange(n)
    by_email = rng.random(n) < EMAIL_REF_SHARE
    reference = pc.if_else(
        pa.array(by_email), emails.take(pa.array(customer)), formats.integers_text(customer_id[customer])
    )
    fields = [
        formats.integers_text(response_id),
        reference,
        formats.iso_timestamps(submitted, suffix="+00:00"),
        *answers,
    ]
    file_order = np.lexsort((response_id, day))
    lines = formats.csv_lines(fields).take(pa.array(file_order))
    return Responses(lines=lines, day=day[file_order], count=n)
