"""A small Python client for a running clipq: submit a job, follow its progress, get the result.

Used by ``clipq --server``; it speaks only the public HTTP API.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from tqdm import tqdm

from clipcore.errors import InvalidImage
from clipcore.problem import Problem
from clipcore.schemas import SceneImage
from clipcore.taxonomy import Speed, Taxonomy
from clipq.contracts.collections import (
    Collection,
    EvaluateResult,
    ImportedParts,
    ImportResult,
    IngestedImage,
    IngestResult,
    IngestStatus,
    SearchResult,
)
from clipq.contracts.jobs import Job, ScenesResult
from clipq.contracts.models import ModelList
from clipq.contracts.source_progress import SourceImportProgress
from clipq.errors import RelayedProblem

if TYPE_CHECKING:
    from clipq.cli.imports import Part

CHUNK = 200  # images per job: well under the service's default limit of 500
FilePart = tuple[str | None, bytes | str]  # a multipart part: (filename or None, content)


class ClipqClient:
    def __init__(self, base_url: str, *, api_key: str = "", timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def wait(self, job: Job, bar: _Offset | None = None) -> Job:
        """Poll until the job ends, moving ``bar`` with the job's progress."""
        while not job.status.is_final:
            time.sleep(0.2)
            job = Job.model_validate_json(self._check(self.http.get(f"/v1/jobs/{job.id}")).content)
            if bar is not None:
                bar.show(job)
        if bar is not None:
            bar.show(job)
        return job

    def models(self) -> ModelList:
        """The models the service's live workers serve (``GET /v1/models``)."""
        return ModelList.model_validate_json(self._check(self.http.get("/v1/models")).content)

    def scenes(
        self,
        paths: Sequence[Path],
        *,
        speed: Speed = Speed.balanced,
        taxonomy: Taxonomy | None = None,
        progress: bool = True,
        model: str | None = None,
    ) -> ScenesResult:
        """Classify files in jobs of :data:`CHUNK` (on ``model``, one the service serves; None:
        its default); a file the service refuses becomes its error."""
        entries: dict[int, SceneImage] = {}
        readable: list[tuple[int, Path, bytes]] = []
        for index, path in enumerate(paths):
            try:
                readable.append((index, path, path.read_bytes()))
            except OSError as exc:
                entries[index] = _error_entry(path.name, f"cannot read the file ({exc.strerror})")
        result: ScenesResult | None = None
        with tqdm(total=len(readable), unit="img", disable=not progress) as bar:
            for start in range(0, len(readable), CHUNK):
                chunk = readable[start : start + CHUNK]
                result = self._scenes_chunk(chunk, speed, taxonomy, model, entries, bar)
                bar.n = start + len(chunk)
        if result is None:  # nothing readable
            raise RelayedProblem(
                Problem(title="No images", status=422, detail="no readable images")
            )
        result.images = [entries[i] for i in range(len(paths))]
        return result

    def _scenes_chunk(
        self,
        chunk: list[tuple[int, Path, bytes]],
        speed: Speed,
        taxonomy: Taxonomy | None,
        model: str | None,
        entries: dict[int, SceneImage],
        bar: tqdm,
    ) -> ScenesResult | None:
        pending = list(chunk)
        while pending:
            files: list[tuple[str, FilePart]] = [
                ("images", (path.name, data)) for _, path, data in pending
            ]
            files.append(("speed", (None, str(speed))))
            if taxonomy is not None:
                files.append(("taxonomy", (None, taxonomy.model_dump_json())))
            if model:
                files.append(("model", (None, model)))
            response = self.http.post("/v1/scenes", files=files)
            refused = _refused_index(response)
            if refused is None:
                job = Job.model_validate_json(self._check(response).content)
                job = self.wait(job, _Offset(bar, bar.n))
                if job.error:
                    raise RelayedProblem(job.error)
                assert isinstance(job.result, ScenesResult)
                for (index, _, _), image in zip(pending, job.result.images, strict=True):
                    entries[index] = image
                return job.result
            # The service named one bad file: report it and send the rest again.
            index, path, _ = pending.pop(refused)
            entries[index] = _error_entry(path.name, response.json().get("detail", "refused"))
        return None

    # --- plans ------------------------------------------------------------------------

    def plan(
        self,
        paths: Sequence[Path],
        *,
        options: dict[str, str],
        progress: bool = True,
    ) -> tuple[Job, list[SceneImage]]:
        """A plan of the files in one job (``options``: its form fields); files the service
        refuses are left out and come back as error entries, the rest planned."""
        pending = [(path, path.read_bytes()) for path in paths]
        refused: list[SceneImage] = []
        while True:
            files: list[tuple[str, FilePart]] = [
                ("images", (path.name, data)) for path, data in pending
            ]
            files += [(name, (None, value)) for name, value in options.items()]
            response = self.http.post("/v1/plans", files=files)
            index = _refused_index(response)
            if index is None:
                break
            path, _ = pending.pop(index)
            refused.append(_error_entry(path.name, response.json().get("detail", "refused")))
        with tqdm(total=len(pending), unit="img", disable=not progress) as bar:
            job = self._finish(response, bar)
        return job, refused

    def plan_bundle(self, plan_id: str) -> bytes:
        return self._check(self.http.get(f"/v1/plans/{plan_id}/bundle")).content

    # --- collections ------------------------------------------------------------------

    def collection(
        self, name_or_id: str, *, create: bool = False, model: str | None = None
    ) -> Collection:
        """The collection with this id or name; created (by name, bound to ``model``, None:
        the service's default) when ``create`` is set."""
        response = self.http.get(f"/v1/collections/{name_or_id}")
        if response.status_code == 200:
            return Collection.model_validate_json(response.content)
        for collection in self._list_collections():
            if collection.name == name_or_id:
                return collection
        if not create:
            raise RelayedProblem(
                Problem(title="Not found", status=404, detail=f"no collection {name_or_id!r}")
            )
        body = {"name": name_or_id, **({"model": model} if model else {})}
        created = self._check(self.http.post("/v1/collections", json=body))
        return Collection.model_validate_json(created.content)

    def _list_collections(self) -> list[Collection]:
        response = self._check(self.http.get("/v1/collections"))
        return [Collection.model_validate(c) for c in response.json()]

    def ingest(
        self,
        collection_id: str,
        items: Iterable[tuple[str, bytes, list[str]]],
        *,
        total: int | None = None,
        progress: bool = True,
    ) -> IngestResult:
        """Add (filename, bytes, labels) items in jobs of :data:`CHUNK`; returns the tally."""
        result = IngestResult(
            collection_id=collection_id, added=0, duplicates=0, failed=0, images=[]
        )
        with tqdm(total=total, unit="img", disable=not progress, desc="ingest") as bar:
            chunk: list[tuple[str, bytes, list[str]]] = []
            for item in items:
                chunk.append(item)
                if len(chunk) == CHUNK:
                    self._ingest_chunk(collection_id, chunk, result, bar)
                    chunk = []
            if chunk:
                self._ingest_chunk(collection_id, chunk, result, bar)
        return result

    def _ingest_chunk(
        self,
        collection_id: str,
        chunk: list[tuple[str, bytes, list[str]]],
        tally: IngestResult,
        bar: tqdm,
    ) -> None:
        base = bar.n
        pending = list(chunk)
        while pending:
            files: list[tuple[str, FilePart]] = [
                ("images", (name, data)) for name, data, _ in pending
            ]
            files += [("labels", (None, ",".join(labels))) for _, _, labels in pending]
            response = self.http.post(f"/v1/collections/{collection_id}/images", files=files)
            refused = _refused_index(response)
            if refused is None:
                job = Job.model_validate_json(self._check(response).content)
                job = self.wait(job, _Offset(bar, base))
                if job.error:
                    raise RelayedProblem(job.error)
                assert isinstance(job.result, IngestResult)
                for field in ("added", "duplicates", "failed"):
                    setattr(tally, field, getattr(tally, field) + getattr(job.result, field))
                tally.images += job.result.images
                return
            name, _, _ = pending.pop(refused)
            tally.failed += 1
            detail = response.json().get("detail", "refused")
            tally.images.append(
                IngestedImage(
                    filename=name,
                    sha256="",
                    status=IngestStatus.failed,
                    error=InvalidImage(name, detail).to_problem(),
                )
            )

    def run_job(self, path: str, body: dict, bar: tqdm | None = None) -> Job:
        return self._finish(self.http.post(path, json=body), bar)

    def _finish(self, accepted: httpx.Response, bar: tqdm | None = None) -> Job:
        """Wait for the job a POST answered with; its result, or its problem raised."""
        job = Job.model_validate_json(self._check(accepted).content)
        if bar is None:
            response = self._check(self.http.get(f"/v1/jobs/{job.id}", params={"wait": 30}))
            job = Job.model_validate_json(response.content)
        job = self.wait(job, _Offset(bar, 0) if bar is not None else None)
        if job.error:
            raise RelayedProblem(job.error)
        return job

    def search(self, collection_id: str, **request: object) -> SearchResult:
        job = self.run_job(f"/v1/collections/{collection_id}/search", request)
        assert isinstance(job.result, SearchResult)
        return job.result

    def similar(self, collection_id: str, image_id: str, **request: object) -> SearchResult:
        """Images of the collection like one of its own (image -> image)."""
        job = self.run_job(f"/v1/collections/{collection_id}/images/{image_id}/similar", request)
        assert isinstance(job.result, SearchResult)
        return job.result

    def similar_upload(
        self, collection_id: str, filename: str, data: bytes, **form: object
    ) -> SearchResult:
        """Images of the collection like an uploaded one (image -> image)."""
        fields = {key: str(value) for key, value in form.items() if value is not None}
        response = self.http.post(
            f"/v1/collections/{collection_id}/similar",
            files=[("image", (filename, data, "application/octet-stream"))],
            data=fields,
        )
        job = self._finish(response)
        assert isinstance(job.result, SearchResult)
        return job.result

    def imported_parts(self, collection_id: str) -> set[str]:
        """The names of the bulk-import parts the collection has."""
        response = self._check(self.http.get(f"/v1/collections/{collection_id}/embeddings"))
        return {part.part for part in ImportedParts.model_validate_json(response.content).parts}

    def import_part(self, collection_id: str, part: Part, model: str | None = None) -> ImportResult:
        """Send one part of a bulk import and wait for it; a part imported before adds nothing."""
        return self.finish_part(self.send_part(collection_id, part, model))

    def send_part(
        self, collection_id: str, part: Part, model: str | None = None
    ) -> httpx.Response | ImportResult:
        """Upload one part: the service's answer (its job accepted) to give
        :meth:`finish_part`, or the result already if the part was imported before."""
        files: list[tuple[str, FilePart]] = [("embeddings", (part.name, part.embeddings))]
        if part.metadata:
            files.append(("metadata", part.metadata))
        fields = {"part": part.name} | ({"model": model} if model else {})
        response = self.http.post(
            f"/v1/collections/{collection_id}/embeddings", files=files, data=fields
        )
        if response.status_code == 409:  # imported since the parts were listed
            return ImportResult(
                collection_id=collection_id,
                part=part.name,
                imported=0,
                already_imported=True,
                image_count=0,
            )
        return response

    def finish_part(self, sent: httpx.Response | ImportResult) -> ImportResult:
        """Wait for a part :meth:`send_part` sent to be imported."""
        if isinstance(sent, ImportResult):
            return sent
        job = self._finish(sent, tqdm(disable=True))
        assert isinstance(job.result, ImportResult)
        return job.result

    def import_source(self, collection_id: str, request: dict) -> Job:
        """Start an import by reference (``POST .../imports``): its job, queued."""
        response = self.http.post(f"/v1/collections/{collection_id}/imports", json=request)
        return Job.model_validate_json(self._check(response).content)

    def import_progress(
        self, collection_id: str, job_id: str, offset: int = 0, limit: int = 1000
    ) -> SourceImportProgress:
        """An import by reference and its shards (``offset``.. of them)."""
        response = self.http.get(
            f"/v1/collections/{collection_id}/imports/{job_id}",
            params={"offset": offset, "limit": limit},
        )
        return SourceImportProgress.model_validate_json(self._check(response).content)

    def evaluate(
        self, collection_id: str, *, progress: bool = True, **request: object
    ) -> EvaluateResult:
        with tqdm(unit="query", disable=not progress, desc="evaluate") as bar:
            job = self.run_job(f"/v1/collections/{collection_id}/evaluate", request, bar)
        assert isinstance(job.result, EvaluateResult)
        return job.result

    def thumbnail(self, url: str) -> bytes:
        return self._check(self.http.get(url)).content

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.is_error:
            raise RelayedProblem(Problem.model_validate(response.json()))
        return response


class _Offset:
    """Shows a job's progress on a bar that already counts earlier jobs."""

    def __init__(self, bar: tqdm, base: int) -> None:
        self.bar, self.base = bar, base

    def show(self, job: Job) -> None:
        if self.bar.total is None:
            self.bar.total = job.progress.total
        self.bar.update(self.base + job.progress.done - self.bar.n)


def _refused_index(response: httpx.Response) -> int | None:
    """The position of the file a 422 names (``images[3]``), if that is what it refused."""
    if response.status_code != 422:
        return None
    for error in response.json().get("errors") or []:
        field = error.get("field", "")
        if field.startswith("images[") and field.endswith("]") and field[7:-1].isdigit():
            return int(field[7:-1])
    return None


def _error_entry(filename: str, message: str) -> SceneImage:
    problem = InvalidImage(filename, message).to_problem()
    return SceneImage(filename=filename, sha256="", prediction=None, error=problem)
