"""A corpus of hostile and awkward files: each is processed correctly or refused with a named 4xx.

Every file is generated here. A file that should be processed is sent in one job with
``looks_like``, a plain PNG of the picture a person sees in it: the same probabilities
prove clipq saw that picture (the right frame, the right colours, the EXIF rotation
applied, transparency on white). Afterwards the worker must still be alive and well.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

import pytest
from PIL import Image, ImageDraw

from tests.e2e.conftest import Service

# Words the random test CLIP's tokenizer knows: its probabilities then depend on the picture.
LABELS = ["cat", "dog", "bird", "car", "truck", "ship", "horse", "frog"]
EXIF_IFD, USER_COMMENT, ORIENTATION = 0x8769, 0x9286, 0x0112


def picture(size: tuple[int, int] = (48, 32), mode: str = "RGB") -> Image.Image:
    """An asymmetric picture (quadrants of different colours), so a rotation or flip shows."""
    image = Image.new("RGB", size, (230, 230, 230))
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((0, 0, width // 2, height // 2), fill=(220, 30, 30))
    draw.rectangle((width // 2, height // 2, width, height), fill=(30, 60, 220))
    draw.rectangle((0, height * 3 // 4, width // 4, height), fill=(20, 160, 40))
    return image.convert(mode)


def encode(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def seen(data: bytes, transform=None) -> bytes:
    """The decoded picture (first frame, RGB), optionally transformed, as a lossless PNG."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return encode(transform(image) if transform else image)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def handmade_png(
    width: int, height: int, depth: int, colour: int, rows: bytes, *extra: bytes
) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    signature, idat = b"\x89PNG\r\n\x1a\n", png_chunk(b"IDAT", zlib.compress(rows))
    return b"".join([signature, png_chunk(b"IHDR", header), *extra, idat, png_chunk(b"IEND", b"")])


def header_bomb() -> bytes:
    """A 65,535 × 65,535 PNG header (4.3 Gpx) on a few bytes of data."""
    return handmade_png(65535, 65535, 8, 0, b"\x00" * 64)


def real_bomb() -> bytes:
    """A 2,000 × 2,000 PNG (4 Mpx, over the test limit of 1 Mpx) that is only a few KB."""
    return encode(Image.new("L", (2000, 2000)), optimize=True)


def text_chunk_bomb() -> bytes:
    """A small PNG whose zTXt chunk inflates to 64 MB (over Pillow's text-chunk limit)."""
    payload = b"Comment\x00\x00" + zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)
    return handmade_png(8, 8, 8, 0, b"\x00" * 9 * 8, png_chunk(b"zTXt", payload))


def rgb48_png() -> tuple[bytes, bytes]:
    """A 16-bit-per-channel RGB PNG (Pillow reads 8 bits of it) and its 8-bit twin."""
    eight = picture((24, 16))
    rows = b"".join(
        b"\x00"
        + bytes(byte for value in eight.tobytes()[y * 72 : (y + 1) * 72] for byte in (value, 0x7F))
        for y in range(16)
    )
    return handmade_png(24, 16, 16, 2, rows), encode(eight)


def grey16_png() -> tuple[bytes, bytes]:
    """A 16-bit greyscale PNG using the full range, and its 8-bit twin (not clipped to white)."""
    ramp = Image.linear_gradient("L").resize((48, 32))
    wide = Image.frombytes("I;16", ramp.size, bytes(b for v in ramp.tobytes() for b in (0, v)))
    return encode(wide), encode(ramp.convert("RGB"))


def on_white(image: Image.Image) -> Image.Image:
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")


def palette_with_transparency() -> tuple[bytes, bytes]:
    image = picture().quantize(colors=4)
    image.info["transparency"] = image.getpixel((0, 0))
    return encode(image, transparency=image.getpixel((0, 0))), encode(on_white(image))


def half_transparent() -> tuple[bytes, bytes]:
    image = picture(mode="RGBA")
    image.putalpha(Image.linear_gradient("L").resize(image.size))
    return encode(image), encode(on_white(image))


