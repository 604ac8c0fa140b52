"""Extraction from ``files`` sources (CSV, NDJSON, parquet) — and the landing path APIs share.

Files are read in a streaming way (line by line; NDJSON in chunks of whole lines; parquet a small file
at once, a big one in record batches), so memory stays bounded whatever their size. Each record lands
as text in a temporary table, all of a batch's files in one COPY (an undecodable line is kept as a
reject with its number). NDJSON chunks are parsed by pyarrow into their columns' text; a chunk pyarrow
refuses, or could read differently from PostgreSQL, lands line by line as raw text and SQL parses its
JSON (:class:`_JsonLanding`): the outcome is the same either way. Then SQL types every value with
``pg_input_is_valid`` and the range rules (one statement), finds repeated record versions and applies
the batch. :func:`load_landed` is that second half, reused by the ``http`` kind.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import Connection, Copy, sql

from customer_lens.config.source_config import Entity, Source
from customer_lens.extract import raw
from customer_lens.extract.batch import (
    BatchResult,
    SourceSchemaError,
    apply_batch,
    create_temp_rejects,
    ident,
    key_text,
    range_check,
    staging_transaction,
)

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000

Arrow = Any  # a pyarrow table, array or schema: pyarrow ships no types
Line = tuple[int, str | None, bytes]  # (line number, text or None when undecodable, raw bytes)


def _location(source: Source) -> Path:
    """The folder of a ``files`` source (source_config requires it for that kind)."""
    assert source.location is not None, f"files source {source.name} without a location"
    return source.location


def files_for_interval(source: Source, entity: Entity, start: dt.datetime, end: dt.datetime) -> list[Path]:
    """The entity's files for the interval, in name order: dated within ``[start, end)`` by name, or all of them."""
    assert entity.glob is not None, f"{source.name}.{entity.name}: a files entity has a glob"
    paths = _listing(_location(source), entity.glob)
    if not entity.file_date:
        return sorted(paths)
    chosen = []
    for path in paths:
        day = _file_day(path.name, entity.file_date)
        if day is None:
            log.warning("ignoring %s: its name does not match %s", path, entity.file_date)
        elif start <= day < end:
            chosen.append(path)
    return sorted(chosen)


def _listing(location: Path, pattern: str) -> tuple[Path, ...]:
    """The files ``pattern`` matches in ``location``. A flat pattern's listing is kept while the folder's
    modification time stays the same (a file added, renamed or removed changes it), so the batches of a
    range do not list a folder of a thousand day files once each. Only a folder unchanged for a few
    seconds is cached: timestamps are coarser than a nanosecond, and a file added within the same tick as
    the listing must not be missed."""
    if "/" in pattern or "**" in pattern:
        return tuple(location.glob(pattern))
    try:
        stamp = location.stat().st_mtime_ns
    except OSError:
        return tuple(location.glob(pattern))
    if time.time_ns() - stamp < 5_000_000_000:
        return tuple(location.glob(pattern))
    return _flat_listing(location, pattern, stamp)


@functools.lru_cache(maxsize=64)
def _flat_listing(location: Path, pattern: str, stamp: int) -> tuple[Path, ...]:
    return tuple(location.glob(pattern))


@functools.lru_cache(maxsize=1 << 16)
def _file_day(name: str, file_date: str) -> dt.datetime | None:
    """The day a file's name gives (``None`` when it does not match): each name is parsed once per process,
    not once per batch of a range (a three-year history of day files is read in 37 month batches)."""
    try:
        return dt.datetime.strptime(name, file_date).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _physical_lines(fh: Iterable[bytes]) -> Iterator[bytes]:
    """The file's lines without their ends: LF, CRLF, or a lone CR (files from old Mac tools)."""
    for data in fh:
        data = data.rstrip(b"\r\n")
        if b"\r" in data:
            yield from data.split(b"\r")
        else:
            yield data


def _decoded_lines(path: Path, encoding: str) -> Iterator[Line]:
    """(line number, text or None, raw bytes) per physical line; None marks an undecodable line."""
    with open(path, "rb") as fh:
        for number, data in enumerate(_physical_lines(fh), start=1):
            try:
                yield number, data.decode(encoding), data
            except UnicodeDecodeError:
                yield number, None, data


# A quoted CSV field may span lines (a survey comment with a line break), but no record grows beyond this:
# an unterminated quote is a malformed record, not a reason to read the rest of the file into memory.
MAX_RECORD_BYTES = 16 * 1024 * 1024
csv.field_size_limit(MAX_RECORD_BYTES)  # the csv module's default (128 KB) would reject a long comment


