"""Vectorized text building: fixed-width numbers, dates in vendor formats, local time zones,
and turning a column of lines into the bytes of a file without a Python loop per row."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
UNIX_EPOCH = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> int:
    return (day - UNIX_EPOCH).days


def day_from_number(n: int) -> dt.date:
    return UNIX_EPOCH + dt.timedelta(days=int(n))


# --- time zones ---------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def local_day_offset_ms(day: dt.date, zone: str) -> int:
    """UTC offset in force during business hours of a local day (DST switches happen at night)."""
    return int(dt.datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(zone)).utcoffset().total_seconds() * 1000)


def local_day_start_utc_ms(day: dt.date, zone: str) -> int:
    """The UTC instant of local midnight, extended at the business-hours offset (valid 04:00-24:00)."""
    return day_number(day) * MS_PER_DAY - local_day_offset_ms(day, zone)


def _offset_at(ms: int, zone: str) -> int:
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(zone))
    return int(moment.utcoffset().total_seconds() * 1000)


@lru_cache(maxsize=256)
def _transitions(zone: str, first_day: int, last_day: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets in force from each transition instant in [first_day, last_day], found by probing."""
    starts = [first_day * MS_PER_DAY]
    offsets = [_offset_at(starts[0], zone)]
    for day in range(first_day + 1, last_day + 2):
        probe = day * MS_PER_DAY
        off = _offset_at(probe, zone)
        if off != offsets[-1]:
            lo, hi = probe - MS_PER_DAY, probe  # the change happened in (lo, hi]: bisect to the second
            while hi - lo > 1000:
                mid = (lo + hi) // 2
                if _offset_at(mid, zone) == offsets[-1]:
                    lo = mid
                else:
                    hi = mid
            starts.append(hi)
            offsets.append(off)
    return np.asarray(starts, dtype=np.int64), np.asarray(offsets, dtype=np.int64)


def utc_offset_ms(utc_ms: np.ndarray, zone: str) -> np.ndarray:
    """The zone's UTC offset at each instant, daylight saving included."""
    utc_ms = np.asarray(utc_ms, dtype=np.int64)
    if utc_ms.size == 0:
        return np.zeros(0, dtype=np.int64)
    first, last = int(utc_ms.min() // MS_PER_DAY) - 1, int(utc_ms.max() // MS_PER_DAY) + 1
    starts, offsets = _transitions(zone, first, last)
    return offsets[np.searchsorted(starts, utc_ms, side="right") - 1]


def to_local_ms(utc_ms: np.ndarray, zone: str) -> np.ndarray:
    return np.asarray(utc_ms, dtype=np.int64) + utc_offset_ms(utc_ms, zone)


# --- fixed-width digits -------------------------------------------------------------------


def civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month, day for days since 1970-01-01 (H. Hinnant's algorithm, vectorized)."""
    z = np.asarray(days, dtype=np.int64) + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    return y + (m <= 2), m, d


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) ASCII digit bytes of non-negative integers, zero-padded."""
    rest = np.array(values, dtype=np.int64)  # a copy, consumed digit by digit
    out = np.empty((len(rest), width), dtype=np.uint8)
    for column in range(width - 1, -1, -1):
        out[:, column] = rest % 10 + 48
        rest //= 10
    return out


def literal(text: str, n: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text.encode("ascii"), dtype=np.uint8), (n, len(text)))


def strings_from_matrix(matrix: np.ndarray) -> pa.StringArray:
    """Each row of an (n, w) ASCII byte matrix becomes one string, without copying per row."""
    matrix = np.ascontiguousarray(matrix, dtype=np.uint8)
    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    if offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(matrix))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(matrix)).cast(pa.string())


def join_columns(*parts: np.ndarray | str) -> pa.StringArray:
    """Concatenate byte-matrix columns and literal text into one fixed-width string column."""
    n = next(p.shape[0] for p in parts if not isinstance(p, str))
    return strings_from_matrix(np.hstack([literal(p, n) if isinstance(p, str) else p for p in parts]))


def _split(local_ms: np.ndarray):
    local_ms = np.asarray(local_ms, dtype=np.int64)
    days = np.floor_divide(local_ms, MS_PER_DAY)
    rem = local_ms - days * MS_PER_DAY
    y, m, d = civil_from_days(days)
    return y, m, d, rem // MS_PER_HOUR, (rem // 60_000) % 60, (rem // 1000) % 60


def format_datetime_space(local_ms: np.ndarray) -> pa.StringArray:
    """YYYY-MM-DD HH:MM:SS"""
    y, m, d, hh, mi, ss = _split(local_ms)
    return join_columns(
        digits(y, 4), "-", digits(m, 2), "-", digits(d, 2), " ", digits(hh, 2), ":", digits(mi, 2), ":", digits(ss, 2)
    )


def format_mdy(local_ms: np.ndarray) -> pa.StringArray:
    """MM/DD/YYYY"""
    y, m, d, *_ = _split(local_ms)
    return join_columns(digits(m, 2), "/", digits(d, 2), "/", digits(y, 4))


def format_hm(local_ms: np.ndarray) -> pa.StringArray:
    """HH:MM (24 h)"""
    _, _, _, hh, mi, _ = _split(local_ms)
    return join_columns(digits(hh, 2), ":", digits(mi, 2))


def prefixed_number(prefix: str, values: np.ndarray, width: int) -> pa.StringArray:
    """e.g. prefixed_number('IH', ..., 10) -> 'IH0001000042'."""
    values = np.asarray(values, dtype=np.int64)
    return join_columns(prefix, digits(values, width)) if prefix else strings_from_matrix(digits(values, width))


# Two hex digits for every byte value.
_HEX_PAIRS = {
    upper: np.frombuffer("".join(f"{b:02X}" if upper else f"{b:02x}" for b in range(256)).encode(), dtype=np.uint8).reshape(
        256, 2
    )
    for upper in (False, True)
}


def hex_digits(values: np.ndarray, width: int, upper: bool = False) -> np.ndarray:
    """(n, width) hex digit bytes of unsigned integers (the low `width` nibbles, width even)."""
    big_endian = np.asarray(values, dtype=np.uint64).astype(">u8").view(np.uint8).reshape(-1, 8)
    return _HEX_PAIRS[upper][big_endian[:, 8 - width // 2 :]].reshape(-1, width)


def int_strings(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


# --- lines to bytes -----------------------------------------------------------------------


def concat_text(*parts) -> pa.Array:
    """Element-wise concatenation of string arrays and literal strings."""
    return pc.binary_join_element_wise(*parts, "")


def lines_bytes(lines: pa.Array) -> memoryview:
    """The bytes of a string column whose values already end in a line terminator."""
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    if len(lines) == 0:
        return memoryview(b"")
    width = 8 if pa.types.is_large_string(lines.type) else 4
    bufs = lines.buffers()
    offsets = np.frombuffer(
        bufs[1], dtype=np.int64 if width == 8 else np.int32, count=len(lines) + 1, offset=lines.offset * width
    )
    return memoryview(bufs[2])[int(offsets[0]) : int(offsets[-1])]
