"""Turning columns into bytes: timestamps, NDJSON lines, CSV lines and COPY payloads.

Everything here is column-at-a-time (Arrow compute kernels), never row-at-a-time Python. Text
values that can need escaping come only from the fixed phrase banks, which are escaped once when
the banks are built (``json_escape``, ``csv_quote``); emails, ids and enumerations are plain ASCII
without quotes, commas or backslashes. So a line is a plain concatenation of fragments, and the
same inputs always give the same bytes.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv


def json_escape(text: str) -> str:
    """``text`` as the inside of a JSON string (without the surrounding quotes)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def csv_quote(text: str) -> str:
    """``text`` as one CSV field, quoted only when needed (the rule of Python's ``csv.QUOTE_MINIMAL``)."""
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _seconds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whole seconds and a validity mask for float (``inf``/``nan`` = missing) or integer times."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        valid = np.isfinite(values)
        return np.floor(np.where(valid, values, 0.0)).astype(np.int64), valid
    return values.astype(np.int64), np.ones(len(values), dtype=bool)


def timestamps(values: np.ndarray) -> pa.Array:
    """Arrow ``timestamp[s]`` (naive, meaning UTC) with nulls where the time is missing."""
    seconds, valid = _seconds(values)
    return pa.array(seconds, type=pa.timestamp("s"), mask=~valid)


def iso_timestamps(values: np.ndarray, *, suffix: str) -> pa.Array:
    """ISO 8601 text ``YYYY-MM-DDTHH:MM:SS`` + ``suffix`` ("Z" or "+00:00"); null where missing."""
    text = pc.cast(timestamps(values), pa.string())  # "YYYY-MM-DD HH:MM:SS"
    text = pc.replace_substring(text, " ", "T", max_replacements=1)
    return pc.binary_join_element_wise(text, suffix, "")


def labels(names: tuple[str, ...] | list[str], index: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """The label of each index (``names[index]``), null where ``mask`` is False."""
    taken = pa.array(list(names), type=pa.string()).take(pa.array(np.asarray(index, dtype=np.int64)))
    if mask is None:
        return taken
    return pc.if_else(pa.array(np.asarray(mask, dtype=bool)), taken, pa.nulls(len(taken), pa.string()))


def integers_text(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Decimal text of integers, null where ``mask`` is False."""
    array = pa.array(np.asarray(values, dtype=np.int64), mask=None if mask is None else ~np.asarray(mask, bool))
    return pc.cast(array, pa.string())


def json_string(values: pa.Array) -> pa.Array:
    """A JSON string literal per (already escaped) value, ``null`` for nulls."""
    return pc.fill_null(pc.binary_join_element_wise('"', values, '"', ""), "null")


def ndjson_lines(fields: list[tuple[str, pa.Array]]) -> pa.Array:
    """One compact JSON object per row plus ``\\n``; ``fields`` are JSON literals in key order."""
    parts: list[object] = []
    for position, (key, literal) in enumerate(fields):
        parts.append(("{" if position == 0 else ",") + json.dumps(key) + ":")
        parts.append(literal)
    parts.append("}\n")
    return pc.binary_join_element_wise(*parts, "")


def csv_lines(fields: list[pa.Array]) -> pa.Array:
    """One CSV record per row plus ``\\n``; ``fields`` are already quoted where needed, null = empty."""
    record = pc.binary_join_element_wise(*[pc.fill_null(field, "") for field in fields], ",")
    return pc.binary_join_element_wise(record, "\n", "")


def line_offsets(lines: pa.Array) -> tuple[np.ndarray, memoryview]:
    """Byte offsets (``len + 1``) and the data buffer of a string array, for slicing runs of lines."""
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    lines = pa.concat_arrays([lines])  # a fresh array starting at offset 0 in its buffers
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1)
    data = lines.buffers()[2]
    return offsets.astype(np.int64), memoryview(data if data is not None else b"")


def copy_payload(table: pa.Table) -> bytes:
    """The rows of ``table`` as PostgreSQL ``COPY ... (format csv)`` input (no header)."""
    sink = io.BytesIO()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return sink.getvalue()
