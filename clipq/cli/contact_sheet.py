"""A contact sheet of search hits: thumbnails in a grid with scores and the matched crop's box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

CELL = 192
CAPTION = 34
BOX_COLOUR = (255, 60, 200)


@dataclass(frozen=True)
class SheetItem:
    thumbnail: Image.Image
    title: str  # e.g. "1. img_00042.png"
    detail: str  # e.g. "0.312 (image 0.20, crop 0.31)"
    box: Sequence[float] | None  # in the original image's pixels
    original_size: tuple[int, int]


def contact_sheet(items: Sequence[SheetItem], columns: int = 5, heading: str = "") -> Image.Image:
    columns = max(1, min(columns, len(items) or 1))
    rows = (len(items) + columns - 1) // columns or 1
    top = CAPTION if heading else 0
    sheet = Image.new("RGB", (columns * CELL, top + rows * (CELL + CAPTION)), (24, 24, 32))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    if heading:
        draw.text((8, 10), heading, fill=(240, 240, 240), font=font)
    for position, item in enumerate(items):
        x = (position % columns) * CELL
        y = top + (position // columns) * (CELL + CAPTION)
        thumb = item.thumbnail.convert("RGB")
        scale = min((CELL - 8) / thumb.width, (CELL - 8) / thumb.height)
        shown = thumb.resize(
            (max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale)))
        )
        ox, oy = x + (CELL - shown.width) // 2, y + (CELL - shown.height) // 2
        sheet.paste(shown, (ox, oy))
        if item.box is not None:
            sx = shown.width / item.original_size[0]
            sy = shown.height / item.original_size[1]
            x0, y0, x1, y1 = item.box
            draw.rectangle(
                [ox + x0 * sx, oy + y0 * sy, ox + x1 * sx, oy + y1 * sy],
                outline=BOX_COLOUR,
                width=2,
            )
        draw.text((x + 6, y + CELL), item.title[:30], fill=(240, 240, 240), font=font)
        draw.text((x + 6, y + CELL + 14), item.detail[:32], fill=(180, 200, 255), font=font)
    return sheet
