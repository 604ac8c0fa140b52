"""Deterministic random streams.

Every random draw comes from a ``numpy.random.Generator`` seeded with ``(seed, chunk, stream)``,
where ``stream`` is a stable 64-bit code of a name (BLAKE2b, not Python's salted ``hash()``). So a
chunk's orders never depend on how many numbers its tickets consumed, adding a stream does not
shift the others, and the bad-record injector (its own stream) cannot disturb the good rows.
"""

from __future__ import annotations

import hashlib

import numpy as np

# Chunk slot for streams that belong to the whole dataset (population, products, faults).
WHOLE_DATASET = 2**32 - 1


def stream(seed: int, chunk: int, name: str) -> np.random.Generator:
    """A generator for stream ``name`` of ``chunk`` (or ``WHOLE_DATASET``) under ``seed``."""
    code = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([seed, chunk, code])
