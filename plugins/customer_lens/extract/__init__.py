"""Extraction: load one source entity for one data interval into the raw layer.

The interval is half-open, ``[start, end)``. :mod:`.run` is the entry point (one batch, a range of
batches), :mod:`.batch` what every kind shares, and :mod:`.postgres`, :mod:`.files` and :mod:`.http`
the kinds of source.
"""

from customer_lens.extract.batch import BatchResult, ExtractError, RejectRatioExceeded, SourceSchemaError
from customer_lens.extract.run import extract, extract_range, intervals, load_batch, loader_session

__all__ = [
    "BatchResult",
    "ExtractError",
    "RejectRatioExceeded",
    "SourceSchemaError",
    "extract",
    "extract_range",
    "intervals",
    "load_batch",
    "loader_session",
]
