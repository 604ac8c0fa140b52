"""Alerts when the pipeline needs a human: a blocked snapshot, a failed task.

Always logged. Also sent when configured in the environment:

- ``LENS_ALERT_WEBHOOK_URL`` — a JSON POST (``{"text": ..., "event": ..., "details": {...}}``): the
  shape Slack/Teams/Mattermost incoming webhooks accept (``text``), plus the details for others.
- ``LENS_ALERT_EMAIL_TO`` (comma-separated) with ``LENS_SMTP_HOST`` (``LENS_SMTP_PORT`` default 25,
  ``LENS_SMTP_USER``/``LENS_SMTP_PASSWORD`` optional, ``LENS_ALERT_EMAIL_FROM``) — a plain-text e-mail.

Sending never raises: an alert that cannot be delivered is logged, and the run's own outcome stands.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import urllib.request
from email.message import EmailMessage
from typing import Any

log = logging.getLogger("customer_lens.guard.alerts")


def send(event: str, text: str, details: dict[str, Any] | None = None) -> list[str]:
    """Log the alert and deliver it where configured; returns the channels it reached."""
    log.error("ALERT %s: %s", event, text)
    reached = ["log"]
    url = os.environ.get("LENS_ALERT_WEBHOOK_URL")
    if url:
        body = json.dumps({"text": f"[Customer Lens] {text}", "event": event, "details": details or {}}, default=str)
        request = urllib.request.Request(
            url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
            reached.append("webhook")
        except OSError as exc:
            log.warning("alert webhook %s failed: %s", url, exc)
    to = os.environ.get("LENS_ALERT_EMAIL_TO")
    host = os.environ.get("LENS_SMTP_HOST")
    if to and host:
        message = EmailMessage()
        message["Subject"] = f"[Customer Lens] {event}"
        message["From"] = os.environ.get("LENS_ALERT_EMAIL_FROM", "customer-lens@localhost")
        message["To"] = to
        message.set_content(text + ("\n\n" + json.dumps(details, indent=2, default=str) if details else ""))
        try:
            with smtplib.SMTP(host, int(os.environ.get("LENS_SMTP_PORT", "25")), timeout=10) as smtp:
                if os.environ.get("LENS_SMTP_USER"):
                    smtp.starttls()
                    smtp.login(os.environ["LENS_SMTP_USER"], os.environ.get("LENS_SMTP_PASSWORD", ""))
                smtp.send_message(message)
            reached.append("email")
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("alert e-mail to %s failed: %s", to, exc)
    return reached


def on_task_failure(context: dict[str, Any]) -> None:
    """Airflow ``on_failure_callback``: one alert naming the DAG, task, run and error."""
    ti = context.get("task_instance") or context.get("ti")
    error = context.get("exception")
    if type(getattr(error, "__cause__", None)).__name__ == "ValidationFailed":  # the guard alerted, in detail
        return
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = getattr(ti, "run_id", "?")
    first_line = str(error).strip().splitlines()[0] if error else "unknown error"
    send(
        "task_failed",
        f"{dag_id}.{task_id} failed in run {run_id}: {first_line}",
        {"dag_id": dag_id, "task_id": task_id, "run_id": run_id, "error": str(error)[:4000]},
    )
