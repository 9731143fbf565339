"""A photo stamped with lines of text (水印): the check-in behavior's proof of time, place and person drawn on a copy of
the photo taken on site, the original kept as it came.

The text is drawn in Noto Sans CJK (the fonts-noto-cjk package) when it is installed; without it, in Pillow's
built-in font, which has no Chinese: the lines keep their ASCII characters only (an address or a name in Chinese
is left out)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


class NotAnImage(ValueError):
    """The content is no JPEG, PNG or WebP image Pillow reads (or one of more pixels than it opens)."""


def stamped(content: bytes, lines: list[str]) -> tuple[bytes, str]:
    """(the image `content` with `lines` drawn white on a dark band along its bottom, in its own format and size;
    its content type). NotAnImage when `content` is none."""
    try:
        image = Image.open(io.BytesIO(content))
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise NotAnImage(str(e)) from None
    kind = image.format
    if kind not in FORMATS:
        raise NotAnImage(f"{kind} is not one of {', '.join(FORMATS)}")
    image = ImageOps.exif_transpose(image).convert("RGBA")
    size = max(12, image.width // 32)
    if CJK_FONT.is_file():
        font = ImageFont.truetype(str(CJK_FONT), size)
    else:
        font = ImageFont.load_default(size)
        lines = ["".join(c for c in line if c.isascii()).strip() for line in lines]
    lines = [line for line in lines if line]
    step = int(size * 1.3)
    band = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(band)
    top = image.height - step * len(lines) - size // 2
    draw.rectangle((0, top, image.width, image.height), fill=(0, 0, 0, 140))
    for n, line in enumerate(lines):
        draw.text((size // 2, top + size // 4 + n * step), line, font=font, fill=(255, 255, 255, 255))
    out = io.BytesIO()
    result = Image.alpha_composite(image, band)
    if kind == "JPEG":
        result.convert("RGB").save(out, kind, quality=90)
    else:
        result.save(out, kind)
    return out.getvalue(), FORMATS[kind]
