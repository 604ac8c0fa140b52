"""The helpdesk export of one chunk: tickets, and every version of them as NDJSON lines.

Tickets come from two sources. Orders cause delivery, product-quality and billing tickets a few
days after the order (delivery problems rise steeply over the last ~6 months of the window: the
"rising complaint" the complaint marts should catch). Independently, customers open technical,
account, billing and other tickets at a rate that grows with their size. Unhappy customers
(the hidden ``happiness`` trait) open more of both.

Each ticket lives through versions — created (``new``), first reply (``open`` or ``pending``),
``solved``, sometimes reopened (``open``, ``reopen_count`` 1) and solved again, and ``closed`` four
days after the last solve, when the satisfaction rating (if any) is attached. Every version is a
full snapshot written to the file of the UTC day of its ``updated_at``; versions after the window
end have not happened yet. Customers appear by email only; ~3% of tickets carry the address with
a capitalised first letter (helpdesks keep what the requester typed), so match emails
case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer_lens.demo import formats, phrases
from customer_lens.demo import population as pop
from customer_lens.demo.timeline import DAY, HOUR, MONTH, Intensity, Window

CATEGORIES = ("billing", "delivery", "product_quality", "technical", "account", "other")
TYPES = ("question", "incident", "problem", "task", "complaint")
STATUSES = ("new", "open", "pending", "solved", "closed")
CHANNELS = ("email", "phone", "chat", "web", "social")
PRIORITIES = ("low", "normal", "high", "urgent")
SATISFACTION = ("good", "bad")
RISING_CATEGORY = "delivery"
COMPLAINT = TYPES.index("complaint")

_BILLING, _DELIVERY, _QUALITY = (CATEGORIES.index(c) for c in ("billing", "delivery", "product_quality"))
# Type mix per category (columns = TYPES).
TYPE_BY_CATEGORY = np.array(
    [
        [0.55, 0.00, 0.00, 0.10, 0.35],  # billing
        [0.25, 0.00, 0.00, 0.00, 0.75],  # delivery
        [0.05, 0.00, 0.35, 0.00, 0.60],  # product_quality
        [0.35, 0.40, 0.20, 0.05, 0.00],  # technical
        [0.45, 0.00, 0.00, 0.50, 0.05],  # account
        [0.60, 0.00, 0.00, 0.25, 0.15],  # other
    ]
)
# Chance per order of a ticket about it, and days until it is opened (minimum, gamma mean).
ORDER_TICKET_CHANCE = {_BILLING: 0.010, _DELIVERY: 0.025, _QUALITY: 0.012}
ORDER_TICKET_DELAY_DAYS = {_BILLING: (5.0, 16.0), _DELIVERY: (3.0, 6.0), _QUALITY: (2.0, 6.0)}
RISE_START_DAYS = 182  # delivery tickets start rising this many days before the window end ...
RISE_DAYS = 150  # ... and reach their peak multiple after this many days
RISE_FACTOR = 2.5  # extra delivery tickets per order at the peak (x3.5 in total)
# Categories of tickets not caused by a particular order.
OTHER_CATEGORY_WEIGHTS = np.array([0.20, 0.0, 0.0, 0.35, 0.25, 0.20])
CHANNEL_WEIGHTS = np.array([0.45, 0.15, 0.12, 0.25, 0.03])
PRIORITY_BY_WEIGHT = np.array([[0.20, 0.55, 0.20, 0.05], [0.10, 0.45, 0.33, 0.12]])
PRIORITY_SPEED = np.array([1.3, 1.0, 0.6, 0.3])  # multiplies response and resolution times
CAPITALISED_EMAIL_SHARE = 0.03


@dataclass
class Drafts:
    """Tickets that would be opened if every customer stayed active (see ``lifecycle``)."""

    customer: np.ndarray
    created: np.ndarray  # float epoch seconds
    category: np.ndarray
    type: np.ndarray
    order: np.ndarray  # index into the potential orders, -1 = not about an order

    def take(self, keep: np.ndarray) -> Drafts:
        return Drafts(*(getattr(self, f)[keep] for f in ("customer", "created", "category", "type", "order")))


def potential_tickets(
    rng: np.random.Generator,
    intensity: Intensity,
    created: np.ndarray,
    size: np.ndarray,
    happiness: np.ndarray,
    order_customer: np.ndarray,
    order_time: np.ndarray,
) -> Drafts:
    """Tickets about the potential orders plus tickets not tied to an order, for one chunk."""
    window = intensity.window
    # --- about an order --------------------------------------------------------------------------
    n = len(order_customer)
    rise = np.clip((order_time - (window.end_ts - RISE_START_DAYS * DAY)) / (RISE_DAYS * DAY), 0.0, 1.0)
    unhappy = np.exp(-0.3 * happiness[order_customer])
    chance = np.stack(
        [
            ORDER_TICKET_CHANCE[_BILLING] * unhappy,
            ORDER_TICKET_CHANCE[_DELIVERY] * (1.0 + RISE_FACTOR * rise) * unhappy,
            ORDER_TICKET_CHANCE[_QUALITY] * unhappy,
        ],
        axis=1,
    )
    u = rng.random(n)
    bucket = (u[:, None] >= np.cumsum(chance, axis=1)).sum(axis=1)  # 3 = no ticket
    about = np.flatnonzero(bucket < 3)
    category = np.array([_BILLING, _DELIVERY, _QUALITY])[bucket[about]]
    low = np.array([ORDER_TICKET_DELAY_DAYS[c][0] for c in (_BILLING, _DELIVERY, _QUALITY)])[bucket[about]]
    mean = np.array([ORDER_TICKET_DELAY_DAYS[c][1] for c in (_BILLING, _DELIVERY, _QUALITY)])[bucket[about]]
    opened = order_time[about] + (low + rng.gamma(2.0, mean / 2.0)) * DAY
    # --- not about an order ----------------------------------------------------------------------
    end = np.full(len(created), window.end_ts)
    rate = pop.TICKETS_PER_MONTH[size] * np.exp(-0.2 * happiness)
    count = rng.poisson(rate * intensity.mass(created, end) / (MONTH / HOUR))
    customer = np.repeat(np.arange(len(created)), count)
    other_time = intensity.sample(rng, created[customer].astype(np.float64), end[customer])
    other_category = pop.choose_by_row(rng, OTHER_CATEGORY_WEIGHTS[None, :], np.zeros(len(customer), np.int64))

    drafts = Drafts(
        customer=np.concatenate([order_customer[about], customer]),
        created=np.concatenate([opened, other_time]),
        category=np.concatenate([category, other_category]),
        type=np.zeros(len(about) + len(customer), dtype=np.int64),
        order=np.concatenate([about, np.full(len(customer), -1)]),
    )
    drafts.type = pop.choose_by_row(rng, TYPE_BY_CATEGORY, drafts.category)
    return drafts.take(drafts.created < window.end_ts)


class _TicketTexts:
    """Subject/description templates keyed by (category, language, about-an-order), JSON-escaped.

    A template is split around ``{order}`` into a prefix and a suffix, so the text of a ticket is
    ``prefix + order id + suffix`` — a concatenation of columns.
    """

    def __init__(self) -> None:
        parts: dict[str, list[str]] = {"subject_pre": [], "subject_post": [], "text_pre": [], "text_post": []}
        groups: list[list[int]] = []  # template numbers
        for category in CATEGORIES:
            for language in phrases.LANGUAGES:
                for about_order in (False, True):
                    group: list[int] = []  # template numbers
                    for subject, text in phrases.TICKET_TEXTS[category].get(language, []):
                        if ("{order}" in subject) != about_order:
                            continue
                        group.append(len(parts["subject_pre"]))
                        for name, template in (("subject", subject), ("text", text)):
                            pre, _, post = template.partition("{order}")
                            parts[f"{name}_pre"].append(formats.json_escape(pre))
                            parts[f"{name}_post"].append(formats.json_escape(post))
                    groups.append(group)
        english = phrases.LANGUAGES.index("en")

        def fallback(key: int) -> int:
            category, rest = divmod(key, 2 * len(phrases.LANGUAGES))
            about = rest % 2
            same = category * 2 * len(phrases.LANGUAGES) + english * 2
            # English of the same kind, or (for combinations that never occur) the other kind.
            return same + about if groups[same + about] else same + 1 - about

        self.bank = phrases.Bank.from_groups(groups, [fallback(k) for k in range(len(groups))])
        self.parts = {name: tuple(values) for name, values in parts.items()}

    def key(self, category: np.ndarray, language: np.ndarray, about_order: np.ndarray) -> np.ndarray:
        key: np.ndarray = (category * len(phrases.LANGUAGES) + language) * 2 + about_order.astype(np.int64)
        return key


_TEXTS = _TicketTexts()


@dataclass
class Versions:
    """Every ticket version of a chunk as columns, sorted by file day.

    The NDJSON text is ~10x the size of these columns, so it is rendered a slice at a time
    (``lines``) while writing, never for the whole chunk at once.
    """

    ticket: np.ndarray  # index of the version's ticket
    day: np.ndarray  # day index of the file the version goes to
    updated: np.ndarray
    status: np.ndarray
    first_reply_at: np.ndarray
    solved_at: np.ndarray
    reopen_count: np.ndarray
    satisfaction: np.ndarray
    # per ticket
    ticket_id: np.ndarray
    created: np.ndarray
    channel: np.ndarray
    type: np.ndarray
    category: np.ndarray
    priority: np.ndarray
    requester: pa.Array
    subject: pa.Array
    description: pa.Array

    def __len__(self) -> int:
        return len(self.ticket)

    def lines(self, start: int, stop: int) -> pa.Array:
        """The NDJSON lines of versions ``start..stop-1`` (each ending in a newline)."""
        ticket = self.ticket[start:stop]
        per_version = pa.array(ticket)
        rating = self.satisfaction[start:stop]

        def text(values: pa.Array) -> pa.Array:
            return formats.json_string(values)

        def when(values: np.ndarray) -> pa.Array:
            return formats.json_string(formats.iso_timestamps(values, suffix="Z"))

        return formats.ndjson_lines(
            [
                ("ticket_id", formats.integers_text(self.ticket_id[ticket])),
                ("requester_email", text(self.requester.take(per_version))),
                ("created_at", when(self.created[ticket])),
                ("updated_at", when(self.updated[start:stop])),
                ("first_reply_at", when(self.first_reply_at[start:stop])),
                ("solved_at", when(self.solved_at[start:stop])),
                ("status", text(formats.labels(STATUSES, self.status[start:stop]))),
                ("channel", text(formats.labels(CHANNELS, self.channel[ticket]))),
                ("type", text(formats.labels(TYPES, self.type[ticket]))),
                ("category", text(formats.labels(CATEGORIES, self.category[ticket]))),
                ("priority", text(formats.labels(PRIORITIES, self.priority[ticket]))),
                ("reopen_count", formats.integers_text(self.reopen_count[start:stop])),
                ("satisfaction", text(formats.labels(SATISFACTION, np.maximum(rating, 0), rating >= 0))),
                ("subject", text(self.subject.take(per_version))),
                ("description", text(self.description.take(per_version))),
            ]
        )


@dataclass
class Tickets:
    """One chunk's finished tickets: their versions, plus what the surveys need per ticket."""

    versions: Versions
    ticket_count: int
    customer: np.ndarray  # per ticket
    created: np.ndarray
    category: np.ndarray
    complaint: np.ndarray
    solved_at: np.ndarray  # first solve, inf = not solved inside the window
    satisfaction: np.ndarray  # -1 none, else index into SATISFACTION
    reopened: np.ndarray
    resolution_days: np.ndarray


