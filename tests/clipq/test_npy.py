"""The .npy header the API reads without numpy, against what numpy itself writes."""

from __future__ import annotations

import io

import numpy as np
import pytest

from clipcore.errors import InvalidInput
from clipq.npy import read_npy_header


def saved(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version)
    return buffer.getvalue()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("version", [None, (1, 0), (2, 0), (3, 0)])
def test_reads_what_numpy_writes(dtype, version) -> None:
    data = saved(np.ones((7, 5), dtype), version)
    header = read_npy_header(data, "embeddings")
    assert (header.rows, header.dim) == (7, 5)
    assert np.array_equal(
        np.frombuffer(data[header.data_offset :], dtype).reshape(7, 5), np.ones((7, 5))
    )


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"PK\x03\x04 a zip", "is not a .npy file"),
        (saved(np.ones((3, 4), ">f4")), "little-endian"),
        (saved(np.ones((3, 4), np.int32)), "float16 or float32"),
        (saved(np.ones(4, np.float32)), "2-D"),
        (saved(np.ones((0, 4), np.float32)), "2-D"),
        (saved(np.asfortranarray(np.ones((3, 4), np.float32))), "Fortran"),
        (saved(np.ones((3, 4), np.float32))[:-1], "truncated"),
        (saved(np.ones((3, 4), np.float32)) + b"x", "truncated"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4'}    ", "malformed"),
    ],
)
def test_refuses_naming_the_field(data: bytes, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as refused:
        read_npy_header(data, "embeddings")
    assert refused.value.errors[0].field == "embeddings"
