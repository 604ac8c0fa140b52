"""The file exports (helpdesk NDJSON, survey CSV), written atomically as one directory tree.

Everything is written into a sibling temporary directory ``.<name>.generating-<pid>``; ``publish``
then renames the current tree away, renames the new one into place and only then deletes the old
one. A crash before ``publish`` leaves the current tree untouched (the temporary one is removed by
the next run once its process is gone).

Layout under ``files_dir``::

    service/tickets_YYYY-MM-DD.ndjson   one per day of the window, ticket versions by updated_at
    survey/responses_YYYY-MM-DD.csv     one per day of the window, header row first
    demo_generation.json                what was generated (fingerprint, parameters, row counts)
    bad_records.json                    only with bad records: the fault manifest

Every day has a file, even an empty one (an NDJSON file with no lines, a CSV with only its
header), so a consumer can tell "no tickets that day" from "export missing".
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa

from customer_lens.demo import formats, survey
from customer_lens.demo.timeline import Window

SERVICE_DIR = "service"
SURVEY_DIR = "survey"
META_FILE = "demo_generation.json"
MANIFEST_FILE = "bad_records.json"


def service_file(day: str) -> str:
    """Relative path of the helpdesk export of ``day`` (``YYYY-MM-DD``)."""
    return f"{SERVICE_DIR}/tickets_{day}.ndjson"


def survey_file(day: str) -> str:
    """Relative path of the survey export of ``day`` (``YYYY-MM-DD``)."""
    return f"{SURVEY_DIR}/responses_{day}.csv"


class Staging:
    """A new export tree being written next to ``target`` (see the module docstring)."""

    def __init__(self, target: Path, window: Window) -> None:
        self.target = Path(target).absolute()
        self.window = window
        self.days = window.day_labels()
        self.root = self.target.parent / f".{self.target.name}.generating-{os.getpid()}"

    def create(self) -> None:
        """Remove leftovers of dead runs, then create the tree with every day's (empty) file."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        for leftover in self.target.parent.glob(f".{self.target.name}.*-*"):
            pid = leftover.name.rsplit("-", 1)[-1]
            if pid.isdigit() and (int(pid) == os.getpid() or not psutil.pid_exists(int(pid))):
                shutil.rmtree(leftover, ignore_errors=True)
        (self.root / SERVICE_DIR).mkdir(parents=True)
        (self.root / SURVEY_DIR).mkdir()
        header = survey.HEADER.encode()
        for day in self.days:
            (self.root / service_file(day)).write_bytes(b"")
            (self.root / survey_file(day)).write_bytes(header)

    def append(self, kind: str, day: np.ndarray, lines: pa.Array) -> None:
        """Append ``lines`` (sorted by ``day``, each ending in a newline) to their days' files."""
        if len(day) == 0:
            return
        path_of = service_file if kind == SERVICE_DIR else survey_file
        offsets, data = formats.line_offsets(lines)
        starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
        stops = np.r_[starts[1:], len(day)]
        for start, stop in zip(starts, stops, strict=True):
            with open(self.root / path_of(self.days[day[start]]), "ab") as handle:
                handle.write(data[offsets[start] : offsets[stop]])

    def write_json(self, name: str, content: object) -> None:
        """Write ``content`` as pretty, key-sorted UTF-8 JSON to ``name`` in the tree."""
        text = json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (self.root / name).write_text(text, encoding="utf-8")

    def file_count(self) -> int:
        return sum(1 for path in self.root.rglob("*") if path.is_file())

    def publish(self) -> None:
        """Put the new tree in place of ``target``; the old tree is removed only afterwards."""
        previous = self.target.parent / f".{self.target.name}.previous-{os.getpid()}"
        had_previous = self.target.exists()
        if had_previous:
            os.rename(self.target, previous)
        try:
            os.rename(self.root, self.target)
        except OSError:
            if had_previous:
                os.rename(previous, self.target)
            raise
        if had_previous:
            shutil.rmtree(previous)

    def discard(self) -> None:
        """Remove the unfinished tree (after a failure)."""
        shutil.rmtree(self.root, ignore_errors=True)


def installed_fingerprint(files_dir: Path) -> str | None:
    """The fingerprint recorded in ``files_dir``, or None if there is no (readable) record."""
    try:
        meta = json.loads((Path(files_dir) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fingerprint = meta.get("fingerprint") if isinstance(meta, dict) else None
    return fingerprint if isinstance(fingerprint, str) else None
