"""Who the customers are, and what the company sells.

The population is drawn once for the whole dataset as compact numeric arrays (~100 bytes
per customer, ~50 MB at the large scale): acquisition time, size, country, channel, referrer and
the hidden traits that drive behaviour later (``happiness``, contract propensity, order rate).
Text columns (name, email) are only rendered per chunk.

Why the population is global while everything else is chunked: referrals point from a customer to
any *earlier* customer, and "earlier" must hold across chunks. Customer ids are assigned in
acquisition order, so chunk ``k`` holds the ``k``-th slice of customers by acquisition time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer_lens.demo import formats, phrases
from customer_lens.demo.timeline import DAY, Intensity, Window

SIZES = ("micro", "small", "medium", "large", "enterprise")
SIZE_SHARE = np.array([0.38, 0.30, 0.18, 0.10, 0.04])

CHANNELS = ("organic", "paid_search", "referral", "partner", "events", "outbound")
REFERRAL = CHANNELS.index("referral")
# Acquisition channel by size: small firms find us online, large ones through sales and partners.
CHANNEL_BY_SIZE = np.array(
    [
        [0.34, 0.30, 0.16, 0.08, 0.06, 0.06],
        [0.28, 0.25, 0.17, 0.12, 0.08, 0.10],
        [0.20, 0.15, 0.16, 0.17, 0.14, 0.18],
        [0.12, 0.06, 0.14, 0.20, 0.20, 0.28],
        [0.06, 0.02, 0.12, 0.22, 0.22, 0.36],
    ]
)

INDUSTRIES = (
    "retail", "manufacturing", "healthcare", "logistics", "hospitality",
    "education", "software", "construction", "finance", "public_sector",
)  # fmt: skip

# country code -> (weight, language, legal-form suffix, regions)
COUNTRIES: dict[str, tuple[float, str, str, tuple[str, ...]]] = {
    "US": (0.18, "en", "Inc.", ("Northeast", "Midwest", "South", "West")),
    "GB": (0.09, "en", "Ltd", ("London", "North West", "Scotland")),
    "IE": (0.02, "en", "Ltd", ("Leinster", "Munster")),
    "CA": (0.03, "en", "Inc.", ("Ontario", "Quebec", "British Columbia")),
    "AU": (0.02, "en", "Pty Ltd", ("New South Wales", "Victoria")),
    "NL": (0.03, "en", "B.V.", ("Noord-Holland", "Zuid-Holland")),
    "FR": (0.04, "en", "SAS", ("Île-de-France", "Auvergne-Rhône-Alpes")),
    "DE": (0.09, "de", "GmbH", ("Bayern", "Berlin", "Nordrhein-Westfalen")),
    "AT": (0.02, "de", "GmbH", ("Wien", "Tirol")),
    "ES": (0.05, "es", "S.L.", ("Madrid", "Cataluña", "Andalucía")),
    "MX": (0.04, "es", "S.A. de C.V.", ("Ciudad de México", "Jalisco", "Nuevo León")),
    "BR": (0.07, "pt", "Ltda.", ("São Paulo", "Rio de Janeiro", "Minas Gerais")),
    "PT": (0.04, "pt", "Lda.", ("Lisboa", "Porto", "Braga")),
    "TR": (0.08, "tr", "A.Ş.", ("İstanbul", "Ankara", "İzmir")),
    "HU": (0.05, "hu", "Kft.", ("Budapest", "Pest", "Győr-Moson-Sopron")),
    "AE": (0.06, "ar", "", ("Dubai", "Abu Dhabi", "Sharjah")),
    "SA": (0.04, "ar", "", ("Riyadh", "Makkah", "Eastern Province")),
    "EG": (0.04, "ar", "", ("Cairo", "Alexandria", "Giza")),
}
COUNTRY_CODES = tuple(COUNTRIES)
COUNTRY_LANGUAGE = np.array([phrases.LANGUAGES.index(v[1]) for v in COUNTRIES.values()])
REGION_COUNT = np.array([len(v[3]) for v in COUNTRIES.values()])
REGION_OFFSET = np.concatenate([[0], np.cumsum(REGION_COUNT)[:-1]])
REGIONS = tuple(region for v in COUNTRIES.values() for region in v[3])

# Behaviour by size (index = SIZES). Orders per active month, lines per order, units per line,
# base discount, share with an annual contract, monthly churn hazard, win-back chance,
# non-order tickets per active month, and how much a customer of this size is asked for referrals.
ORDERS_PER_MONTH = np.array([0.25, 0.43, 0.72, 1.30, 2.16])
LINES_PER_ORDER = np.array([1.8, 2.4, 3.2, 4.5, 6.0])
UNITS_PER_LINE = np.array([1.5, 2.5, 4.0, 7.0, 11.0])
BASE_DISCOUNT = np.array([0.00, 0.02, 0.05, 0.08, 0.12])
CONTRACT_SHARE = np.array([0.18, 0.32, 0.50, 0.65, 0.80])
CHURN_HAZARD = np.array([0.035, 0.025, 0.015, 0.010, 0.006])
WINBACK_SHARE = np.array([0.18, 0.20, 0.24, 0.28, 0.32])
TICKETS_PER_MONTH = np.array([0.07, 0.10, 0.16, 0.26, 0.45])
REFERRER_WEIGHT = np.array([1.0, 1.5, 3.0, 5.0, 8.0])

EMAIL_LOCAL_PARTS = ("info", "purchasing", "orders", "accounts", "office", "procurement")
_BASE36 = tuple("0123456789abcdefghijklmnopqrstuvwxyz")


@dataclass
class Population:
    """Every customer as parallel arrays, index ``i`` = customer id ``i + 1`` (acquisition order)."""

    created: np.ndarray  # int64 epoch seconds, strictly increasing
    size: np.ndarray  # size at acquisition: drives behaviour
    country: np.ndarray
    region: np.ndarray  # global index into REGIONS, at acquisition
    industry: np.ndarray
    channel: np.ndarray
    referred_by: np.ndarray  # customer id, 0 = none
    happiness: np.ndarray  # hidden satisfaction trait ~ N(0, 1)
    has_contract: np.ndarray
    low_margin: np.ndarray  # large accounts that negotiated deep discounts
    order_rate: np.ndarray  # orders per active month
    changed_at: np.ndarray  # float epoch seconds of the one later profile change, inf = none
    size_now: np.ndarray  # size and region after that change (what the sales table shows)
    region_now: np.ndarray

    def __len__(self) -> int:
        return len(self.created)

    @property
    def language(self) -> np.ndarray:
        language: np.ndarray = COUNTRY_LANGUAGE[self.country]
        return language


def _categorical(rng: np.random.Generator, probabilities: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(probabilities / probabilities.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def choose_by_row(rng: np.random.Generator, table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each entry of ``rows``, a column index drawn with the probabilities of ``table[row]``."""
    cdf = np.cumsum(table / table.sum(axis=1, keepdims=True), axis=1)[rows]
    picks = (rng.random(len(rows))[:, None] >= cdf).sum(axis=1)
    chosen: np.ndarray = np.minimum(picks, table.shape[1] - 1)
    return chosen