def _csv_records(path: Path, encoding: str) -> Iterator[Line]:
    """(first line number, text or None, raw bytes) per CSV record: physical lines joined while a quoted
    field is open (an odd number of quote characters so far). None marks an undecodable record."""
    start, size = 0, 0
    texts: list[str | None] = []
    raws: list[bytes] = []
    for number, text, data in _decoded_lines(path, encoding):
        if not raws:
            if text is not None and text.count('"') % 2 == 0:
                yield number, text, data
                continue
            start = number
        raws.append(data)
        size += len(data)
        texts.append(text)
        joined = _joined(texts)
        if joined is None or joined.count('"') % 2 == 0 or size > MAX_RECORD_BYTES:
            yield start, joined, b"\n".join(raws)
            texts, raws, size = [], [], 0
    if raws:  # an unterminated quote at the end of the file: a malformed record
        yield start, _joined(texts), b"\n".join(raws)


def _joined(texts: list[str | None]) -> str | None:
    """The lines of a record as one text; None when one of them is undecodable."""
    decoded = [text for text in texts if text is not None]
    return "\n".join(decoded) if len(decoded) == len(texts) else None


def _is_json(source: Source) -> bool:
    """JSON records (NDJSON files, HTTP APIs) land as raw text and are parsed in SQL."""
    return source.kind == "http" or source.format == "ndjson"


def _landing_columns(source: Source, entity: Entity) -> list[str]:
    return [] if _is_json(source) else [c.name for c in entity.columns]


def _create_landing(conn: Connection, source: Source, entity: Entity) -> None:
    # JSON rows land as raw text (parsed in SQL), or, when pyarrow read them (:class:`_JsonLanding`),
    # already split into the columns' text, with the line's byte offset in its file (``_offset``): the SQL
    # JSON parsing is skipped for them, and their raw text is read again only if needed (:func:`_fill_raw`).
    names = [c.name for c in entity.columns]
    text_cols = "".join(f", {sql.Identifier(c).as_string(conn)} text" for c in names)
    conn.execute("drop table if exists _lens_landing")
    conn.execute(
        f"""create temp table _lens_landing (
            _ord bigserial, _source_file text, _source_line bigint, _raw text, _parse_error text, _extra jsonb,
            _offset bigint
            {text_cols})"""
    )


def _land_ndjson(copy: Copy, rel: str, path: Path, encoding: str) -> None:
    _land_json_lines(copy, rel, _decoded_lines(path, encoding), encoding)


def _land_json_lines(copy: Copy, rel: str, lines: Iterable[Line], encoding: str) -> None:
    """Land (line number, text or None, raw bytes) lines as raw text, for SQL to parse (the exact path)."""
    for number, text, data in lines:
        if text is None:
            copy.write_row((rel, number, data.decode(encoding, errors="backslashreplace"), "invalid_utf8", None))
        elif "\x00" in text:  # PostgreSQL text cannot hold it: a reject, shown escaped
            copy.write_row((rel, number, text.replace("\x00", "\\x00"), "nul_byte", None))
        elif text.strip():
            copy.write_row((rel, number, text, None, None))


# -- NDJSON through pyarrow ---------------------------------------------------------------------------
# A file is read in chunks of whole lines. pyarrow parses a chunk (in C++) into the configured columns, whose
# text lands directly; the SQL JSON parsing is then skipped for those rows. pyarrow reads only what is
# unambiguous: a chunk it refuses, or one where its reading could differ from PostgreSQL's (below), lands line
# by line as raw text, as before, and SQL parses and judges each line (same rejects, reasons, numbers).
JSON_CHUNK_BYTES = 8 << 20
# A JSON number lands as pyarrow writes an int64 (as PostgreSQL's ->> would: no fraction, no exponent, or
# pyarrow refuses it); booleans as true/false. Every other column reads JSON strings only (a number there
# would be refused, so the exact path keeps its text).
_ARROW_JSON_INTEGERS = frozenset({"bigint", "integer"})
_BOM = b"\xef\xbb\xbf"


def _text_array(text: str, count: int) -> Arrow:
    """``text`` ``count`` times as a pyarrow string array, built from buffers. (Any conversion of Python
    objects, e.g. ``pa.repeat(text, count)``, makes pyarrow import pandas: up to a second per process.)"""
    import numpy as np
    import pyarrow as pa

    data = text.encode()
    offsets = np.arange(count + 1, dtype=np.int64) * len(data)
    return pa.Array.from_buffers(pa.large_string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data * count)])


