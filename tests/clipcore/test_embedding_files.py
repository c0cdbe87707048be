"""Reading precomputed embeddings and their metadata as clip-retrieval writes them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipcore.embedding_files import import_files, read_embeddings, read_metadata
from clipcore.errors import InvalidInput


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_embeddings_come_back_unit_and_float16() -> None:
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((5, 8)).astype(np.float32) * 3
    rows = read_embeddings(npy(raw), 8)
    assert rows.dtype == np.float16
    assert np.allclose(np.linalg.norm(rows.astype(np.float32), axis=1), 1, atol=2e-3)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    assert np.allclose(rows, unit, atol=1e-3)


@pytest.mark.parametrize(
    ("array", "field", "why"),
    [
        (np.ones((2, 9), np.float32), "embeddings", "9-d"),
        (np.array([[1.0] * 8, [np.inf] * 8], np.float32), "embeddings[1]", "not finite"),
        (np.array([[np.nan] + [1.0] * 7, [1.0] * 8], np.float16), "embeddings[0]", "not finite"),
        (np.array([[1.0] * 8, [1e30] * 8], np.float32), "embeddings[1]", "too large"),
        (np.array([[1.0] * 8, [0.0] * 8], np.float32), "embeddings[1]", "zero vector"),
    ],
)
def test_bad_embeddings_name_the_row(array: np.ndarray, field: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as refused:
        read_embeddings(npy(array), 8)
    assert refused.value.errors[0].field == field


def test_parquet_metadata_in_clip_retrieval_columns() -> None:
    buffer = io.BytesIO()
    table = {
        "image_path": ["a.jpg", "b.jpg"],
        "caption": ["a cat", None],
        "url": ["http://x/a", "http://x/b"],
        "labels": [["cat", "pet"], []],
        "width": [640, 480],
    }
    pq.write_table(pa.table(table), buffer)
    rows = read_metadata(buffer.getvalue(), "metadata_0.parquet", 2, "p")
    assert rows[0].filename == "a.jpg" and rows[0].labels == ["cat", "pet"]
    assert rows[0].metadata == {"caption": "a cat", "url": "http://x/a", "width": 640}
    assert rows[1].metadata == {"url": "http://x/b", "width": 480}  # nulls are left out


def test_csv_metadata_and_no_metadata() -> None:
    csv = b'\xef\xbb\xbfkey,label,site\n001,dog,north\n002,"cat, pet",\n'
    rows = read_metadata(csv, "m.csv", 2, "p")
    assert [(r.filename, r.labels, r.metadata) for r in rows] == [
        ("001", ["dog"], {"site": "north"}),
        ("002", ["cat", "pet"], {}),
    ]
    assert [r.filename for r in read_metadata(b"", "", 2, "part-7")] == ["part-7#0", "part-7#1"]


def test_metadata_rows_must_match_and_stay_small() -> None:
    with pytest.raises(InvalidInput, match="3 rows for 2 embeddings"):
        read_metadata(b"filename\na\nb\nc\n", "m.csv", 2, "p")
    with pytest.raises(InvalidInput, match="over 4096 bytes") as refused:
        read_metadata(("filename,note\na," + "x" * 5000 + "\n").encode(), "m.csv", 1, "p")
    assert refused.value.errors[0].field == "metadata[0]"


def test_import_files_pairs_clip_retrieval_folders(tmp_path: Path) -> None:
    (tmp_path / "img_emb").mkdir()
    (tmp_path / "metadata").mkdir()
    for index in (10, 2):
        np.save(tmp_path / "img_emb" / f"img_emb_{index}.npy", np.ones((1, 4), np.float16))
        (tmp_path / "metadata" / f"metadata_{index}.parquet").write_bytes(b"")
    found = import_files(tmp_path)
    assert [f.embeddings.name for f in found] == ["img_emb_2.npy", "img_emb_10.npy"]  # natural
    assert [f.metadata.name for f in found if f.metadata] == [
        "metadata_2.parquet",
        "metadata_10.parquet",
    ]
    single = import_files(tmp_path / "img_emb" / "img_emb_2.npy")
    assert single[0].metadata == tmp_path / "metadata" / "metadata_2.parquet"
    np.save(tmp_path / "plain.npy", np.ones((1, 4), np.float16))
    (tmp_path / "plain.csv").write_text("filename\nx\n")
    assert import_files(tmp_path / "plain.npy")[0].metadata == tmp_path / "plain.csv"