def build(rng: np.random.Generator, n: int, window: Window, activity: float) -> Population:
    """Draw ``n`` customers acquired during ``window`` (acquisition grows ~1.8x over the window)."""
    acquisition = Intensity(window, trend=(1.0, 1.8))
    # Sorted uniforms through the (monotone) inverse CDF give sorted times; then make them
    # strictly increasing so "referred by an earlier customer" is unambiguous.
    start = np.full(n, window.start_ts)
    end = np.full(n, window.end_ts - 1.0)
    raw = np.floor(acquisition.sample(rng, start, end, ascending=True)).astype(np.int64)
    created = np.maximum.accumulate(raw - np.arange(n)) + np.arange(n)
    if n and created[-1] >= window.end_ts:
        raise ValueError("more customers than seconds in the window")

    size = _categorical(rng, SIZE_SHARE, n)
    country = _categorical(rng, np.array([v[0] for v in COUNTRIES.values()]), n)
    region = REGION_OFFSET[country] + (rng.random(n) * REGION_COUNT[country]).astype(np.int64)
    industry = rng.integers(0, len(INDUSTRIES), n)
    channel = choose_by_row(rng, CHANNEL_BY_SIZE, size)
    happiness = rng.standard_normal(n)

    # Referrals: an earlier customer, weighted towards big and happy ones (the promoters).
    weight = REFERRER_WEIGHT[size] * np.exp(0.8 * happiness)
    cumulative = np.cumsum(weight)
    channel[(channel == REFERRAL) & (np.arange(n) == 0)] = CHANNELS.index("organic")
    referred = np.flatnonzero(channel == REFERRAL)
    draw = rng.random(len(referred)) * cumulative[referred - 1]
    referrer = np.minimum(np.searchsorted(cumulative, draw, side="right"), referred - 1)
    referred_by = np.zeros(n, dtype=np.int64)
    referred_by[referred] = referrer + 1

    has_contract = rng.random(n) < CONTRACT_SHARE[size]
    low_margin = (size >= SIZES.index("large")) & (rng.random(n) < 0.3)
    order_rate = activity * ORDERS_PER_MONTH[size] * rng.lognormal(0.0, 0.5, n)

    # ~12% of customers change size (mostly growing) or move region once, at least 30 days in.
    earliest = created + 30 * DAY
    changes = (rng.random(n) < 0.12) & (earliest < window.end_ts - DAY)
    changed_at = np.full(n, np.inf)
    changed_at[changes] = earliest[changes] + rng.random(changes.sum()) * (window.end_ts - DAY - earliest[changes])
    size_change = changes & (rng.random(n) < 0.6)
    step = np.where(rng.random(n) < 0.7, 1, -1)
    size_now = np.where(size_change, np.clip(size + step, 0, len(SIZES) - 1), size)
    region_change = changes & ~size_change
    other = (
        REGION_OFFSET[country]
        + (region - REGION_OFFSET[country] + 1 + (rng.random(n) * (REGION_COUNT[country] - 1)).astype(np.int64))
        % REGION_COUNT[country]
    )
    region_now = np.where(region_change, other, region)

    return Population(
        created=created,
        size=size,
        country=country,
        region=region,
        industry=industry,
        channel=channel,
        referred_by=referred_by,
        happiness=happiness,
        has_contract=has_contract,
        low_margin=low_margin,
        order_rate=order_rate,
        changed_at=changed_at,
        size_now=size_now,
        region_now=region_now,
    )