def _binary_array(data: bytes) -> Arrow:
    """``data`` as a one-value pyarrow binary array, without copying it (see :func:`_text_array`)."""
    import numpy as np
    import pyarrow as pa

    offsets = np.array([0, len(data)], np.int64)
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _json_read_schema(source: Source, entity: Entity) -> Arrow | None:
    """The pyarrow schema a clean NDJSON line of the entity reads with, or None (no fast path: the exact one)."""
    import codecs

    import pyarrow as pa

    sources = [c.source for c in entity.columns]
    if len(set(sources)) != len(sources) or codecs.lookup(source.encoding).name != "utf-8":
        return None
    return pa.schema(
        [
            (
                c.source,
                pa.int64() if c.type in _ARROW_JSON_INTEGERS else pa.bool_() if c.type == "boolean" else pa.string(),
            )
            for c in entity.columns
        ]
    )


def _json_chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, chunk): the file as chunks of whole lines (ending at a LF, the last one maybe not) of
    about JSON_CHUNK_BYTES."""
    size = JSON_CHUNK_BYTES
    offset = 0
    with open(path, "rb") as fh:
        rest = b""
        while block := fh.read(size):
            data = rest + block
            cut = data.rfind(b"\n") + 1
            if cut:
                yield offset, data[:cut]
                offset += cut
                rest = data[cut:]
            else:  # one line longer than the chunk so far
                rest = data
        if rest:
            yield offset, rest


# A blank line after the first (searched from a line end: much faster than from every position), and the first.
_BLANK_LINE = re.compile(rb"\n[ \t\x0b\x0c]*(?:\n|\Z)")
_BLANK_FIRST_LINE = re.compile(rb"[ \t\x0b\x0c]*(?:\n|\Z)")


def _plain_lines(chunk: bytes) -> int | None:
    """How many lines the chunk has, or None when pyarrow may read it differently from PostgreSQL (a
    byte-order mark, an escaped NUL) or number its lines differently (blank lines, CR line ends, a NUL byte)."""
    if b"\r" in chunk or b"\x00" in chunk or b"\\u0000" in chunk or chunk.startswith(_BOM):
        return None
    body = chunk[:-1] if chunk.endswith(b"\n") else chunk
    if _BLANK_FIRST_LINE.match(body) or _BLANK_LINE.search(body):
        return None
    return body.count(b"\n") + 1


def _read_json(chunk: bytes, lines: int, schema: Arrow) -> Arrow | None:
    """``chunk`` read by pyarrow, one row per line; None when pyarrow refuses it (bad JSON, a key given twice,
    an unknown field, a value of another JSON type, ...) or reads another number of rows (two objects on
    a line)."""
    import pyarrow as pa
    import pyarrow.json as pajson

    try:
        # pyarrow.json does not check that strings are UTF-8 (nor would COPY take them): the exact path rejects
        # such a line as invalid_utf8
        _binary_array(chunk).cast(pa.large_string())
        table = pajson.read_json(
            pa.py_buffer(chunk),
            read_options=pajson.ReadOptions(block_size=1 << 20),
            parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == lines else None


@dataclass
class _JsonPiece:
    """A chunk of one file, its first line's number, how many lines it has (None: only the exact path reads
    it) and where it starts in the file."""

    rel: str
    number: int
    chunk: bytes
    lines: int | None
    offset: int

    @property
    def line_count(self) -> int:
        """How many lines a piece pyarrow reads has (only such pieces are read by pyarrow)."""
        assert self.lines is not None, "a piece only the exact path reads"
        return self.lines


def _json_pieces(path: Path, rel: str) -> Iterator[_JsonPiece]:
    number = 1
    for offset, chunk in _json_chunks(path):
        lines = _plain_lines(chunk)
        yield _JsonPiece(rel, number, chunk, lines, offset)
        number += lines if lines is not None else sum(1 for _ in _physical_lines(io.BytesIO(chunk)))


class _TypedRows:
    """Landing rows pyarrow read, as CSV text sent in one COPY per few megabytes (not one per file)."""

    FLUSH_BYTES = 16 << 20

    def __init__(self, conn: Connection, entity: Entity):
        self.conn = conn
        self.names = ["_source_file", "_source_line", "_offset", *(c.name for c in entity.columns)]
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, table: Arrow) -> None:
        import pyarrow.csv as pacsv

        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
        self.parts.append(buffer.getvalue())
        self.size += len(self.parts[-1])
        if self.size >= self.FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.parts:
            return
        target = ", ".join(sql.Identifier(c).as_string(self.conn) for c in self.names)
        with self.conn.cursor().copy(f"copy _lens_landing ({target}) from stdin (format csv)") as copy:
            for part in self.parts:
                copy.write(part)
        self.parts, self.size = [], 0


class _JsonLanding:
    """Lands a batch's NDJSON files in order: consecutive pieces read together by pyarrow (a thousand small
    day files are a few reads, not a thousand), a piece pyarrow does not read line by line as raw text
    (:func:`_land_json_lines`), exactly as before."""

    def __init__(self, conn: Connection, source: Source, entity: Entity, schema: Arrow):
        self.conn, self.source, self.entity, self.schema = conn, source, entity, schema
        self.typed = _TypedRows(conn, entity)
        self.group: list[_JsonPiece] = []
        self.size = 0

    def add(self, piece: _JsonPiece) -> None:
        if piece.lines is None:
            self._exact(piece)
            return
        self.group.append(piece)
        self.size += len(piece.chunk)
        if self.size >= JSON_CHUNK_BYTES:
            self._read_group()

    def close(self) -> None:
        self._read_group()
        self.typed.flush()

    def _read_group(self) -> None:
        group, self.group, self.size = self.group, [], 0
        if not group:
            return
        data = b"".join(p.chunk if p.chunk.endswith(b"\n") else p.chunk + b"\n" for p in group)
        table = _read_json(data, sum(p.line_count for p in group), self.schema)
        if table is not None:
            self._typed(group, table)
            return
        for piece in group:  # one of them is refused: read each alone
            table = _read_json(piece.chunk, piece.line_count, self.schema) if len(group) > 1 else None
            if table is None:
                self._exact(piece)
            else:
                self._typed([piece], table)

    def _typed(self, group: list[_JsonPiece], table: Arrow) -> None:
        import numpy as np
        import pyarrow as pa

        files = pa.concat_arrays([_text_array(p.rel, p.line_count) for p in group])
        numbers = pa.concat_arrays([pa.arange(p.number, p.number + p.line_count) for p in group])
        starts = []  # each line's byte offset in its file
        for piece in group:
            ends = np.flatnonzero(np.frombuffer(piece.chunk, np.uint8) == ord("\n"))
            starts += [
                np.array([piece.offset], np.int64),
                (ends[: piece.line_count - 1] + 1 + piece.offset).astype(np.int64),
            ]
        offsets = np.concatenate(starts)
        arrays = [files, numbers, pa.Array.from_buffers(pa.int64(), len(offsets), [None, pa.py_buffer(offsets)])]
        arrays += [table.column(c.source).cast(pa.string()) for c in self.entity.columns]
        self.typed.add(pa.Table.from_arrays(arrays, names=self.typed.names))

    def _exact(self, piece: _JsonPiece) -> None:
        self._read_group()
        self.typed.flush()  # the landing keeps the files' order
        encoding = self.source.encoding
        with landing_copy(self.conn, self.source, self.entity) as copy:
            _land_json_lines(copy, piece.rel, _decoded_chunk_lines(piece, encoding), encoding)


def _decoded_chunk_lines(piece: _JsonPiece, encoding: str) -> Iterator[Line]:
    """:func:`_decoded_lines` of a piece of a file."""
    for number, data in enumerate(_physical_lines(io.BytesIO(piece.chunk)), start=piece.number):
        try:
            yield number, data.decode(encoding), data
        except UnicodeDecodeError:
            yield number, None, data


def _csv_header(rel: str, text: str | None, entity: Entity, result: BatchResult) -> list[str]:
    """The file's header, checked against the entity: no repeated name, every required column present.
    Missing optional columns and extra fields are noted on the batch."""
    if text is None:
        raise SourceSchemaError(f"{rel}: no readable header line")
    header = next(csv.reader([text.removeprefix("\ufeff")]))  # a byte-order mark is not a name
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:  # which of the two is the value? Neither is guessed.
        raise SourceSchemaError(f"{rel}: column {repeated[0]!r} appears twice in the header ({', '.join(header)})")
    for column in entity.columns:
        if column.source in header:
            continue
        if column.required:
            raise SourceSchemaError(
                f"{rel}: required column {column.source!r} is missing (header: {', '.join(header)})"
            )
        if column.name not in result.missing_columns:
            result.missing_columns.append(column.name)
    known = {c.source for c in entity.columns}
    for name in header:
        if name not in known and name not in result.extra_fields:
            result.extra_fields.append(name)
    return header


def _csv_reject(text: str | None, data: bytes, encoding: str) -> tuple[str, str] | None:
    """(raw text, reason) when a line cannot be parsed at all; None for a line to parse."""
    if text is None:
        return data.decode(encoding, errors="backslashreplace"), "invalid_utf8"
    if "\x00" in text:  # PostgreSQL text cannot hold it: a reject, shown escaped
        return text.replace("\x00", "\\x00"), "nul_byte"
    return None


def _land_csv(copy: Copy, rel: str, path: Path, source: Source, entity: Entity, result: BatchResult) -> None:
    lines = _csv_records(path, source.encoding)
    header_line = next(lines, None)
    header = _csv_header(rel, header_line[1] if header_line else None, entity, result)
    position = {name: i for i, name in enumerate(header)}
    known = {c.source for c in entity.columns}
    extras = [name for name in header if name not in known]
    picks = [position.get(c.source) for c in entity.columns]
    no_values = (None,) * len(picks)
    for number, text, data in lines:
        rejected = _csv_reject(text, data, source.encoding)
        if rejected is not None:
            copy.write_row((rel, number, rejected[0], rejected[1], None, *no_values))
            continue
        assert text is not None  # an undecodable line is rejected just above
        if not text.strip():
            continue
        try:
            (fields,) = list(csv.reader([text], strict=True))
        except (csv.Error, ValueError):
            fields = None
        if fields is None or len(fields) != len(header):
            copy.write_row((rel, number, text, "malformed_row", None, *no_values))
            continue
        extra = json.dumps({h: fields[position[h]] for h in extras}, ensure_ascii=False) if extras else None
        values = tuple(fields[i] if i is not None and fields[i] != "" else None for i in picks)
        copy.write_row((rel, number, text, None, extra, *values))


class _ParquetRows:
    """Landing rows of a batch's parquet files as CSV text into one COPY: the files' tables (as read) are put
    together, then cast to text a column at a time and written every few thousand rows (not a cast per
    column, a table, a CSV text and a COPY per small day file)."""

    def __init__(self, copy: Copy, entity: Entity):
        self.copy, self.entity = copy, entity
        self.names = ["_source_file", "_source_line", *(c.name for c in entity.columns)]
        self.parts: list[tuple[str, int, Arrow]] = []  # (file, its first row's number, table as read)
        self.rows = 0

    def add(self, rel: str, line: int, table: Arrow) -> None:
        if self.parts and not table.schema.equals(self.parts[0][2].schema):
            self.flush()  # put together only tables of the same columns and types
        self.parts.append((rel, line, table))
        self.rows += table.num_rows
        if self.rows >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        if not self.parts:
            return
        parts, self.parts, self.rows = self.parts, [], 0
        table = pa.concat_tables([t for _, _, t in parts])
        count = table.num_rows
        arrays = [
            pa.concat_arrays([_text_array(rel, t.num_rows) for rel, _, t in parts]),
            pa.concat_arrays([pa.arange(line, line + t.num_rows) for _, line, t in parts]),
        ]
        cursor = self.entity.column(self.entity.cursor) if self.entity.cursor else None
        for column in self.entity.columns:
            if column.source not in table.column_names:  # a missing optional column: null
                arrays.append(pa.nulls(count, pa.string()))
                continue
            values = table.column(column.source)
            if pa.types.is_timestamp(values.type) and values.type.tz is None and cursor is not None:
                values = pc.assume_timezone(values, "UTC")
            arrays.append(pc.cast(values, pa.string()))
        buffer = io.BytesIO()
        pacsv.write_csv(
            pa.Table.from_arrays(arrays, names=self.names), buffer, pacsv.WriteOptions(include_header=False)
        )
        self.copy.write(buffer.getbuffer())


def _land_parquet(rel: str, path: Path, entity: Entity, result: BatchResult, rows: _ParquetRows) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    present = [c for c in entity.columns if c.source in names]
    for column in entity.columns:
        if column.source not in names:
            if column.required:
                raise SourceSchemaError(f"{rel}: required column {column.source!r} is missing")
            result.missing_columns.append(column.name)
    result.extra_fields.extend(n for n in names if n not in {c.source for c in entity.columns})
    columns = [c.source for c in present]
    tables: Iterable[Arrow]
    if columns and parquet.metadata.num_rows <= CHUNK_ROWS:  # a small file at once (quicker than in batches)
        tables = [parquet.read(columns=columns, use_threads=False)]
    else:
        tables = (pa.Table.from_batches([b]) for b in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=columns))
    line = 1
    for table in tables:
        if table.num_rows:
            rows.add(rel, line, table)
        line += table.num_rows


def _nulled(value: sql.Composable, source: Source) -> sql.Composable:
    """``value``, or null when it is one of the source's ``null_values`` ("?", "N/A")."""
    if not source.null_values:
        return value
    markers = sql.SQL(", ").join(map(sql.Literal, source.null_values))
    return sql.SQL("case when {v} in ({m}) then null else {v} end").format(v=value, m=markers)


