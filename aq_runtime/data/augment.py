"""Augmented calibration images for data-hungry export steps (learned rounding): random
resized crops, horizontal flips and colour jitter (brightness, contrast, saturation; optionally
grey views, which training's crops use too) of the images a user has, seeded and
deterministic. Unlabelled images are all such a step needs; a few photos then give thousands
of distinct inputs instead of a few hundred near-copies."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageEnhance

SCALE = (0.25, 1.0)  # crop area as a fraction of the image
RATIO = (3 / 4, 4 / 3)
JITTER = 0.3  # brightness / contrast / saturation factors in [1 - JITTER, 1 + JITTER]


def _box(rng: np.random.Generator, w: int, h: int) -> tuple[int, int, int, int]:
    for _ in range(10):
        area = w * h * rng.uniform(*SCALE)
        ratio = math.exp(rng.uniform(math.log(RATIO[0]), math.log(RATIO[1])))
        cw, ch = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return x, y, x + cw, y + ch
    return 0, 0, w, h


def augment_one(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random view of a uint8 H x W x C image, the same shape."""
    h, w, c = image.shape
    im = Image.fromarray(image if c == 3 else image[..., 0])
    im = im.crop(_box(rng, w, h)).resize((w, h), Image.BILINEAR)
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    a = np.asarray(recolour(im, rng, JITTER), dtype=np.uint8)
    return a if c == 3 else a[..., None]


def recolour(im: Image.Image, rng: np.random.Generator, jitter: float = JITTER,
             grayscale: float = 0.0) -> Image.Image:
    """Brightness, contrast and (colour images) saturation, each by a factor drawn in
    [1 - jitter, 1 + jitter] in random order; then, with probability `grayscale`, the grey
    image (kept in RGB). With grayscale 0 no draw is made for it, so views made without it
    stay what they were."""
    enhancers = [ImageEnhance.Brightness, ImageEnhance.Contrast]
    if im.mode == "RGB":
        enhancers.append(ImageEnhance.Color)
    for i in rng.permutation(len(enhancers)):
        im = enhancers[i](im).enhance(float(rng.uniform(1 - jitter, 1 + jitter)))
    if grayscale > 0 and im.mode == "RGB" and rng.random() < grayscale:
        im = im.convert("L").convert("RGB")
    return im


def augmented(images: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """`images` (uint8 N x H x W x C) followed by random views of them, n images in all (at
    least the originals)."""
    rng = np.random.default_rng(seed)
    extra = [augment_one(images[rng.integers(len(images))], rng)
             for _ in range(max(0, n - len(images)))]
    return np.concatenate([images, np.stack(extra)]) if extra else images
