"""What a provider's landing folder holds, and what a file's bytes say before any parser sees them.

`inventory` accounts for every entry under the folder: the files to read (a dataset's name
pattern, directly in the folder, settled) and, with the reason they are not read, everything
else: names no pattern recognises, files in sub-folders, symbolic links (never followed, so a
link pointing outside the folder cannot make the pipeline read it), other special entries and
files still being written. Each entry carries the delivery date its name gives, or None.

`scan_file` reads a file once, in large blocks, for its content hash and, for line formats, its
physical line count and the lines longer than the parser's limit (the parser may lose a line
far beyond its limit without a trace, so the count is what proves nothing vanished). A gzip
file is decompressed in the same pass: a file that is not gzip at all and one cut short are
told apart, and a decompression bomb is stopped at a size limit. The decompressed bytes can be
written out as they come (`inflate_to`), so the parser reads plain text and the file is
decompressed once. All of it is bulk work in C (hashlib, zlib, bytes.count): nothing runs per
row in Python.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from stars_assets.lib.providers import Dataset, ProviderConfig

# Longest line a line format's parser accepts; a longer line is a rejected row, never a lost one.
MAX_LINE_BYTES = 4_000_000
# Largest decompressed size of a gzip file, and largest whole-document file (HL7, FHIR), read.
MAX_DECOMPRESSED_BYTES = 32 * 1024**3
MAX_DOCUMENT_BYTES = 256 * 1024**2
# Files up to this size are hashed whole on every run; larger ones by a sample of blocks (below).
SAMPLE_WHOLE_BYTES = 4 * 1024**2
SAMPLE_BLOCKS = 16
SAMPLE_BLOCK_BYTES = 64 * 1024
_INFLATE_PIECE_BYTES = 16 * 1024 * 1024
_BLOCK_BYTES = 1024 * 1024  # a line longer than one block is measured exactly (see scan_file)
_GZIP_MAGIC = b"\x1f\x8b"
LINE_FORMATS = ("delimited", "jsonl")

# Statuses of entries that are in the folder but not read, and why (also their reason codes).
NOT_READ_STATUSES = (
    "unrecognized_name",
    "in_subfolder",
    "outside_folder",
    "symlink_not_followed",
    "not_a_file",
    "still_being_written",
)


@dataclass(frozen=True)
class LandedFile:
    dataset: Dataset | None
    path: Path
    relative: str  # <provider>/<path inside the folder>, as the manifest and lineage columns name it
    size: int
    modified_at: datetime
    partition_date: date | None
    status: str | None = None  # None: to be read; else one of NOT_READ_STATUSES
    detail: str | None = None


def _dated(provider: ProviderConfig, name: str) -> tuple[Dataset | None, date | None]:
    for dataset in provider.datasets:
        day = dataset.matches(name)
        if day is not None:
            return dataset, day
    return None, None


def inventory(provider: ProviderConfig, provider_dir: Path, now: float) -> list[LandedFile]:
    """Every entry under the provider's folder (recursively, links not followed), in path order."""
    root = Path(provider_dir)
    if not root.is_dir():
        return []
    resolved_root = root.resolve()
    entries: list[LandedFile] = []
    for folder, subfolders, names in os.walk(root, followlinks=False):
        here = Path(folder)
        # os.walk lists a link to a folder among the sub-folders and does not enter it.
        for name in sorted(names + [s for s in subfolders if (here / s).is_symlink()]):
            path = here / name
            relative = path.relative_to(root).as_posix()
            info = path.lstat()
            dataset, day = _dated(provider, name)
            status, detail = None, None
            if stat.S_ISLNK(info.st_mode):
                target = Path(os.path.realpath(path))
                inside = target == resolved_root or resolved_root in target.parents
                status = "symlink_not_followed" if inside else "outside_folder"
                detail = (
                    "symbolic link to a path inside the folder" if inside else "symbolic link pointing outside the landing folder"
                )
            elif not stat.S_ISREG(info.st_mode):
                status, detail = "not_a_file", "not a regular file"
            elif here != root:
                status, detail = "in_subfolder", "files in sub-folders are not read"
            elif dataset is None:
                status, detail = "unrecognized_name", "the name matches no file pattern of the provider"
            elif info.st_mtime > now:
                status, detail = "still_being_written", "modified after the run started; read by a later run"
            modified_at = datetime.fromtimestamp(info.st_mtime, tz=UTC).replace(tzinfo=None)
            entries.append(
                LandedFile(dataset, path, f"{provider.name}/{relative}", info.st_size, modified_at, day, status, detail)
            )
    return sorted(entries, key=lambda e: e.relative)