def _parsed_rows(source: Source, entity: Entity) -> sql.Composable:
    """A query: one row per landed line, each configured column as text (``v_<name>``)."""
    if _is_json(source):
        values = sql.SQL(", ").join(
            sql.SQL("{} as {}").format(
                _nulled(sql.SQL("d._doc ->> {}").format(sql.Literal(c.source)), source), ident(f"v_{c.name}")
            )
            for c in entity.columns
        )
        known = sql.SQL(", ").join(sql.Literal(c.source) for c in entity.columns)
        typed = sql.SQL(", ").join(_nulled(ident(c.name), source) for c in entity.columns)
        query = sql.SQL(
            """
            select l._ord, l._source_file, l._source_line, l._raw, null::bigint as _offset,
                   coalesce(l._parse_error, case when d._doc is null then 'malformed_json'
                       -- a key given twice: jsonb would keep the last silently; the record is rejected
                       when (select count(*) from json_object_keys(l._raw::json))
                            <> (select count(*) from jsonb_object_keys(d._doc)) then 'duplicate_json_key'
                       end) as _parse_error,
                   nullif(d._doc - array[{known}]::text[], '{{}}'::jsonb) as _drift, {values}
            from _lens_landing l
            cross join lateral (
                select case when jsonb_typeof(v._value) = 'object' then v._value end as _doc
                from (
                    select case when l._parse_error is null and pg_input_is_valid(l._raw, 'jsonb')
                                then l._raw::jsonb end as _value
                    offset 0
                ) v
                -- (offset 0: each line parsed once; inlined, every column's ->> would parse it again)
                offset 0) d
            where l._offset is null
            union all
            -- lines pyarrow read (files.py, _JsonLanding): their columns' text is what ->> gives
            select _ord, _source_file, _source_line, _raw, _offset, null::text, null::jsonb, {typed}
            from _lens_landing where _offset is not null"""
        ).format(known=known, values=values, typed=typed)
    else:
        values = sql.SQL(", ").join(
            sql.SQL("{} as {}").format(_nulled(ident(c.name), source), ident(f"v_{c.name}")) for c in entity.columns
        )
        # Parquet rows have no raw text line: keep the row as JSON so a reject still shows its values.
        as_json = sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(c.source), ident(c.name)) for c in entity.columns
        )
        query = sql.SQL(
            "select _ord, _source_file, _source_line, coalesce(_raw, json_build_object({as_json})::text) as _raw, "
            "_offset, _parse_error, _extra as _drift, {values} from _lens_landing"
        ).format(values=values, as_json=as_json)
    return query


