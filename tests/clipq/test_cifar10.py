from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from clipq.cli.cifar10 import label_names, read_cifar10, write_cifar10_like


def test_reads_what_the_cifar10_format_holds(tmp_path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(5, 32, 32, 3), dtype=np.uint8)
    write_cifar10_like(tmp_path, images, [0, 1, 2, 1, 0], ["airplane", "cat", "ship"])
    assert label_names(tmp_path) == ["airplane", "cat", "ship"]
    items = list(read_cifar10(tmp_path, "test"))
    assert [label for _, _, label in items] == ["airplane", "cat", "ship", "cat", "airplane"]
    first = np.asarray(Image.open(io.BytesIO(items[0][1])))
    assert first.shape == (32, 32, 3) and (first == images[0]).all()
    assert items[0][0] == "img_00000.png"
    assert len(list(read_cifar10(tmp_path, "test", limit=2))) == 2
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        list(read_cifar10(tmp_path, "train"))
