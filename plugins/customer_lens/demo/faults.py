"""``--bad-records``: a small, deterministic, documented set of faults added to the good data.

Faults are *added* (new lines, new rows, one rewritten day file); good rows are never altered, so
the good data is identical with and without bad records, and only the files that received a fault
have shifted line numbers. Each fault is listed in ``bad_records.json`` with where it is and what
the extraction layer is expected to do with it (``reject:<reason>``, ``flag:<reason>`` or
``overflow``: keep the row and the unknown field in an overflow column).

| code | source | expected | what is in the data (entity) |
|---|---|---|---|
| malformed_json | service | reject:malformed_json | a copy of a version line cut off mid-record |
| invalid_utf8 | service | reject:invalid_utf8 | a copy of a version line, bytes C3 28 in `description` |
| missing_required_field | service | reject:missing_required_field | a copy without `ticket_id` or `created_at` |
| bad_timestamp | service | reject:invalid_value | a copy whose `updated_at` is no timestamp (`2024-13-45T99:...`) |
| duplicate_id | service | reject:duplicate | a byte-identical copy of a version line, later in the same file |
| unknown_customer | service | flag:unknown_customer | a new ticket whose `requester_email` matches no customer |
| unexpected_field | service | overflow | a new ticket with an extra key `sla_policy` (an object) |
| malformed_row | survey | reject:malformed_row | a new row with one field too many or two too few |
| out_of_range_nps | survey | reject:out_of_range | a new `nps` row with `nps_score` 11 or -1 |
| out_of_range_csat | survey | reject:out_of_range | a new `csat` row with `csat_score` 0 or 7 |
| not_a_number | survey | reject:invalid_value | a new `nps` row with `nps_score` "nine" |
| invalid_utf8 | survey | reject:invalid_utf8 | a new row whose `comment` contains bytes C3 28 |
| duplicate_id | survey | reject:duplicate_key | an earlier row's `response_id` again, other content (first is good) |
| unknown_customer | survey | flag:unknown_customer | a new row whose `customer_ref` is no customer's id or email |
| missing_optional_column | survey | flag:missing_optional_column | one day's file without `language` (a survey_file) |
| order_unknown_customer | sales | flag:unknown_customer | a new order whose `customer_id` is not in `customers` |
| orphan_order_line | sales | flag:orphan | a new order line whose `order_id` is not in `orders` |
| negative_quantity | sales | reject:out_of_range | a new line on an existing order with a negative `quantity` |
| discount_out_of_range | sales | reject:out_of_range | a new line on an existing order with `discount_pct` > 1 |

Entities: ``ticket_version`` (service), ``survey_response`` (survey, except the ``survey_file``
above), ``order`` / ``order_line`` (sales; ``key`` = the primary key, ``file``/``line`` null).
``key`` is null where the fault removed the key (a version line without ``ticket_id``).
Every kind appears ``Scale.faults_per_kind`` times (3 at tiny, up to 5), except
``missing_optional_column`` (one file). Fault records get ids above every good id, except where
the fault *is* the id (the duplicates, and the sales rows pointing at unknown parents).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pyarrow as pa

from customer_lens.demo import database, exports, survey
from customer_lens.demo.population import Catalogue
from customer_lens.demo.timeline import Window


@dataclass(frozen=True)
class Fault:
    """One kind of bad record (see the module docstring for the table)."""

    code: str
    source: str
    entity: str
    expected: str


CATALOGUE: tuple[Fault, ...] = (
    Fault("malformed_json", "service", "ticket_version", "reject:malformed_json"),
    Fault("invalid_utf8", "service", "ticket_version", "reject:invalid_utf8"),
    Fault("missing_required_field", "service", "ticket_version", "reject:missing_required_field"),
    Fault("bad_timestamp", "service", "ticket_version", "reject:invalid_value"),
    Fault("duplicate_id", "service", "ticket_version", "reject:duplicate"),
    Fault("unknown_customer", "service", "ticket_version", "flag:unknown_customer"),
    Fault("unexpected_field", "service", "ticket_version", "overflow"),
    Fault("malformed_row", "survey", "survey_response", "reject:malformed_row"),
    Fault("out_of_range_nps", "survey", "survey_response", "reject:out_of_range"),
    Fault("out_of_range_csat", "survey", "survey_response", "reject:out_of_range"),
    Fault("not_a_number", "survey", "survey_response", "reject:invalid_value"),
    Fault("invalid_utf8", "survey", "survey_response", "reject:invalid_utf8"),
    Fault("duplicate_id", "survey", "survey_response", "reject:duplicate_key"),
    Fault("unknown_customer", "survey", "survey_response", "flag:unknown_customer"),
    Fault("missing_optional_column", "survey", "survey_file", "flag:missing_optional_column"),
    Fault("order_unknown_customer", "sales", "order", "flag:unknown_customer"),
    Fault("orphan_order_line", "sales", "order_line", "flag:orphan"),
    Fault("negative_quantity", "sales", "order_line", "reject:out_of_range"),
    Fault("discount_out_of_range", "sales", "order_line", "reject:out_of_range"),
)
INVALID_UTF8 = b"\xc3\x28"  # a UTF-8 lead byte followed by a non-continuation byte
BAD_TIMESTAMPS = ("2024-13-45T99:00:00Z", "not a date", "31/02/2024 10:00")
UNKNOWN_EMAIL_DOMAIN = "unknown-company.example.org"  # customers all live under example.com
_MARK = "<<INVALID-UTF8>>"  # placeholder replaced by INVALID_UTF8 after encoding (survives JSON escaping)


@dataclass
class Ids:
    """The highest good id of every entity; fault records are numbered above them."""

    customer: int
    order: int
    order_line: int
    ticket: int
    response: int


class ManifestEntry(TypedDict):
    """One injected bad record in the manifest: which fault, where (file and line, once written), which key."""

    fault: str
    source: str
    entity: str
    file: str | None
    line: int | None
    key: int | None
    expected: str


@dataclass
class _FileEdit:
    """Lines to insert into one export file; line numbers are assigned when it is rewritten."""

    path: Path
    relative: str
    lines: list[bytes]
    inserts: list[tuple[int, int, bytes, ManifestEntry]] = field(default_factory=list)

    def insert(self, position: int, line: bytes, entry: ManifestEntry) -> None:
        self.inserts.append((position, len(self.inserts), line, entry))

    def write(self) -> None:
        out: list[bytes] = []
        pending = sorted(self.inserts, key=lambda item: (item[0], item[1]))
        cursor = 0
        for position, _, line, entry in pending:
            out.extend(self.lines[cursor:position])
            cursor = position
            out.append(line)
            entry["file"] = self.relative
            entry["line"] = len(out)
        out.extend(self.lines[cursor:])
        self.path.write_bytes(b"".join(out))


def _entry(fault: Fault, key: int | None) -> ManifestEntry:
    return {
        "fault": fault.code,
        "source": fault.source,
        "entity": fault.entity,
        "file": None,
        "line": None,
        "key": key,
        "expected": fault.expected,
    }


def _faults(source: str) -> list[Fault]:
    return [f for f in CATALOGUE if f.source == source]


def _json_line(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    return text.encode().replace(_MARK.encode(), INVALID_UTF8)


def _csv_line(fields: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue().encode().replace(_MARK.encode(), INVALID_UTF8)


class Injector:
    """Adds the fault catalogue to a finished (unpublished) dataset."""

    def __init__(
        self,
        rng: np.random.Generator,
        per_kind: int,
        staging: exports.Staging,
        line_counts: dict[str, np.ndarray],
        ids: Ids,
    ) -> None:
        self.rng = rng
        self.per_kind = per_kind
        self.staging = staging
        self.line_counts = line_counts
        self.ids = ids
        self.manifest: list[ManifestEntry] = []
        self._edits: dict[str, _FileEdit] = {}

    def _edit(self, relative: str) -> _FileEdit:
        if relative not in self._edits:
            path = self.staging.root / relative
            self._edits[relative] = _FileEdit(path, relative, path.read_bytes().splitlines(keepends=True))
        return self._edits[relative]

    def _pick_days(self, kind: str, minimum: int, exclude: set[int]) -> np.ndarray:
        days = np.flatnonzero(self.line_counts[kind] >= minimum)
        return np.array([d for d in days if d not in exclude], dtype=np.int64)

    # --- service -------------------------------------------------------------------------------------
    def service(self) -> None:
        """Insert the service faults into the helpdesk files."""
        days = self._pick_days(exports.SERVICE_DIR, 2, set())
        if len(days) == 0:
            return
        for fault in _faults("service"):
            for i in range(self.per_kind):
                edit = self._edit(exports.service_file(self.staging.days[self.rng.choice(days)]))
                source = int(self.rng.integers(0, len(edit.lines)))
                position = int(self.rng.integers(0, len(edit.lines) + 1))
                line, position, key = self._service_fault(fault, i, edit, source, position)
                edit.insert(position, line, entry := _entry(fault, key))
                self.manifest.append(entry)

    def _service_fault(
        self, fault: Fault, i: int, edit: _FileEdit, source: int, position: int
    ) -> tuple[bytes, int, int | None]:
        """The ``i``-th line of ``fault``, made from line ``source`` of ``edit``: the line, where it goes, its key."""
        original = edit.lines[source]
        record = json.loads(original)
        key: int | None = record["ticket_id"]
        if fault.code == "malformed_json":
            cut = int(len(original) * self.rng.uniform(0.3, 0.8))
            while original[cut - 1] >= 0x80:  # never split a multi-byte character
                cut -= 1
            return original[:cut] + b"\n", position, key
        if fault.code == "invalid_utf8":
            record["description"] = _MARK + record["description"]
        elif fault.code == "missing_required_field":
            missing = "ticket_id" if i % 2 == 0 else "created_at"
            del record[missing]
            key = None if missing == "ticket_id" else key
        elif fault.code == "bad_timestamp":
            record["updated_at"] = BAD_TIMESTAMPS[i % len(BAD_TIMESTAMPS)]
        elif fault.code == "duplicate_id":
            return original, int(self.rng.integers(source + 1, len(edit.lines) + 1)), key
        else:  # a new ticket: unknown_customer or unexpected_field
            self.ids.ticket += 1
            key = record["ticket_id"] = self.ids.ticket
            if fault.code == "unknown_customer":
                record["requester_email"] = f"help{i + 1}@{UNKNOWN_EMAIL_DOMAIN}"
            else:
                record["sla_policy"] = {"id": 3 + i, "title": "Enterprise 4h", "breached": bool(i % 2)}
        return _json_line(record), position, key

    # --- survey --------------------------------------------------------------------------------------
    def survey(self) -> None:
        """Insert the survey faults and drop the language column from one day's file."""
        days = self._pick_days(exports.SURVEY_DIR, 3, set())
        if len(days) == 0:
            return
        stripped_day = int(self.rng.choice(days))
        self._strip_language(stripped_day)
        days = self._pick_days(exports.SURVEY_DIR, 2, {stripped_day})
        for fault in _faults("survey"):
            if fault.code == "missing_optional_column":
                continue
            for i in range(self.per_kind):
                edit = self._edit(exports.survey_file(self.staging.days[self.rng.choice(days)]))
                source = int(self.rng.integers(1, len(edit.lines)))  # line 0 is the header
                fields = next(csv.reader([edit.lines[source].decode()]))
                row = dict(zip(survey.COLUMNS, fields, strict=True))
                position = int(self.rng.integers(1, len(edit.lines) + 1))
                self.ids.response += 1
                new = {name: "" for name in survey.COLUMNS}
                new.update(
                    response_id=str(self.ids.response),
                    customer_ref=row["customer_ref"],
                    submitted_at=row["submitted_at"],
                    kind="nps",
                    nps_score="8",
                    language=row["language"],
                )
                values, key, position = self._survey_fault(fault, i, row, new, edit, source, position)
                edit.insert(position, _csv_line(values), entry := _entry(fault, key))
                self.manifest.append(entry)

    def _survey_fault(
        self,
        fault: Fault,
        i: int,
        row: dict[str, str],
        new: dict[str, str],
        edit: _FileEdit,
        source: int,
        position: int,
    ) -> tuple[list[str], int, int]:
        """The ``i``-th row of ``fault``: ``new`` (a new answer like ``row``, line ``source`` of ``edit``) made
        faulty. Returns its fields, its key and where it goes."""
        if fault.code == "malformed_row":
            values = list(new.values())
            values = [*values, "unexpected"] if i % 2 == 0 else values[: len(survey.COLUMNS) - 2]
            return values, int(new["response_id"]), position
        if fault.code == "out_of_range_nps":
            new["nps_score"] = ("11", "-1")[i % 2]
        elif fault.code == "out_of_range_csat":
            new.update(kind="csat", nps_score="", csat_score=("0", "7")[i % 2])
        elif fault.code == "not_a_number":
            new["nps_score"] = "nine"
        elif fault.code == "invalid_utf8":
            new["comment"] = _MARK + "Good service overall"
        elif fault.code == "duplicate_id":
            # Same id as an earlier row, different content: a re-submitted form.
            self.ids.response -= 1
            new = dict(row)
            if row["kind"] == "nps":
                new["nps_score"] = str((int(row["nps_score"]) + 5) % 11)
            new["comment"] = "Submitted twice by mistake"
            position = int(self.rng.integers(source + 1, len(edit.lines) + 1))
        elif fault.code == "unknown_customer":
            unknown_id = self.ids.customer + 1_000 + i
            new["customer_ref"] = f"buyer{i + 1}@{UNKNOWN_EMAIL_DOMAIN}" if i % 2 else str(unknown_id)
        return list(new.values()), int(new["response_id"]), position

    def _strip_language(self, day: int) -> None:
        relative = exports.survey_file(self.staging.days[day])
        path = self.staging.root / relative
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        language = survey.COLUMNS.index("language")
        path.write_bytes(b"".join(_csv_line(r[:language] + r[language + 1 :]) for r in rows))
        fault = next(f for f in CATALOGUE if f.code == "missing_optional_column")
        entry = _entry(fault, None)
        entry["file"] = relative
        self.manifest.append(entry)

    # --- sales ---------------------------------------------------------------------------------------
    def sales(self, load: database.SalesLoad, catalogue: Catalogue, window: Window) -> None:
        """Insert the sales fault rows into the (indexed, unpublished) staging tables."""
        n = self.per_kind
        rng = self.rng
        span = window.end_ts - window.start_ts
        when = np.floor(window.start_ts + rng.random(2 * n) * span).astype("datetime64[s]")
        order_ids = self.ids.order + 1 + np.arange(n)
        orders = pa.table(
            {
                "order_id": order_ids,
                "customer_id": self.ids.customer + 1_000 + np.arange(n),
                "ordered_at": pa.array(when[:n]),
                "status": ["completed"] * n,
                "sales_channel": ["web"] * n,
                "created_at": pa.array(when[:n]),
                "updated_at": pa.array(when[:n]),
            }
        )
        load.copy("orders", orders)
        fault = {f.code: f for f in _faults("sales")}
        self.manifest += [_entry(fault["order_unknown_customer"], int(k)) for k in order_ids]

        # Lines: orphans (their order id is above every order, including the fault orders), then
        # lines with impossible values on existing orders.
        existing = (1 + rng.integers(0, self.ids.order, 2 * n)).tolist()
        with load.conn.cursor() as cur:
            cur.execute("select order_id, created_at from public.orders__new where order_id = any(%s)", (existing,))
            created_of = {order_id: created for order_id, created in cur.fetchall()}
        order_of_line = [self.ids.order + 1_000_000 + k for k in range(n)] + existing
        created = list(when[n:].astype(dt.datetime)) + [created_of[k].replace(tzinfo=None) for k in existing]
        product = rng.integers(0, len(catalogue.list_price), 3 * n)
        quantity = 1 + rng.integers(0, 5, 3 * n)
        quantity[n : 2 * n] = -quantity[n : 2 * n]
        discount = np.round(rng.uniform(0.0, 0.1, 3 * n), 4)
        discount[2 * n :] = np.round(rng.uniform(1.05, 1.6, n), 4)
        line_ids = self.ids.order_line + 1 + np.arange(3 * n)
        lines = pa.table(
            {
                "order_line_id": line_ids,
                "order_id": order_of_line,
                "product_id": pa.array(product + 1, type=pa.int32()),
                "quantity": pa.array(quantity, type=pa.int32()),
                "unit_price": catalogue.list_price[product],
                "discount_pct": discount,
                "unit_cost": catalogue.unit_cost[product],
                "created_at": pa.array(created, type=pa.timestamp("s")),
                "updated_at": pa.array(created, type=pa.timestamp("s")),
            }
        )
        load.copy("order_lines", lines)
        codes = ["orphan_order_line"] * n + ["negative_quantity"] * n + ["discount_out_of_range"] * n
        self.manifest += [_entry(fault[c], int(k)) for c, k in zip(codes, line_ids, strict=True)]

    def finish(self) -> list[ManifestEntry]:
        """Rewrite the edited files (assigning final line numbers) and return the sorted manifest."""
        for edit in self._edits.values():
            edit.write()
        rank = {"sales": 0, "service": 1, "survey": 2}
        return sorted(
            self.manifest,
            key=lambda e: (rank[e["source"]], e["file"] or "", e["line"] or 0, e["entity"], e["key"] or 0),
        )