def _check_landing(
    conn: Connection, source: Source, entity: Entity, window: tuple[dt.datetime, dt.datetime] | None
) -> None:
    """``_lens_checked``: the landed rows parsed (:func:`_parsed_rows`), their values typed, plus ``_reason``
    (null for a good row, else why it is rejected). One pass: nothing in between is written out."""
    whens = []
    for column in entity.columns:
        value = ident(f"v_{column.name}")
        if column.required:
            whens.append(
                sql.SQL("when {} is null then {}").format(value, sql.Literal(f"missing_required_field:{column.name}"))
            )
        if column.type != "text":
            whens.append(
                sql.SQL("when {v} is not null and not pg_input_is_valid({v}, {t}) then {r}").format(
                    v=value, t=sql.Literal(column.type), r=sql.Literal(f"invalid_value:{column.name}")
                )
            )
        check = range_check(column, sql.SQL("{}::{}").format(value, sql.SQL(column.type)))
        if check is not None:
            whens.append(sql.SQL("when {} then {}").format(check, sql.Literal(f"out_of_range:{column.name}")))
    reason = sql.SQL("case {} end").format(sql.SQL(" ").join(whens)) if whens else sql.SQL("null::text")
    window_sql: sql.Composable = sql.SQL("true")
    if window is not None:  # one big file filtered on a cursor column
        value = ident(f"v_{entity.cursor}")
        window_sql = sql.SQL(
            "_parse_error is not null or not pg_input_is_valid({v}, 'timestamptz') "
            "or ({v}::timestamptz >= {s} and {v}::timestamptz < {e})"
        ).format(v=value, s=sql.Literal(window[0]), e=sql.Literal(window[1]))
    casts = sql.SQL(", ").join(
        sql.SQL("case when q._reason is null then q.{}::{} end as {}").format(
            ident(f"v_{c.name}"), sql.SQL(c.type), ident(c.name)
        )
        for c in entity.columns
    )
    conn.execute("drop table if exists _lens_checked")
    conn.execute(
        sql.SQL(
            """
            create temp table _lens_checked as
            -- the typed values, not their text as well (half the width to write and read again): of the
            -- text, only the key shown with a reject is kept
            select q._ord, q._source_file, q._source_line, q._raw, q._offset, q._parse_error, q._drift, q._reason,
                   {key} as _key, {casts}
            from (
                select p.*, coalesce(p._parse_error, {reason}) as _reason from ({parsed}) p where {window}
                offset 0  -- the reason computed once per row, not again in each column's case
            ) q"""
        ).format(
            casts=casts,
            reason=reason,
            window=window_sql,
            parsed=_parsed_rows(source, entity),
            key=key_text([f"v_{k}" for k in entity.primary_key]),
        )
    )


