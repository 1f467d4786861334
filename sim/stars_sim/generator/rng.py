"""Named random streams: every draw comes from a stream keyed by (seed, labels), never from
global state, so any day or file can be regenerated alone with the same result."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np


def _words(labels: tuple) -> list[int]:
    text = "\x1f".join(label.isoformat() if isinstance(label, dt.date) else str(label) for label in labels)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def stream(seed: int, *labels) -> np.random.Generator:
    """An independent generator for one purpose, e.g. stream(seed, "sim", day)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), *_words(labels)])))


def stable_int(seed: int, *labels) -> int:
    """A deterministic non-negative integer for choices such as 'which provider, which hour'."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\x1f{_words(labels)}".encode(), digest_size=8).digest(), "little")


def mix64(values: np.ndarray, salt: int) -> np.ndarray:
    """A bijection on uint64 (splitmix64 finaliser): distinct inputs give distinct, random-looking outputs."""
    z = values.astype(np.uint64) ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
