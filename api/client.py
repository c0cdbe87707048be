"""A small Python client for a running clipq: submit a job, follow its progress, get the result.

Used by ``clipq --server``; it speaks only the public HTTP API.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from tqdm import tqdm

from clipcore.contracts import Job, Problem, SceneImage, ScenesResult
from clipcore.errors import InvalidImage
from clipcore.taxonomy import Speed, Taxonomy

CHUNK = 200  # images per job: well under the service's default limit of 500


class ClipqError(RuntimeError):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail or problem.title)
        self.problem = problem


class ClipqClient:
    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def wait(self, job: Job, bar: tqdm | None = None) -> Job:
        """Poll until the job ends, moving ``bar`` with the job's progress."""
        while not job.status.is_final:
            time.sleep(0.2)
            job = Job.model_validate_json(self._check(self.http.get(f"/v1/jobs/{job.id}")).content)
            if bar is not None:
                bar.update(job.progress.done - bar.n)
        return job

    def scenes(
        self,
        paths: Sequence[Path],
        *,
        speed: Speed = Speed.balanced,
        taxonomy: Taxonomy | None = None,
        progress: bool = True,
    ) -> ScenesResult:
        """Classify files in jobs of :data:`CHUNK`; a file the service refuses becomes its error."""
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
                result = self._scenes_chunk(chunk, speed, taxonomy, entries, bar)
                bar.n = start + len(chunk)
        if result is None:  # nothing readable
            raise ClipqError(Problem(title="No images", status=422, detail="no readable images"))
        result.images = [entries[i] for i in range(len(paths))]
        return result

    def _scenes_chunk(
        self,
        chunk: list[tuple[int, Path, bytes]],
        speed: Speed,
        taxonomy: Taxonomy | None,
        entries: dict[int, SceneImage],
        bar: tqdm,
    ) -> ScenesResult | None:
        pending = list(chunk)
        while pending:
            files = [("images", (path.name, data)) for _, path, data in pending]
            files.append(("speed", (None, str(speed))))
            if taxonomy is not None:
                files.append(("taxonomy", (None, taxonomy.model_dump_json())))
            response = self.http.post("/v1/scenes", files=files)
            refused = _refused_index(response)
            if refused is None:
                job = self.wait(Job.model_validate_json(self._check(response).content), bar)
                if job.error:
                    raise ClipqError(job.error)
                assert isinstance(job.result, ScenesResult)
                for (index, _, _), image in zip(pending, job.result.images, strict=True):
                    entries[index] = image
                return job.result
            # The service named one bad file: report it and send the rest again.
            index, path, _ = pending.pop(refused)
            entries[index] = _error_entry(path.name, response.json().get("detail", "refused"))
        return None

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.is_error:
            raise ClipqError(Problem.model_validate(response.json()))
        return response


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
