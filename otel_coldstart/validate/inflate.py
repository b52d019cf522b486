"""Reading trace bytes in bounded chunks, inflating gzip with a size cap and a ratio cap.

A 4 MB gzip bomb inflates to 4 GiB; a trace never compresses that well (OTLP JSON of a real cold
start compresses 10-30x). So inflation stops with one line when the output passes
``MAX_INFLATED_BYTES`` in total, or when, past ``RATIO_GRACE_BYTES`` of output, it has grown more
than ``MAX_RATIO`` times its input. Chunks are yielded as they come: the caller parses them and
drops them, so memory never holds the whole inflated file.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from otel_coldstart.validate.model import TraceError

CHUNK = 1 << 20
MAX_INFLATED_BYTES = 8 << 30
MAX_RATIO = 200
RATIO_GRACE_BYTES = 64 << 20
GZIP_MAGIC = b"\x1f\x8b"


def file_chunks(path: str, chunk: int = CHUNK) -> Iterator[bytes]:
    """The file's bytes, inflated when gzip, in chunks. Raises ``TraceError`` on any failure."""
    try:
        handle: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by the generator below
    except FileNotFoundError:
        raise TraceError(f"trace file not found: {path}") from None
    except IsADirectoryError:
        raise TraceError(f"{path} is a directory, not a trace file") from None
    except OSError as exc:
        raise TraceError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _file_chunks(handle, path, chunk)


def _file_chunks(handle: BinaryIO, path: str, chunk: int) -> Iterator[bytes]:
    with handle:
        raw = _raw_chunks(handle, path, chunk)
        first = next(raw, b"")
        if first[:2] == GZIP_MAGIC:
            yield from gunzip(_prepend(first, raw), path)
        else:
            if first:
                yield first
            yield from raw


def _raw_chunks(handle: BinaryIO, path: str, chunk: int) -> Iterator[bytes]:
    while True:
        try:
            data = handle.read(chunk)
        except IsADirectoryError:
            raise TraceError(f"{path} is a directory, not a trace file") from None
        except OSError as exc:
            raise TraceError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not data:
            return
        yield data


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def gunzip(compressed: Iterable[bytes], source: str, chunk: int = CHUNK) -> Iterator[bytes]:
    """Inflate gzip (several members too, as ``cat a.gz b.gz`` makes) within the caps."""
    inflater = zlib.decompressobj(wbits=31)
    in_member = False
    consumed = produced = 0
    try:
        for data in compressed:
            consumed += len(data)
            pending = data
            while pending:
                if not in_member and not pending.strip(b"\0"):
                    break  # zero padding after the last member
                in_member = True
                out = inflater.decompress(pending, chunk)
                pending = inflater.unconsumed_tail
                if out:
                    produced += len(out)
                    _check(produced, consumed, source)
                    yield out
                if inflater.eof:
                    # The next gzip member, if any, starts in unused_data.
                    pending = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
                    in_member = False
    except zlib.error as exc:
        raise TraceError(f"{source}: broken gzip ({exc})") from None
    if in_member:
        raise TraceError(f"{source}: truncated gzip (the stream ends early)")


def _check(produced: int, consumed: int, source: str) -> None:
    if produced > MAX_INFLATED_BYTES:
        raise TraceError(
            f"{source}: gzip inflates past {MAX_INFLATED_BYTES >> 20} MB; refusing (a decompression bomb?)"
        )
    if produced > RATIO_GRACE_BYTES and produced > MAX_RATIO * consumed:
        raise TraceError(
            f"{source}: gzip inflates more than {MAX_RATIO}x ({consumed} bytes to over "
            f"{produced >> 20} MB); refusing (a decompression bomb?)"
        )