def _texts(
    rng: np.random.Generator,
    category: np.ndarray,
    customer: np.ndarray,
    order_id: np.ndarray,
    emails: pa.Array,
    language: np.ndarray,
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Subject, description and requester e-mail of each ticket (half of them in the customer's language)."""
    n = len(customer)
    english = phrases.LANGUAGES.index("en")
    customer_language = language[customer]
    own_language = (customer_language != english) & (rng.random(n) < 0.5)
    text_language = np.where(own_language, customer_language, english)
    about_order = order_id > 0
    template = _TEXTS.bank.pick(rng, _TEXTS.key(category, text_language, about_order))
    template = np.array(_TEXTS.bank.texts, dtype=np.int64)[template]
    order_text = pc.fill_null(formats.integers_text(order_id, about_order), "")

    def compose(name: str) -> pa.Array:
        pre = formats.labels(_TEXTS.parts[f"{name}_pre"], template)
        post = formats.labels(_TEXTS.parts[f"{name}_post"], template)
        return pc.binary_join_element_wise(pre, order_text, post, "")

    subject, description = compose("subject"), compose("text")
    requester = emails.take(pa.array(customer))
    capitalised = rng.random(n) < CAPITALISED_EMAIL_SHARE
    requester = pc.if_else(pa.array(capitalised), pc.utf8_capitalize(requester), requester)
    return subject, description, requester


def finish(
    rng: np.random.Generator,
    window: Window,
    drafts: Drafts,
    order_id: np.ndarray,
    emails: pa.Array,
    language: np.ndarray,
    size: np.ndarray,
    happiness: np.ndarray,
    first_ticket_id: int,
) -> Tickets:
    """Versions of the kept tickets ``drafts`` (``order_id`` per ticket, 0 = none)."""
    n = len(drafts.customer)
    customer, created = drafts.customer, np.floor(drafts.created)
    sequence = np.lexsort((customer, created))
    ticket_id = np.empty(n, dtype=np.int64)
    ticket_id[sequence] = first_ticket_id + np.arange(n)
    complaint = drafts.type == COMPLAINT

    channel = pop.choose_by_row(rng, CHANNEL_WEIGHTS[None, :], np.zeros(n, np.int64))
    urgent_kind = (complaint | (size[customer] >= pop.SIZES.index("large"))).astype(np.int64)
    priority = pop.choose_by_row(rng, PRIORITY_BY_WEIGHT, urgent_kind)
    speed = PRIORITY_SPEED[priority]
    live = (channel == CHANNELS.index("phone")) | (channel == CHANNELS.index("chat"))
    reply_delay = np.where(
        live, rng.uniform(60.0, 1_800.0, n), np.clip(rng.lognormal(np.log(4 * HOUR), 1.0, n), 300.0, 5 * DAY)
    )
    first_reply = created + np.floor(reply_delay * speed)
    pending = rng.random(n) < 0.3
    solved = first_reply + np.floor(np.clip(rng.lognormal(np.log(1.5 * DAY), 1.0, n) * speed, 600.0, 30 * DAY))
    reopened = rng.random(n) < np.where(complaint, 0.2, 0.1)
    reopen_at = solved + np.floor(rng.uniform(0.2 * DAY, 3 * DAY, n))
    solved_again = reopen_at + np.floor(np.clip(rng.lognormal(np.log(DAY), 0.8, n), 600.0, 20 * DAY))
    last_solve = np.where(reopened, solved_again, solved)
    closed = last_solve + 4 * DAY + np.floor(rng.uniform(0, 2 * HOUR, n))
    resolution_days = (last_solve - created) / DAY
    rated = rng.random(n) < 0.35
    bad_odds = -1.2 + 1.6 * complaint + 0.9 * reopened + 0.4 * np.log1p(resolution_days) - 0.5 * happiness[customer]
    bad = rng.random(n) < 1.0 / (1.0 + np.exp(-bad_odds))
    satisfaction = np.where(rated, bad.astype(np.int64), -1)

    # --- versions: one row per (ticket, event) that happened inside the window -----------------------
    never = np.full(n, np.inf)
    event_times = [
        created,
        first_reply,
        solved,
        np.where(reopened, reopen_at, never),
        np.where(reopened, solved_again, never),
        closed,
    ]
    open_, pending_, solved_, closed_ = (STATUSES.index(s) for s in ("open", "pending", "solved", "closed"))
    event_status = [
        np.full(n, STATUSES.index("new")),
        np.where(pending, pending_, open_),
        np.full(n, solved_),
        np.full(n, open_),
        np.full(n, solved_),
        np.full(n, closed_),
    ]
    event_solved_at = [never, never, solved, never, solved_again, last_solve]
    times = np.stack(event_times, axis=1)
    ticket, event = np.nonzero(times < window.end_ts)
    updated = times[ticket, event]
    day = window.day_index(updated)
    order = np.lexsort((event, ticket_id[ticket], updated, day))
    ticket, event, updated, day = ticket[order], event[order], updated[order], day[order]
    status = np.stack(event_status, axis=1)[ticket, event]
    solved_at = np.stack(event_solved_at, axis=1)[ticket, event]
    first_reply_at = np.where(event >= 1, first_reply[ticket], np.inf)
    reopen_count = ((event >= 3) & reopened[ticket]).astype(np.int64)
    rating = np.where(event == 5, satisfaction[ticket], -1)

    subject, description, requester = _texts(rng, drafts.category, customer, order_id, emails, language)
    versions = Versions(
        ticket=ticket,
        day=day,
        updated=updated,
        status=status,
        first_reply_at=first_reply_at,
        solved_at=solved_at,
        reopen_count=reopen_count,
        satisfaction=rating,
        ticket_id=ticket_id,
        created=created,
        channel=channel,
        type=drafts.type,
        category=drafts.category,
        priority=priority,
        requester=requester,
        subject=subject,
        description=description,
    )
    return Tickets(
        versions=versions,
        ticket_count=n,
        customer=customer,
        created=created,
        category=drafts.category,
        complaint=complaint,
        solved_at=np.where(solved < window.end_ts, solved, np.inf),
        satisfaction=np.where(closed < window.end_ts, satisfaction, -1),
        reopened=reopened,
        resolution_days=resolution_days,
    )