def _base36(values: np.ndarray, width: int) -> pa.Array:
    digits = [formats.labels(_BASE36, (values // 36**k) % 36) for k in reversed(range(width))]
    return pc.binary_join_element_wise(*digits, "")


class _NameParts:
    """Name stems and business words of every language, flattened for index arithmetic."""

    def __init__(self) -> None:
        self.stems = phrases.Bank.from_groups(
            [[d for d, _ in phrases.NAME_STEMS[lang]] for lang in phrases.LANGUAGES], list(range(7))
        )
        self.stem_slugs = [s for lang in phrases.LANGUAGES for _, s in phrases.NAME_STEMS[lang]]
        self.words = phrases.Bank.from_groups(
            [[d for d, _ in phrases.NAME_WORDS[lang]] for lang in phrases.LANGUAGES], list(range(7))
        )
        self.word_slugs = [s for lang in phrases.LANGUAGES for _, s in phrases.NAME_WORDS[lang]]


_NAMES = _NameParts()
_ARABIC = phrases.LANGUAGES.index("ar")


def customer_table(rng: np.random.Generator, population: Population, lo: int, hi: int) -> pa.Table:
    """The ``customers`` rows of customers ``lo..hi-1`` (0-based), with names and emails rendered."""
    ids = np.arange(lo + 1, hi + 1, dtype=np.int64)
    n = hi - lo
    language = population.language[lo:hi]
    stem = _NAMES.stems.pick(rng, language)
    word = _NAMES.words.pick(rng, language)
    suffix = np.array([COUNTRIES[c][2] for c in COUNTRY_CODES], dtype=object)[population.country[lo:hi]]
    stems = formats.labels(_NAMES.stems.texts, stem)
    words = formats.labels(_NAMES.words.texts, word)
    latin = pc.utf8_trim_whitespace(pc.binary_join_element_wise(stems, words, pa.array(suffix.astype(str)), " "))
    # Arabic names read "شركة <stem> <word>" (company <stem> <business>); no Latin legal form.
    arabic = pc.binary_join_element_wise("شركة", stems, words, " ")
    names = pc.if_else(pa.array(language == _ARABIC), arabic, latin)

    # Emails are unique: the domain carries a scrambled base-36 code of the id (a bijection on ids
    # below 36**6), under example.com so no demo address can ever reach a real mailbox.
    code = _base36((ids * 2_654_435_761) % 36**6, 6)
    local = formats.labels(EMAIL_LOCAL_PARTS, rng.integers(0, len(EMAIL_LOCAL_PARTS), n))
    domain = pc.binary_join_element_wise(
        formats.labels(_NAMES.stem_slugs, stem), formats.labels(_NAMES.word_slugs, word), code, "-"
    )
    emails = pc.binary_join_element_wise(local, "@", domain, ".example.com", "")

    changed = population.changed_at[lo:hi]
    updated = np.where(np.isfinite(changed), np.floor(changed), population.created[lo:hi])
    referred_by = population.referred_by[lo:hi]
    return pa.table(
        {
            "customer_id": ids,
            "email": emails,
            "name": names,
            "country": formats.labels(COUNTRY_CODES, population.country[lo:hi]),
            "region": formats.labels(REGIONS, population.region_now[lo:hi]),
            "industry": formats.labels(INDUSTRIES, population.industry[lo:hi]),
            "company_size": formats.labels(SIZES, population.size_now[lo:hi]),
            "acquisition_channel": formats.labels(CHANNELS, population.channel[lo:hi]),
            "referred_by_customer_id": pa.array(referred_by, mask=referred_by == 0),
            "created_at": formats.timestamps(population.created[lo:hi]),
            "updated_at": formats.timestamps(updated.astype(np.int64)),
        }
    )


# --- products -----------------------------------------------------------------------------------
# category -> (SKU prefix, margin range, list price range, share of the catalogue, item names)
PRODUCT_CATEGORIES: dict[str, tuple[str, tuple[float, float], tuple[float, float], float, tuple[str, ...]]] = {
    "hardware": ("HW", (0.15, 0.25), (150, 2500), 0.25,
                 ("Laptop", "Monitor 27in", "Docking Station", "Label Printer", "Barcode Scanner", "Router")),
    "software": ("SW", (0.70, 0.85), (50, 1500), 0.15,
                 ("Office Suite Licence", "Antivirus Seat", "Backup Licence", "Design Suite Seat")),
    "consumables": ("CO", (0.30, 0.45), (5, 80), 0.25,
                    ("Toner Cartridge", "Copy Paper Box", "Label Roll", "Cleaning Kit", "Ink Set")),
    "furniture": ("FU", (0.25, 0.38), (80, 1200), 0.10,
                  ("Office Chair", "Standing Desk", "Filing Cabinet", "Meeting Table")),
    "accessories": ("AC", (0.45, 0.60), (10, 150), 0.15,
                    ("Keyboard", "Mouse", "Headset", "USB-C Cable", "Laptop Bag")),
    "services": ("SV", (0.35, 0.55), (100, 2000), 0.10,
                 ("Installation Service", "Training Day", "On-site Support Visit", "Data Migration")),
}  # fmt: skip
PRODUCT_SERIES = ("Pro", "Lite", "Max", "Plus", "Eco", "One")


@dataclass
class Catalogue:
    """Products as arrays (index ``j`` = product id ``j + 1``) plus price history for order lines."""

    table: pa.Table
    category: np.ndarray
    popularity: np.ndarray  # probability of being on an order line
    list_price: np.ndarray  # current list price
    unit_cost: np.ndarray  # current unit cost
    created: np.ndarray  # float epoch seconds
    price_changed_at: np.ndarray  # float epoch seconds, inf = never
    old_price_factor: np.ndarray  # price (and cost) before the change = current * factor
    fallback: np.ndarray  # a product of the same category that existed from the window start


def catalogue(rng: np.random.Generator, n: int, window: Window) -> Catalogue:
    """A catalogue of ``n`` products; margins differ by category, some prices change mid-window."""
    names = list(PRODUCT_CATEGORIES)
    shares = np.array([v[3] for v in PRODUCT_CATEGORIES.values()])
    category = np.sort(_categorical(rng, shares, n))
    margin_lo = np.array([v[1][0] for v in PRODUCT_CATEGORIES.values()])[category]
    margin_hi = np.array([v[1][1] for v in PRODUCT_CATEGORIES.values()])[category]
    price_lo = np.array([v[2][0] for v in PRODUCT_CATEGORIES.values()], dtype=float)[category]
    price_hi = np.array([v[2][1] for v in PRODUCT_CATEGORIES.values()], dtype=float)[category]
    list_price = np.round(np.exp(np.log(price_lo) + rng.random(n) * np.log(price_hi / price_lo)), 0) - 0.01
    margin = margin_lo + rng.random(n) * (margin_hi - margin_lo)
    unit_cost = np.round(list_price * (1 - margin), 2)

    # The catalogue is loaded when the system goes live (the first second of the window: history
    # starts there, so an extraction of the window sees every product); ~10% launch later.
    launched = rng.random(n) < 0.10
    launched[np.unique(category, return_index=True)[1]] = False  # each category keeps an original product
    launch_at = window.start_ts + rng.random(n) * (window.end_ts - window.start_ts - 60 * DAY)
    created = np.floor(np.where(launched, launch_at, window.start_ts))
    # ~35% get one price rise during the window; lines before it carry the old price.
    rises = rng.random(n) < 0.35
    change_from = np.maximum(created, window.start_ts) + DAY
    price_changed_at = np.where(rises, change_from + rng.random(n) * (window.end_ts - DAY - change_from), np.inf)
    price_changed_at = np.floor(price_changed_at)
    old_price_factor = np.where(rises, 1.0 / (1.0 + rng.uniform(0.03, 0.12, n)), 1.0)

    first_of_category = np.unique(category, return_index=True)[1]
    fallback = np.where(launched, first_of_category[np.searchsorted(np.unique(category), category)], np.arange(n))

    # A long tail of products (Zipf-like), with cheap items bought more often than expensive ones.
    popularity = 1.0 / np.arange(1, n + 1) ** 0.9
    popularity = popularity[rng.permutation(n)] * (list_price / np.median(list_price)) ** -0.35
    popularity /= popularity.sum()

    item_count = np.array([len(v[4]) for v in PRODUCT_CATEGORIES.values()])[category]
    item = (rng.random(n) * item_count).astype(np.int64)
    series = rng.integers(0, len(PRODUCT_SERIES), n)
    model = rng.integers(100, 1000, n)
    product_names = [
        f"{PRODUCT_CATEGORIES[names[c]][4][i]} {PRODUCT_SERIES[s]} {m}"
        for c, i, s, m in zip(category, item, series, model, strict=True)
    ]
    skus = [f"{PRODUCT_CATEGORIES[names[c]][0]}-{j + 1:05d}" for j, c in enumerate(category)]
    updated = np.where(np.isfinite(price_changed_at), price_changed_at, created)
    table = pa.table(
        {
            "product_id": pa.array(np.arange(1, n + 1), type=pa.int32()),
            "sku": skus,
            "name": product_names,
            "category": formats.labels(names, category),
            "list_price": list_price,
            "unit_cost": unit_cost,
            "created_at": formats.timestamps(created),
            "updated_at": formats.timestamps(updated),
        }
    )
    return Catalogue(
        table=table,
        category=category,
        popularity=popularity,
        list_price=list_price,
        unit_cost=unit_cost,
        created=created,
        price_changed_at=price_changed_at,
        old_price_factor=old_price_factor,
        fallback=fallback,
    )