def animated_gif() -> tuple[bytes, bytes]:
    frames = [picture(), Image.new("RGB", (48, 32), (0, 0, 0)), Image.new("RGB", (48, 32), "white")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return data, seen(data)


def cmyk_jpeg() -> tuple[bytes, bytes]:
    data = encode(picture(mode="CMYK"), "JPEG", quality=95)
    return data, seen(data)


def huge_exif_jpeg() -> tuple[bytes, bytes]:
    """A JPEG with a 60 KB EXIF UserComment, nearly all a JPEG segment can hold."""
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = b"ASCII\x00\x00\x00" + b"x" * 60_000
    data = encode(picture(), "JPEG", exif=exif.tobytes(), quality=95)
    return data, seen(data)


def rotated_jpeg() -> tuple[bytes, bytes]:
    """48 × 32 pixels stored, EXIF orientation 6: a person sees it 32 × 48, turned clockwise."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    data = encode(picture(), "JPEG", exif=exif.tobytes(), quality=95)
    return data, seen(data, lambda image: image.transpose(Image.Transpose.ROTATE_270))


def polyglot() -> tuple[bytes, bytes]:
    """A PNG with a zip archive appended: a valid PNG and a valid zip at once."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("payload.sh", "#!/bin/sh\necho pwned\n")
    image = encode(picture())
    return image + archive.getvalue(), image


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="48" height="32">'
    b'<rect width="48" height="32" fill="red"/><script>alert(1)</script></svg>\n'
)
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 48 32]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
# A minimal valid EPS: Pillow's EPS plugin would hand it to Ghostscript.
EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\n"
    b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n"
)


@dataclass(frozen=True)
class Refused:
    """Refused before any job exists: a 422 problem naming the file."""

    filename: str
    data: bytes
    mentions: str


@dataclass(frozen=True)
class Processed:
    """Accepted and classified as the picture in ``looks_like``."""

    filename: str
    data: bytes
    looks_like: bytes


@dataclass(frozen=True)
class FailsAlone:
    """Accepted (the header is fine), then a per-image error naming the file; the job succeeds."""

    filename: str
    data: bytes


