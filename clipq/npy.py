"""The header of a ``.npy`` file, read without numpy (the API's image has none).

The format (numpy's ``lib.format``): a magic string, a version, a header length, then a
Python dict literal with ``descr``, ``fortran_order`` and ``shape``. Enough to refuse an
upload whose dtype or shape is wrong before it is queued.
"""

from __future__ import annotations

import ast
import struct
from dataclasses import dataclass

from clipcore.errors import InvalidInput

MAGIC = b"\x93NUMPY"
ITEM_BYTES = {"<f2": 2, "<f4": 4, "<f8": 8}  # what embeddings come as (little-endian floats)


@dataclass(frozen=True)
class NpyHeader:
    dtype: str
    rows: int
    dim: int
    data_offset: int


def read_npy_header(data: bytes, field: str) -> NpyHeader:
    """The header of a 2-D little-endian float array whose bytes are all there; otherwise a
    422 naming ``field``."""
    if not data.startswith(MAGIC) or len(data) < 10:
        raise InvalidInput.for_field(field, "is not a .npy file (numpy.save writes them)")
    major = data[6]
    if major == 1:
        (length,), start = struct.unpack("<H", data[8:10]), 10
    elif major in (2, 3):
        (length,), start = struct.unpack("<I", data[8:12]), 12
    else:
        raise InvalidInput.for_field(field, f".npy format version {major} is not supported")
    try:
        header = ast.literal_eval(data[start : start + length].decode("latin1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidInput.for_field(field, "has a malformed .npy header") from None
    descr = {"|f2": "<f2", "=f2": "<f2"}.get(descr, descr)
    if descr not in ITEM_BYTES:
        raise InvalidInput.for_field(
            field, f"holds {descr!r}; embeddings must be little-endian float16 or float32"
        )
    if fortran:
        raise InvalidInput.for_field(field, "is in Fortran order; save it in C order")
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise InvalidInput.for_field(
            field, f"has shape {shape}; embeddings are a 2-D array (images x dimensions)"
        )
    rows, dim = int(shape[0]), int(shape[1])
    offset = start + length
    if len(data) - offset != rows * dim * ITEM_BYTES[descr]:
        raise InvalidInput.for_field(field, f"is truncated: its header says {rows} x {dim}")
    return NpyHeader(descr, rows, dim, offset)
