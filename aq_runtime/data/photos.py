"""Real sample photos bundled with scikit-image and scikit-learn, split once into calibration
and held-out photos (no crop of a calibration photo is ever scored), and deterministic
multi-scale, multi-position, mirrored square crops of them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..optional import import_optional
from .images import load_image

CALIBRATION_PHOTOS = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "china",
                      "grass", "coins", "retina")
HELDOUT_PHOTOS = ("chelsea", "coffee", "flower", "hubble_deep_field", "ihc", "camera", "moon",
                  "gravel", "brick", "cell", "clock_motion")
CROP_FRACTIONS = (1.0, 0.8, 0.64, 0.5)
CROP_POSITIONS = ((0.5, 0.5), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))


def photo_paths() -> dict[str, Path]:
    """name -> path of every bundled sample photo (skimage.data and sklearn images)."""
    skimage = import_optional("skimage", "the bundled sample photos")
    sklearn = import_optional("sklearn", "the bundled sample photos")
    dirs = [Path(os.path.dirname(skimage.__file__)) / "data",
            Path(os.path.dirname(sklearn.__file__)) / "datasets" / "images"]
    out = {}
    for d in dirs:
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in (".png", ".jpg"):
                out[f.stem] = f
    return out


def crop_boxes(w: int, h: int) -> list[tuple[int, int, int]]:
    """Unique square boxes (left, top, side) at several scales and positions."""
    boxes = []
    short = min(w, h)
    for f in CROP_FRACTIONS:
        side = int(round(short * f))
        for px, py in CROP_POSITIONS:
            box = (int(round((w - side) * px)), int(round((h - side) * py)), side)
            if box not in boxes:
                boxes.append(box)
    return boxes


def photo_crops(path: str | Path, size: int = 224, flips: bool = True) -> np.ndarray:
    """uint8 (n, size, size, 3) crops of one photo: every box, and each mirrored."""
    im = load_image(path)
    out = []
    for left, top, side in crop_boxes(*im.size):
        c = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
        a = np.asarray(c, dtype=np.uint8)
        out.append(a)
        if flips:
            out.append(a[:, ::-1])
    return np.ascontiguousarray(np.stack(out))


def crops_of(names: tuple[str, ...] | list[str], size: int = 224
             ) -> tuple[np.ndarray, list[str]]:
    """Crops of several named photos and, per crop, the photo it came from."""
    paths = photo_paths()
    xs, src = [], []
    for n in names:
        c = photo_crops(paths[n], size)
        xs.append(c)
        src += [n] * len(c)
    return np.concatenate(xs), src


def center_views(names: tuple[str, ...] | list[str], resize: int = 256, size: int = 224
                 ) -> np.ndarray:
    """The standard evaluation view of each photo (short side to `resize`, center crop)."""
    from .images import resize_center_crop

    paths = photo_paths()
    return np.stack([resize_center_crop(load_image(paths[n]), resize, (size, size))
                     for n in names])
