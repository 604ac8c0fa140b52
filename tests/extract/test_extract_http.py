"""``http`` sources against a real local HTTP server: paging, interval parameters, rejects, reruns."""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import psycopg
import pytest

from customer_lens import extract
from customer_lens.config import source_config

DAY1 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAY2 = DAY1 + dt.timedelta(days=1)

TICKETS = [
    {"id": i, "updated_at": f"2026-03-01T{i:02d}:00:00Z", "subject": s}
    for i, s in enumerate(["Fatura errada", "Fatura hatalı", "فاتورة خاطئة", "Hibás számla", "Wrong invoice"], 1)
] + [
    {"id": 6, "updated_at": "2026-03-02T01:00:00Z", "subject": "next day"},
    {"id": 7, "updated_at": "not a time", "subject": "bad"},
]


class _Api(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict]] = []

    def do_GET(self):
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.requests.append({"path": parts.path, **query})
        if self.headers.get("Authorization") != "Bearer s3cret":
            self.send_response(401)
            self.end_headers()
            return
        since, until = query["updated_since"], query["updated_before"]
        # The server filters on the interval; rows with an unparseable time are always sent.
        chosen = [t for t in TICKETS if not t["updated_at"][0].isdigit() or since <= t["updated_at"] < until]
        offset = int(query.get("cursor", 0))
        page = chosen[offset : offset + 2]
        body = {"data": page, "next": str(offset + 2) if offset + 2 < len(chosen) else None}
        payload = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    _Api.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v2"
    server.shutdown()


def _source(url: str, monkeypatch, token: str = "s3cret") -> source_config.Source:
    monkeypatch.setenv("HELPDESK_TOKEN", token)
    document = {
        "sources": {
            "helpdesk": {
                "kind": "http",
                "url": url,
                "max_reject_ratio": 0.5,
                "options": {"headers": {"Authorization": "Bearer ${HELPDESK_TOKEN}"}},
                "entities": {
                    "tickets": {
                        "path": "/tickets",
                        "cursor": "updated_at",
                        "primary_key": ["ticket_id", "updated_at"],
                        "columns": {
                            "ticket_id": {"source": "id", "type": "bigint", "required": True},
                            "updated_at": {"type": "timestamptz", "required": True},
                            "subject": "text",
                        },
                    }
                },
            }
        }
    }
    return source_config.parse(document)["helpdesk"]


def test_pages_are_followed_and_loaded_for_the_interval(api, make_database, monkeypatch) -> None:
    wh = make_database("http_wh")
    source = _source(api, monkeypatch)

    result = extract.extract(source, "tickets", DAY1, DAY2, warehouse_url=wh)

    assert (result.rows_loaded, result.rows_rejected) == (5, 1)
    assert len(result.files) == 3  # 6 records, 2 per page
    assert [r.get("cursor") for r in _Api.requests] == [None, "2", "4"]
    assert {r["updated_since"] for r in _Api.requests} == {"2026-03-01T00:00:00Z"}
    with psycopg.connect(wh) as conn:
        subjects = conn.execute("select subject from raw_helpdesk.tickets order by ticket_id").fetchall()
        reject = conn.execute("select reason, detail, record_key from raw_helpdesk._rejects").fetchall()
    assert [s for (s,) in subjects] == [t["subject"] for t in TICKETS[:5]]
    assert reject == [("invalid_value", "invalid_value:updated_at", "7|not a time")]

    again = extract.extract(source, "tickets", DAY1, DAY2, warehouse_url=wh)
    assert (again.rows_loaded, again.rows_rejected) == (5, 1)
    with psycopg.connect(wh) as conn:
        assert conn.execute("select count(*) from raw_helpdesk.tickets").fetchone() == (5,)


def test_a_refused_request_fails_clearly_and_loads_nothing(api, make_database, monkeypatch) -> None:
    wh = make_database("http_wh_refused")
    source = _source(api, monkeypatch, token="wrong")
    with pytest.raises(extract.ExtractError, match="HTTP 401"):
        extract.extract(source, "tickets", DAY1, DAY2, warehouse_url=wh)
    with psycopg.connect(wh) as conn:
        assert conn.execute("select count(*) from raw_helpdesk.tickets").fetchone() == (0,)