@dataclass(frozen=True)
class FileScan:
    content_hash: str
    lines: int | None = None  # physical lines, for line formats
    long_lines: tuple[tuple[int, int], ...] = ()  # (line number, bytes) of lines over MAX_LINE_BYTES
    problem: tuple[str, str] | None = None  # (reason, detail) when the bytes cannot be read at all
    inflated: Path | None = None  # the decompressed copy of a whole, sound gzip file, when asked for


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(8 * _BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def sample_hash(path: Path, size: int) -> str:
    """A cheap fingerprint: the whole file when small, else evenly spaced blocks incl. first and last."""
    if size <= SAMPLE_WHOLE_BYTES:
        return content_hash(path)
    digest = hashlib.sha256()
    step = (size - SAMPLE_BLOCK_BYTES) / (SAMPLE_BLOCKS - 1)
    with open(path, "rb") as handle:
        for n in range(SAMPLE_BLOCKS):
            handle.seek(int(n * step))
            digest.update(handle.read(SAMPLE_BLOCK_BYTES))
    return digest.hexdigest()


class _LineCounter:
    """Counts physical lines as DuckDB's reader splits them (\\n, \\r\\n or a lone \\r) and measures
    every line longer than one block, block by block."""

    def __init__(self):
        self.newlines = 0
        self.tail = 0  # bytes since the last line break
        self.long_lines: list[tuple[int, int]] = []
        self._last_was_cr = False

    def feed(self, block: bytes) -> None:
        if not block:
            return
        # Line breaks: every \n, and every \r that no \n follows (also across the block boundary).
        breaks = block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
        if self._last_was_cr and block.startswith(b"\n"):
            breaks -= 1
        self._last_was_cr = block.endswith(b"\r")
        first = block.find(b"\n")
        if first < 0 and breaks == 0:
            self.tail += len(block)
            return
        if first >= 0:
            # Only the line ending at a block's first newline can be longer than a block.
            length = self.tail + first
            if length > MAX_LINE_BYTES and len(self.long_lines) < 1000:
                self.long_lines.append((self.newlines + 1, length))
        self.newlines += breaks
        self.tail = len(block) - max(block.rfind(b"\n"), block.rfind(b"\r")) - 1

    def finish(self) -> tuple[int, tuple[tuple[int, int], ...]]:
        if self.tail > MAX_LINE_BYTES and len(self.long_lines) < 1000:
            self.long_lines.append((self.newlines + 1, self.tail))
        return self.newlines + (1 if self.tail else 0), tuple(self.long_lines)


def scan_file(path: Path, compression: str, count_lines: bool, inflate_to: Path | None = None) -> FileScan:
    """Hash a file; count its lines (decompressing a gzip file) when it is in a line format; write
    a gzip file's decompressed bytes to `inflate_to` when given (removed again if the file is unsound)."""
    digest = hashlib.sha256()
    counter = _LineCounter() if count_lines else None
    gzip = compression == "gzip"
    inflater = _Inflater() if gzip else None
    inflated = 0
    problem = None
    with open(path, "rb") as handle, open(inflate_to, "wb") if gzip and inflate_to else _NoOutput() as out:
        first = True
        for block in iter(lambda: handle.read(_BLOCK_BYTES), b""):
            digest.update(block)
            if problem is not None:
                continue
            if gzip and first and not block.startswith(_GZIP_MAGIC):
                problem = ("not_gzip", "the file does not start with the gzip signature")
            first = False
            if problem is not None or (counter is None and not gzip):
                continue
            if not gzip:
                counter.feed(block)
                continue
            try:
                for data in inflater.decompress(block):
                    inflated += len(data)
                    if inflated > MAX_DECOMPRESSED_BYTES:
                        problem = ("file_too_large", f"decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes")
                        break
                    if counter is not None:
                        counter.feed(data)
                    out.write(data)
            except zlib.error as exc:
                problem = ("corrupt_gzip", f"gzip data is damaged: {exc}")
    if gzip and problem is None and not first and not inflater.eof:
        problem = ("truncated_gzip", "the gzip stream ends before its end marker (the file was cut short)")
    copy = None
    if gzip and inflate_to:
        if problem is None and not first:
            copy = Path(inflate_to)
        else:
            Path(inflate_to).unlink(missing_ok=True)
    if counter is None:
        return FileScan(digest.hexdigest(), problem=problem, inflated=copy)
    lines, long_lines = counter.finish()
    return FileScan(digest.hexdigest(), lines, long_lines, problem, copy)


class _NoOutput:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data: bytes) -> None:
        pass


class _Inflater:
    """Decompresses gzip block by block, across the members of a multi-member file."""

    def __init__(self):
        self._inflater = zlib.decompressobj(wbits=31)

    @property
    def eof(self) -> bool:
        return self._inflater.eof

    def decompress(self, block: bytes):
        """The decompressed bytes of a block, in bounded pieces (a small block can inflate enormously)."""
        data = block
        while data:
            yield self._inflater.decompress(data, _INFLATE_PIECE_BYTES)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof and self._inflater.unused_data:
                data = self._inflater.unused_data
                self._inflater = zlib.decompressobj(wbits=31)