def _land_parquet_files(
    conn: Connection, source: Source, entity: Entity, result: BatchResult, paths: list[Path]
) -> None:
    """A batch's parquet files, in one COPY of their rows as CSV text."""
    target = ", ".join(
        sql.Identifier(c).as_string(conn) for c in ["_source_file", "_source_line"] + [c.name for c in entity.columns]
    )
    with conn.cursor().copy(f"copy _lens_landing ({target}) from stdin (format csv)") as copy:
        rows = _ParquetRows(copy, entity)
        for path in paths:
            _land_parquet(str(path.relative_to(_location(source))), path, entity, result, rows)
        rows.flush()


def _land_text_files(conn: Connection, source: Source, entity: Entity, result: BatchResult, paths: list[Path]) -> None:
    """A batch's CSV (or NDJSON read line by line) files, in one COPY."""
    with landing_copy(conn, source, entity) as copy:
        for path in paths:
            rel = str(path.relative_to(_location(source)))
            if source.format == "ndjson":
                _land_ndjson(copy, rel, path, source.encoding)
            else:
                _land_csv(copy, rel, path, source, entity, result)


def extract_files(conn: Connection, source: Source, entity: Entity, result: BatchResult) -> None:
    paths = files_for_interval(source, entity, result.interval_start, result.interval_end)
    result.files = [str(p.relative_to(_location(source))) for p in paths]
    if not paths:  # an empty interval: its earlier rows go and the batch is recorded, in one transaction
        apply_batch(
            conn,
            source,
            entity,
            result,
            lambda: 0,
            ratio=source.max_reject_ratio,
            stage_rejects=lambda: create_temp_rejects(conn),
        )
        return

    def land() -> Path | None:
        if source.format == "parquet":
            _land_parquet_files(conn, source, entity, result, paths)
            return None
        schema = _json_read_schema(source, entity) if source.format == "ndjson" else None
        if schema is not None:
            landing = _JsonLanding(conn, source, entity, schema)
            for path in paths:
                for piece in _json_pieces(path, str(path.relative_to(_location(source)))):
                    landing.add(piece)
            landing.close()
            return source.location  # typed rows' raw text is read from there when needed
        _land_text_files(conn, source, entity, result, paths)
        return None

    load_landed(conn, source, entity, result, land)


