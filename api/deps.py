"""Typed dependencies: the settings, the job store and the queue of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.queue import JobQueue
from clipq.errors import UnsupportedMediaType
from clipq.settings import Settings
from clipq.store.collections import AsyncCollections
from clipq.store.jobs import ApiStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ApiStore:
    return request.app.state.store


def get_queue(request: Request) -> JobQueue:
    return request.app.state.queue


def get_collections(request: Request) -> AsyncCollections:
    return request.app.state.collections


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ApiStore, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
CollectionsDep = Annotated[AsyncCollections, Depends(get_collections)]


def require_multipart(request: Request) -> None:
    """Uploads come as multipart/form-data; anything else (JSON, say) gets a clear 415."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UnsupportedMediaType(
            f"send the images as multipart/form-data, not {content_type or 'no content type'!r}"
        )
