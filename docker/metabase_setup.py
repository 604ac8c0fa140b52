"""Connect Metabase to the warehouse as ``bi_reader`` (the ``metabase-init`` service, profile ``bi``).

Metabase keeps its data sources in its own application database, not in environment variables, so
this one-shot step talks to its HTTP API: on a fresh Metabase it completes the setup (admin user from
``MB_ADMIN_EMAIL`` / ``MB_ADMIN_PASSWORD``, usage tracking off), then creates or updates the data
source ``Customer Lens``: PostgreSQL at ``LENS_BI_HOST``, user ``LENS_BI_USER`` (``bi_reader``),
limited to the schemas in ``LENS_BI_SCHEMAS`` (``analytics``). Running it again only refreshes the
data source's connection details (a changed password, say). Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

BASE = os.environ.get("MB_URL", "http://metabase:3000").rstrip("/")
SOURCE_NAME = os.environ.get("LENS_BI_SOURCE_NAME", "Customer Lens")


def call(method: str, path: str, body: dict | None = None, session: str | None = None):
    """One JSON request to the Metabase API; returns the decoded answer (None when empty)."""
    request = urllib.request.Request(f"{BASE}{path}", method=method)
    request.add_header("Content-Type", "application/json")
    if session:
        request.add_header("X-Metabase-Session", session)
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(request, data=data, timeout=60) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise SystemExit(f"metabase-init: {method} {path} answered {exc.code}: {detail}") from None
    return json.loads(text) if text.strip() else None


def warehouse_details() -> dict:
    return {
        "host": os.environ.get("LENS_BI_HOST", "warehouse"),
        "port": int(os.environ.get("LENS_BI_PORT", "5432")),
        "dbname": os.environ.get("LENS_BI_DATABASE", "lens"),
        "user": os.environ.get("LENS_BI_USER", "bi_reader"),
        "password": os.environ["LENS_BI_READER_PASSWORD"],
        "ssl": os.environ.get("LENS_BI_SSLMODE", "prefer") in ("require", "verify-ca", "verify-full"),
        # Only the BI schema is synced: bi_reader cannot read the others anyway, and Metabase would
        # otherwise list their table names (the catalog is visible to every role).
        "schema-filters-type": "inclusion",
        "schema-filters-patterns": os.environ.get("LENS_BI_SCHEMAS", "analytics"),
    }


def session_token() -> str:
    """Finish the first-run setup, or log in as the admin when it was done before."""
    properties = call("GET", "/api/session/properties")
    email, password = os.environ["MB_ADMIN_EMAIL"], os.environ["MB_ADMIN_PASSWORD"]
    if not properties.get("has-user-setup"):
        answer = call(
            "POST",
            "/api/setup",
            {
                "token": properties["setup-token"],
                "user": {
                    "email": email,
                    "password": password,
                    "first_name": "Customer Lens",
                    "last_name": "Admin",
                    "site_name": "Customer Lens",
                },
                "prefs": {"site_name": "Customer Lens", "site_locale": "en", "allow_tracking": False},
            },
        )
        print(f"metabase-init: set up Metabase with admin {email}")
        return answer["id"]
    return call("POST", "/api/session", {"username": email, "password": password})["id"]


def main() -> int:
    session = session_token()
    listed = call("GET", "/api/database", session=session)
    databases = listed["data"] if isinstance(listed, dict) else listed
    existing = next((db for db in databases if db.get("name") == SOURCE_NAME), None)
    details = warehouse_details()
    if existing:
        call("PUT", f"/api/database/{existing['id']}", {"details": details}, session=session)
        action = "updated"
    else:
        call("POST", "/api/database", {"engine": "postgres", "name": SOURCE_NAME, "details": details}, session=session)
        action = "added"
    print(
        f"metabase-init: {action} data source {SOURCE_NAME!r}: {details['user']}@{details['host']}/"
        f"{details['dbname']}, schemas {details['schema-filters-patterns']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
