"""``http`` sources: JSON pages from an API, filtered to the data interval by the server.

Each request is ``GET {url}{path}?{since_param}=<start>&{until_param}=<end>`` (ISO 8601, UTC);
the response is a JSON object whose ``records_key`` holds a list of records and whose ``next_key``
holds the next page — a full URL, or a token sent back as ``cursor_param`` — or null on the last
page. Options (under the source's ``options:``) and their defaults::

    records_key: data          next_key: next             cursor_param: cursor
    since_param: updated_since until_param: updated_before
    headers: {}                # e.g. {Authorization: "Bearer ${HELPDESK_TOKEN}"}
    timeout_seconds: 30        retries: 3                 max_pages: 100000

Records land as JSON text, one page at a time (memory stays bounded by the page size), and are
then parsed, typed and checked in SQL exactly like NDJSON files (see :mod:`customer_lens.extract.files`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from psycopg import Connection

from customer_lens.config.source_config import Entity, Source
from customer_lens.extract.batch import BatchResult, ExtractError
from customer_lens.extract.files import landing_copy, load_landed

DEFAULTS: dict[str, Any] = {
    "records_key": "data",
    "next_key": "next",
    "cursor_param": "cursor",
    "since_param": "updated_since",
    "until_param": "updated_before",
    "headers": {},
    "timeout_seconds": 30,
    "retries": 3,
    "max_pages": 100_000,
}


class HttpSourceError(ExtractError):
    """The API failed or answered something that is not a page of records."""


def _get(url: str, options: dict[str, Any]) -> Any:
    """The JSON document at ``url``: whatever the API sent (``pages`` checks its shape)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", **options["headers"]})
    for attempt in range(options["retries"] + 1):
        try:
            with urllib.request.urlopen(request, timeout=options["timeout_seconds"]) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                raise HttpSourceError(f"GET {url}: HTTP {exc.code} {exc.reason}") from exc
            error: Exception = exc
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
            error = exc
        if attempt < options["retries"]:
            time.sleep(min(2**attempt, 30))
    raise HttpSourceError(f"GET {url} failed after {options['retries'] + 1} attempts: {error}")


def pages(source: Source, entity: Entity, start: dt.datetime, end: dt.datetime) -> Iterator[tuple[str, list[Any]]]:
    """Yield ``(page URL, records)`` for the interval, following the API's next-page pointer."""
    assert entity.path is not None  # source_config requires it of an http entity
    options = DEFAULTS | source.options
    query = {
        options["since_param"]: start.isoformat().replace("+00:00", "Z"),
        options["until_param"]: end.isoformat().replace("+00:00", "Z"),
    }
    url = f"{source.connection_url().rstrip('/')}/{entity.path.lstrip('/')}?{urllib.parse.urlencode(query)}"
    for _ in range(options["max_pages"]):
        body = _get(url, options)
        records = body.get(options["records_key"]) if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise HttpSourceError(f"GET {url}: the response has no list under {options['records_key']!r}")
        yield url, records
        following = body.get(options["next_key"])
        if not following:
            return
        if str(following).startswith(("http://", "https://")):
            url = str(following)
        else:
            parts = urllib.parse.urlsplit(url)
            params = dict(urllib.parse.parse_qsl(parts.query)) | {options["cursor_param"]: str(following)}
            url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(params)))
    raise HttpSourceError(f"{source.name}.{entity.name}: more than {options['max_pages']} pages")


def extract_http(conn: Connection, source: Source, entity: Entity, result: BatchResult) -> None:
    """Land every page's records and load them as one batch."""

    def land() -> None:
        with landing_copy(conn, source, entity) as copy:
            for number, (url, records) in enumerate(pages(source, entity, result.interval_start, result.interval_end)):
                result.files.append(url)
                for index, record in enumerate(records, start=1):
                    copy.write_row((f"page {number + 1}", index, json.dumps(record, ensure_ascii=False), None, None))

    load_landed(conn, source, entity, result, land)
