"""Image files -> uint8 arrays: Pillow decode (decompression-bomb guard on), EXIF orientation,
grayscale/RGBA/palette converted to RGB (or L for 1-channel models), resize of the short side
then center crop. Folder listing, recursive, by extension."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .. import AqError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def load_image(path: str | Path, channels: int = 3, data: bytes | None = None) -> Image.Image:
    """Open an image file fully, apply EXIF orientation, convert to RGB (or L). AqError if the
    file is missing, empty, not an image, truncated or above the pixel cap. `data`: the file's
    bytes, already read (a cluster's read tasks): decoded the same way, named by `path`."""
    p = Path(path)
    if data is None and not p.is_file():
        raise AqError(f"{p}: no such file")
    if (len(data) if data is not None else p.stat().st_size) == 0:
        raise AqError(f"{p}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p if data is None else io.BytesIO(data)) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                if im.mode in ("RGBA", "LA", "P", "PA"):
                    im = im.convert("RGBA")
                    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(bg, im)
                return im.convert("RGB" if channels == 3 else "L")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise AqError(f"{p}: image larger than {MAX_PIXELS} pixels, refused") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise AqError(f"{p}: not a readable image ({e.__class__.__name__})") from None


def resize_center_crop(im: Image.Image, resize: int, crop: tuple[int, int]) -> np.ndarray:
    """Resize so the short side is `resize` (bilinear), then center crop to (H, W)."""
    w, h = im.size
    s = resize / min(w, h)
    nw, nh = max(crop[1], round(w * s)), max(crop[0], round(h * s))
    im = im.resize((nw, nh), Image.BILINEAR)
    top, left = (nh - crop[0]) // 2, (nw - crop[1]) // 2
    a = np.asarray(im.crop((left, top, left + crop[1], top + crop[0])), dtype=np.uint8)
    return a[..., None] if a.ndim == 2 else a


def list_images(folder: str | Path, recursive: bool = True,
                exts: tuple[str, ...] = IMAGE_EXTS) -> list[Path]:
    """Sorted image paths under `folder` (by extension, case-insensitive); AqError when the
    folder is missing. Files with other extensions are ignored."""
    root = Path(folder)
    if not root.exists():
        raise AqError(f"{root}: no such file or folder")
    if root.is_file():
        return [root]
    out = []
    walker = os.walk(root) if recursive else [(str(root), [], os.listdir(root))]
    for d, _, files in walker:
        for f in files:
            if f.lower().endswith(tuple(e.lower() for e in exts)):
                out.append(Path(d) / f)
    return sorted(out)


def decode_job(job: tuple, data: bytes | None = None) -> tuple[str, np.ndarray | None, str | None]:
    """Worker-side decode for aq-infer: (path, resize, (H, W), channels) ->
    (path, uint8 H x W x C or None, error message or None). Never raises for a bad file.
    `data`: the file's bytes, already read (load_image)."""
    path, resize, crop, channels = job
    try:
        return str(path), resize_center_crop(load_image(path, channels, data), resize, crop), None
    except AqError as e:
        return str(path), None, str(e)