GOOD = encode(picture())
CORPUS: dict[str, Refused | Processed | FailsAlone] = {
    "decompression bomb": Refused("bomb.png", real_bomb(), "more than 1000000 pixels"),
    "header bomb": Refused("header-bomb.png", header_bomb(), "decompression bomb"),
    "text chunk bomb": Refused("ztxt-bomb.png", text_chunk_bomb(), "cannot be read"),
    "zero bytes": Refused("empty.jpg", b"", "empty"),
    "truncated header": Refused("stub.png", GOOD[:30], "not an image"),
    "svg": Refused("vector.svg", SVG, "not an image in a format clipq can read"),
    "pdf": Refused("document.pdf", PDF, "not an image in a format clipq can read"),
    "eps": Refused(
        "drawing.eps", EPS, "EPS images are not accepted; send JPEG, PNG, WebP, GIF, BMP or TIFF"
    ),
    "truncated png": FailsAlone("cut.png", GOOD[: len(GOOD) * 2 // 3]),
    "truncated jpeg": FailsAlone("cut.jpg", encode(picture((256, 256)), "JPEG")[:900]),
    "polyglot png+zip": Processed("polyglot.png", *polyglot()),
    "animated gif": Processed("animated.gif", *animated_gif()),
    "cmyk jpeg": Processed("cmyk.jpg", *cmyk_jpeg()),
    "16-bit grey png": Processed("grey16.png", *grey16_png()),
    "16-bit rgb png": Processed("rgb48.png", *rgb48_png()),
    "palette with transparency": Processed("palette.png", *palette_with_transparency()),
    "half-transparent rgba": Processed("alpha.png", *half_transparent()),
    "huge exif": Processed("huge-exif.jpg", *huge_exif_jpeg()),
    "exif orientation 6": Processed("rotated.jpg", *rotated_jpeg()),
}


def post_images(service: Service, path: str, images: list[tuple[str, bytes]], **fields):
    files = [("images", (name, data, "application/octet-stream")) for name, data in images]
    files += [(key, (None, value)) for key, values in fields.items() for value in values]
    return service.http.post(path, files=files)


def assert_named_problem(response, filename: str, mentions: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert filename in problem["detail"] and mentions.lower() in problem["detail"].lower(), problem
    assert problem["errors"][0]["field"] == "images[0]"


@pytest.mark.parametrize("case", CORPUS, ids=list(CORPUS))
def test_classify_processes_or_refuses(service: Service, case: str) -> None:
    entry = CORPUS[case]
    if isinstance(entry, Refused):
        response = post_images(
            service, "/v1/classify", [(entry.filename, entry.data)], labels=LABELS
        )
        assert_named_problem(response, entry.filename, entry.mentions)
        return
    reference = [("reference.png", entry.looks_like)] if isinstance(entry, Processed) else []
    images = [(entry.filename, entry.data), *reference]
    response = post_images(service, "/v1/classify", images, labels=LABELS, top_k=["8"])
    assert response.status_code == 202, response.text
    job = service.wait_for(response.json()["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]["images"][0]
    assert result["filename"] == entry.filename
    if isinstance(entry, FailsAlone):
        assert result["predictions"] == [] and result["error"]["status"] == 422
        assert entry.filename in result["error"]["detail"]
        return
    assert result["error"] is None, result
    twin = job["result"]["images"][1]
    got = {p["label"]: p["probability"] for p in result["predictions"]}
    expected = {p["label"]: p["probability"] for p in twin["predictions"]}
    assert max(got.values()) - min(got.values()) > 1e-3, "uniform: the comparison proves nothing"
    assert got == pytest.approx(expected, abs=1e-5), (case, got, expected)


SCENE_CASES = ["animated gif", "cmyk jpeg", "16-bit grey png", "exif orientation 6", "svg", "eps"]


@pytest.mark.parametrize("case", SCENE_CASES)
def test_scenes_process_or_refuse(service: Service, case: str) -> None:
    entry = CORPUS[case]
    response = post_images(service, "/v1/scenes", [(entry.filename, entry.data)])
    if isinstance(entry, Refused):
        assert_named_problem(response, entry.filename, entry.mentions)
        return
    assert response.status_code == 202, response.text
    job = service.wait_for(response.json()["id"])
    assert job["status"] == "succeeded", job
    image = job["result"]["images"][0]
    assert image["filename"] == entry.filename and image["error"] is None
    assert image["prediction"]["top_scene"]


def test_ingest_honours_exif_orientation_and_refuses_bombs(service: Service) -> None:
    created = service.http.post("/v1/collections", json={"name": "hostile"})
    assert created.status_code == 201, created.text
    images_url = f"/v1/collections/{created.json()['id']}/images"
    for case in ("decompression bomb", "eps"):
        bad = CORPUS[case]
        assert isinstance(bad, Refused)
        refused = post_images(service, images_url, [(bad.filename, bad.data)])
        assert_named_problem(refused, bad.filename, bad.mentions)

    names = ["exif orientation 6", "palette with transparency", "animated gif", "16-bit grey png"]
    response = post_images(
        service, images_url, [(CORPUS[n].filename, CORPUS[n].data) for n in names]
    )
    assert response.status_code == 202, response.text
    job = service.wait_for(response.json()["id"])
    assert job["status"] == "succeeded", job
    assert [image["status"] for image in job["result"]["images"]] == ["added"] * 4
    stored = {image["filename"]: image for image in service.http.get(images_url).json()["images"]}
    assert (stored["rotated.jpg"]["width"], stored["rotated.jpg"]["height"]) == (32, 48)
    assert (stored["palette.png"]["width"], stored["palette.png"]["height"]) == (48, 32)
    thumbnail = Image.open(
        io.BytesIO(service.http.get(stored["rotated.jpg"]["thumbnail_url"]).content)
    )
    assert thumbnail.height > thumbnail.width


def worker_logs(service: Service) -> dict[str, str]:
    return {log.name: log.read_text(errors="replace") for log in service.logs.glob("worker*.log")}


@pytest.fixture(scope="module", autouse=True)
def logs_before(service: Service) -> dict[str, int]:
    """How much the worker had logged before the corpus, so only the corpus's part is read."""
    return {name: len(text) for name, text in worker_logs(service).items()}


def test_the_worker_is_alive_and_well_after_the_corpus(
    service: Service, logs_before: dict[str, int]
) -> None:
    response = post_images(service, "/v1/classify", [("plain.png", GOOD)], labels=LABELS)
    assert response.status_code == 202
    job = service.wait_for(response.json()["id"])
    assert job["status"] == "succeeded" and job["result"]["images"][0]["error"] is None
    assert service.http.get("/readyz").status_code == 200
    assert all(worker.poll() is None for worker in service.workers)
    for name, text in worker_logs(service).items():
        since = text[logs_before.get(name, 0) :]
        assert "WorkerLostError" not in since and "Traceback" not in since, since
