"""Reader and writer for the IDX format used by MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimension sizes, then the values in C order, big-endian. Files may be gzipped;
gzip is recognised by its magic bytes (1f 8b), not by the file name.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

# IDX dtype code -> big-endian numpy dtype.
_CODE_TO_DTYPE: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_KIND_TO_CODE = {(dt.kind, dt.itemsize): code for code, dt in _CODE_TO_DTYPE.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _corrupt(path: Path, why: str) -> DataError:
    return DataError(f"{path} is truncated or corrupt ({why}); delete it and download it again")


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} not found") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        # EOFError: stream cut short; BadGzipFile (an OSError) / zlib.error: damaged data.
        raise _corrupt(path, f"gzip stream: {exc}") from exc


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or gzipped) into a native-endian, writable numpy array.

    The shape is the file's dimension list, e.g. (N, 28, 28) for image files and (N,)
    for label files. Raises DataError if the file is missing, has a bad magic number,
    or its payload size does not match the dimensions (truncated or trailing bytes).
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise _corrupt(path, f"only {len(data)} bytes, no IDX header")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or code not in _CODE_TO_DTYPE or ndim == 0:
        raise _corrupt(
            path,
            f"bad IDX magic {data[:4].hex(' ')}; expected 00 00 <dtype code "
            f"{'/'.join(f'{c:02x}' for c in _CODE_TO_DTYPE)}> <ndim >= 1>",
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise _corrupt(path, "header cut short")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _CODE_TO_DTYPE[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header_len
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise _corrupt(path, f"{what}: dims {dims} need {expected} payload bytes, found {got}")
    flat = np.frombuffer(data, dtype=dtype, offset=header_len)
    # astype copies into native byte order, so the result is writable and torch-friendly.
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzip it if ``path`` ends with ``.gz``.

    Supported dtypes: uint8, int8, int16, int32, float32, float64; ndim >= 1.
    """
    array = np.asarray(array)
    code = _KIND_TO_CODE.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        allowed = ", ".join(str(dt.newbyteorder("=")) for dt in _CODE_TO_DTYPE.values())
        raise ValueError(f"IDX cannot store dtype {array.dtype}; allowed: {allowed}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"IDX dimension sizes must be < 2**32, got {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code]).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        # mtime=0 keeps fixture files byte-identical between runs.
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(header + payload)
    else:
        path.write_bytes(header + payload)
