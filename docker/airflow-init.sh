#!/usr/bin/env bash
# The airflow-init service: everything the long-running Airflow services expect to be in place.
# Idempotent, so `docker compose up` may run it on every start.
set -euo pipefail

# A .env copied from an older .env.example may still hold its placeholders: refuse them by name.
placeholders=$(env | grep -E '^[A-Z0-9_]+=(change-me|[a-z+]+://[^:@/]*:change-me)' | cut -d= -f1 | sort | tr '\n' ' ' || true)
if [[ -n "$placeholders" ]]; then
    echo "airflow-init: replace the placeholder value of: ${placeholders}(in .env)" >&2
    exit 1
fi

echo "airflow-init: metadata database schema"
airflow db migrate

# SimpleAuthManager keeps its users' passwords in a JSON file; it generates (and logs) a password for
# a user missing from it. With AIRFLOW_ADMIN_PASSWORD set, the admin gets that one instead.
if [[ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ]]; then
    python - <<'PY'
import json
import os
from pathlib import Path

path = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
passwords = json.loads(path.read_text() or "{}") if path.exists() else {}
passwords[os.environ.get("AIRFLOW_ADMIN_USER") or "admin"] = os.environ["AIRFLOW_ADMIN_PASSWORD"]
path.write_text(json.dumps(passwords) + "\n")
path.chmod(0o600)
print(f"airflow-init: API login for {', '.join(passwords)} in {path}")
PY
fi

echo "airflow-init: warehouse roles"
python -m customer_lens.roles

echo "airflow-init: done ($(airflow version))"