def landing_copy(conn: Connection, source: Source, entity: Entity) -> AbstractContextManager[Copy]:
    """A COPY into the landing table: rows of (file, line, raw text, parse error, extra, *text columns)."""
    cols = ["_source_file", "_source_line", "_raw", "_parse_error", "_extra", *_landing_columns(source, entity)]
    target = ", ".join(sql.Identifier(c).as_string(conn) for c in cols)
    return conn.cursor().copy(f"copy _lens_landing ({target}) from stdin")


def load_landed(
    conn: Connection, source: Source, entity: Entity, result: BatchResult, land: Callable[[], Path | None]
) -> None:
    """Land rows with ``land()``, then type, check and de-duplicate them in SQL and apply the batch."""
    start, end = result.interval_start, result.interval_end
    with staging_transaction(conn):
        create_temp_rejects(conn)
        _create_landing(conn, source, entity)
        raw_files = land()
        # A file source without dated names (one big file) and an API are filtered on the cursor here.
        by_cursor = entity.cursor and not entity.file_date and source.kind == "files"
        _check_landing(conn, source, entity, (start, end) if by_cursor else None)
        _classify_duplicates(conn, source, entity, start, end, files=result.files, raw_files=raw_files)
        if raw_files is not None:  # the raw text of the rejects
            _fill_raw(conn, source, raw_files, sql.SQL("_reason is not null"))
        if _is_json(source):
            drift = conn.execute(
                "select distinct jsonb_object_keys(_drift) from _lens_checked where _drift is not null order by 1"
            ).fetchall()
            result.extra_fields = [row[0] for row in drift]
        conn.execute(
            sql.SQL(
                """
                insert into _lens_rejects (_source_file, _source_line, record_key, raw_text, reason, detail)
                select _source_file, _source_line, _key, _raw, split_part(_reason, ':', 1), _reason
                from _lens_checked where _reason is not null order by _ord"""
            )
        )

    columns = [c.name for c in entity.columns]
    target_cols = sql.SQL(", ").join(
        [ident(c) for c in columns]
        + [
            ident(c)
            for c in ("_batch_id", "_interval_start", "_interval_end", "_source_file", "_source_line", "_extra")
        ]
    )

    def load_good_rows() -> int:
        return conn.execute(
            sql.SQL(
                "insert into {table} ({target}) select {cols}, %s, %s, %s, _source_file, _source_line, _drift "
                "from _lens_checked where _reason is null order by _ord"
            ).format(
                table=raw.table(source, entity.name),
                target=target_cols,
                cols=sql.SQL(", ").join(ident(c) for c in columns),
            ),
            (result.batch_id, start, end),
        ).rowcount

    apply_batch(conn, source, entity, result, load_good_rows, ratio=source.max_reject_ratio)


