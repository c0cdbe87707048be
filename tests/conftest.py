"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from tests.support import build_random_clip, build_random_detector

# A Redis database of its own, flushed per run, so tests never touch a developer's data.
TEST_REDIS_DB = int(os.environ.get("CLIPQ_TEST_REDIS_DB", "15"))
TEST_REDIS_URL = f"redis://127.0.0.1:{os.environ.get('REDIS_PORT', '6379')}/{TEST_REDIS_DB}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    client.close()
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def random_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random CLIP saved with save_pretrained: loads like real weights, means nothing."""
    return build_random_clip(tmp_path_factory.mktemp("random-clip"))


@pytest.fixture(scope="session")
def random_detector_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Mask R-CNN: its regions are arbitrary, but real model output."""
    return build_random_detector(tmp_path_factory.mktemp("random-detector"))
