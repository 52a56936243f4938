"""Many images for the at-scale benchmarks: JPEGs of the calibration photos' crops, resized to
random sides of 96..320 px (seeded: the same files every run), 1000 to a sub-folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_jpegs(root: str | Path, n: int, seed: int = 0) -> Path:
    """`n` JPEGs under `root`/NN/NNNNN.jpg; returns `root`."""
    from ..data.photos import CALIBRATION_PHOTOS, crops_of
    root = Path(root)
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = root / f"{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        side = int(rng.integers(96, 321))
        Image.fromarray(xc[i % len(xc)]).resize((side, side)).save(sub / f"{i:05d}.jpg",
                                                                  quality=85)
    return root