def _fill_raw(conn: Connection, source: Source, location: Path, which: sql.Composable) -> None:
    """Read again, from their files, the raw text of the typed rows ``which`` selects (pyarrow read them,
    their text was not landed). A typed line is a LF-terminated line of a chunk without CR (_plain_lines):
    its text is the bytes from its offset to the LF."""
    rows = conn.execute(
        sql.SQL(
            "select _ord, _source_file, _offset from _lens_checked where _raw is null and _offset is not null "
            "and ({}) order by _source_file, _offset"
        ).format(which)
    ).fetchall()
    if not rows:
        return
    conn.execute("create temp table if not exists _lens_raw (_ord bigint primary key, _raw text)")
    conn.execute("truncate _lens_raw")
    with conn.cursor().copy("copy _lens_raw (_ord, _raw) from stdin") as copy:
        for rel, group in itertools.groupby(rows, key=lambda row: row[1]):
            with open(location / rel, "rb") as fh:
                for ord_, _, offset in group:
                    fh.seek(offset)
                    copy.write_row((ord_, fh.readline().removesuffix(b"\n").decode(source.encoding)))
    conn.execute("update _lens_checked c set _raw = r._raw from _lens_raw r where r._ord = c._ord")


def _classify_duplicates(
    conn: Connection,
    source: Source,
    entity: Entity,
    start: dt.datetime,
    end: dt.datetime,
    *,
    files: list[str] | None = None,
    raw_files: Path | None = None,
) -> None:
    """Mark repeats of a record version: in this batch (after the first) or already in other intervals.

    Rows this batch replaces (raw.clear_interval: its interval's batches, and in a longer batch the rows of
    its cursor range or of its files) are not "another interval": reloading a day of a loaded month is no
    duplicate.
    """
    key = raw.version_key(entity)
    if not key:
        return
    cols = sql.SQL(", ").join(ident(k) for k in key)
    # Each later row of a key is compared with the first: the same raw text is a duplicate. The pairs are
    # found first (usually none), so only their raw text is compared (and read again from the file when
    # pyarrow read the line, see _fill_raw).
    conn.execute("drop table if exists _lens_repeats")
    repeats = conn.execute(
        sql.SQL(
            """
            create temp table _lens_repeats as
            select _ord, first_ord from (
                select _ord, row_number() over w as n, first_value(_ord) over w as first_ord
                from _lens_checked where _reason is null
                window w as (partition by {cols} order by _ord)
            ) r where n > 1"""
        ).format(cols=cols)
    ).rowcount
    if repeats:
        if raw_files is not None:
            _fill_raw(
                conn,
                source,
                raw_files,
                sql.SQL("_ord in (select _ord from _lens_repeats union all select first_ord from _lens_repeats)"),
            )
        conn.execute(
            """
            update _lens_checked c
            set _reason = case when f._raw = c._raw then 'duplicate' else 'duplicate_key' end
            from _lens_repeats r join _lens_checked f on f._ord = r.first_ord
            where r._ord = c._ord"""
        )
    conn.execute(
        sql.SQL(
            """
            update _lens_checked c set _reason = 'duplicate_key:loaded in another interval'
            where c._reason is null and exists (
                select 1 from {table} t where ({tcols}) = ({ccols})
                and not (t._interval_start >= %(start)s and t._interval_end <= %(end)s)
                and not {replaced})"""
        ).format(
            table=raw.table(source, entity.name),
            tcols=sql.SQL(", ").join(sql.SQL("t.{}").format(ident(k)) for k in key),
            ccols=sql.SQL(", ").join(sql.SQL("c.{}").format(ident(k)) for k in key),
            replaced=(
                sql.SQL("coalesce(t.{c} >= %(start)s and t.{c} < %(end)s, false)").format(c=ident(entity.cursor))
                if entity.cursor
                else sql.SQL("coalesce(t._source_file = any(%(files)s), false)")
            ),
        ),
        {"start": start, "end": end, "files": list(files or [])},
    )
