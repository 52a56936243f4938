"""Training data: the digits split, labelled image folders (one subfolder per class),
unlabelled folders and the bundled photos for distillation-only training, with deterministic
augmentation (random resized crop + flip, Pillow only; for distillation, optionally mixup of
two crops): the batch of step k of epoch e depends only on (seed, e, k), which is what makes
`--resume` reproduce an uninterrupted run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import AqError
from ..data.augment import recolour
from ..data.images import list_images, load_image, resize_center_crop
from ..ir.float_graph import FloatGraph

BUILTIN_DATA = ("digits", "photos")
REPORT_STRIDE = 4  # --data photos: every 4th held-out crop (94 of 376) reported per epoch


@dataclass
class TrainData:
    """`train_batch(indices, rng)` gives uint8 N x H x W x C images and labels (or None);
    `val` are fixed uint8 images with labels (None: score agreement with the float model);
    `report` (optional) fixed images only reported on after each epoch, never used to choose
    a checkpoint (`--data photos`: crops of the held-out photos)."""
    name: str
    size: int  # samples per epoch
    labelled: bool
    val_x: np.ndarray
    val_y: np.ndarray | None
    _x: np.ndarray | None = None
    _y: np.ndarray | None = None
    _images: list | None = None
    _hw: tuple[int, int] = (0, 0)
    _augment: bool = False
    _jitter: float = 0.0  # colour jitter of the random crops (data.augment.recolour)
    _grayscale: float = 0.0  # probability of a grey view
    _mixup: float = 0.0  # distillation only: each crop blended with another (mixup_pair)
    extra: np.ndarray | None = None  # synthesized training images (the last of `_images`)
    report_x: np.ndarray | None = None
    report_name: str = ""

    def train_batch(self, idx: np.ndarray, rngs: list[np.random.Generator] | np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Samples `idx`; augmentation of sample j draws from `rngs[j]` (or one generator)."""
        if self._x is not None:
            return self._x[idx], (self._y[idx] if self._y is not None else None)
        if isinstance(rngs, np.random.Generator):
            rngs = [rngs] * len(idx)
        ims = [self._images[i % len(self._images)] for i in idx]
        x = np.stack([self._view(im, r) for im, r in zip(ims, rngs)])
        y = self._y[idx % len(self._images)] if self._y is not None else None
        return x, y

    def _view(self, im: Image.Image, rng: np.random.Generator) -> np.ndarray:
        """One training view of `im`: a random resized crop, with mixup blended with a crop of
        an image drawn from the set (same generator: still a function of the sample's seed)."""
        a = random_resized_crop(im, self._hw, rng, jitter=self._jitter, grayscale=self._grayscale)
        if self._mixup <= 0:
            return a
        other = self._images[int(rng.integers(len(self._images)))]
        b = random_resized_crop(other, self._hw, rng, jitter=self._jitter,
                                grayscale=self._grayscale)
        return mixup_pair(a, b, float(rng.beta(self._mixup, self._mixup)))


def mixup_pair(a: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    """`lam * a + (1 - lam) * b` of two uint8 images, rounded half up back to uint8 (mixup,
    Zhang et al. 2018; for distillation the float model labels the blend, which is what makes
    it work without labels: "function matching", Beyer et al. 2022)."""
    mix = lam * a.astype(np.float32) + (1 - lam) * b.astype(np.float32)
    return np.floor(mix + 0.5).clip(0, 255).astype(np.uint8)


def random_resized_crop(im: Image.Image, hw: tuple[int, int], rng: np.random.Generator,
                        scale: tuple[float, float] = (0.25, 1.0), jitter: float = 0.0,
                        grayscale: float = 0.0) -> np.ndarray:
    """A random square-ish crop covering `scale` of the short side squared, resized, maybe
    flipped; with `jitter` or `grayscale`, recoloured as `data.augment.recolour` does (no
    draws for it otherwise: crops without it stay what they were)."""
    w, h = im.size
    side = min(w, h) * np.sqrt(rng.uniform(*scale))
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw, ch = min(w, side * np.sqrt(aspect)), min(h, side / np.sqrt(aspect))
    left, top = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
    crop = im.resize((hw[1], hw[0]), Image.BILINEAR, box=(left, top, left + cw, top + ch))
    if jitter > 0 or grayscale > 0:
        crop = recolour(crop, rng, jitter, grayscale)
    a = np.asarray(crop, dtype=np.uint8)
    if rng.uniform() < 0.5:
        a = a[:, ::-1]
    a = a[..., None] if a.ndim == 2 else a
    return np.ascontiguousarray(a)


def _match_labels(classes: list[str], fg: FloatGraph) -> np.ndarray:
    """Class index in the model for each subfolder name (a label name or an integer index)."""
    idx = []
    lookup = {name: i for i, name in enumerate(fg.labels)}
    n_out = len(fg.labels)
    for c in classes:
        if c in lookup:
            idx.append(lookup[c])
        elif c.isdigit() and int(c) < n_out:
            idx.append(int(c))
        else:
            raise AqError(f"class folder {c!r} is neither a label of {fg.name} nor an index "
                          f"below {n_out}")
    return np.asarray(idx, np.int64)


def load_train_data(spec: str, fg: FloatGraph, kd_only: bool, epoch_size: int = 256,
                    val_fraction: float = 0.1, seed: int = 0, jitter: float = 0.0,
                    grayscale: float = 0.0, mixup: float = 0.0,
                    extra: np.ndarray | None = None) -> TrainData:
    """'digits', 'photos' (bundled calibration photos, distillation only) or a folder; the
    image sets' random crops recoloured by `jitter` / `grayscale` (see random_resized_crop)
    and, for distillation (`kd_only`), blended in pairs with weights ~ Beta(mixup, mixup).
    `extra`: uint8 N x H x W x C images (synthesized ones) added to a distillation set's
    training images, cropped as theirs are (never to its validation images)."""
    c, h, w = fg.input_shape
    if (mixup > 0 or extra is not None) and (not kd_only or spec == "digits"):
        raise AqError("--mixup and --synthetic make unlabelled views for distillation: they "
                      "need --kd-only and an image set ('photos' or a folder)")
    more = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
            for a in (extra if extra is not None else [])]
    if spec == "digits":
        if fg.input_shape != (1, 8, 8):
            raise AqError(f"--data digits is 8x8 grayscale; {fg.name} takes {c}x{h}x{w}")
        from ..models.digits import digits_data
        xtr, ytr, xte, yte = digits_data(seed)
        return TrainData("digits", len(ytr), not kd_only, xte, yte, _x=xtr,
                         _y=None if kd_only else ytr)
    if spec == "photos":
        from ..data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of, photo_paths
        if (h, w) != (h, h) or c != 3:
            raise AqError("--data photos needs a square RGB model input")
        paths = photo_paths()
        ims = [load_image(paths[n]) for n in CALIBRATION_PHOTOS]
        # checkpoints are chosen on the calibration photos' fixed crops (training draws random
        # crops of the same photos); the held-out photos stay for scoring, outside training
        val = crops_of(CALIBRATION_PHOTOS, h)[0]
        return TrainData("photos", epoch_size, False, val, None, _images=ims + more, _hw=(h, w),
                         _augment=True, report_x=crops_of(HELDOUT_PHOTOS, h)[0][::REPORT_STRIDE],
                         report_name="heldout", _jitter=jitter, _grayscale=grayscale,
                         _mixup=mixup, extra=extra)
    root = Path(spec)
    if not root.is_dir():
        raise AqError(f"{spec}: no such data folder (or use 'digits' / 'photos')")
    files = list_images(root)
    if not files:
        raise AqError(f"{spec}: no images found")
    classes = sorted({Path(f).relative_to(root).parts[0] for f in files
                      if len(Path(f).relative_to(root).parts) > 1})
    labelled = bool(classes) and all(len(Path(f).relative_to(root).parts) > 1 for f in files)
    if not kd_only and not labelled:
        raise AqError(f"{spec}: images are not in one subfolder per class; "
                      "pass --kd-only to distill from the float model without labels")
    y = None
    if labelled and not kd_only:
        cls_idx = _match_labels(classes, fg)
        pos = {name: i for i, name in enumerate(classes)}
        y = np.asarray([cls_idx[pos[Path(f).relative_to(root).parts[0]]] for f in files])
    order = np.random.default_rng(seed).permutation(len(files))
    n_val = max(1, int(round(val_fraction * len(files)))) if len(files) > 1 else 0
    val_i, tr_i = order[:n_val], order[n_val:] if n_val < len(files) else order
    resize = int(fg.preprocess.get("resize", max(h, w)))
    ims = [load_image(files[i], c) for i in tr_i] + more
    val_x = np.stack([resize_center_crop(load_image(files[i], c), resize, (h, w))
                      for i in val_i]) if n_val else np.zeros((0, h, w, c), np.uint8)
    return TrainData(str(root), max(epoch_size, len(ims)), y is not None, val_x,
                     y[val_i] if y is not None else None, _images=ims,
                     _y=y[tr_i] if y is not None else None, _hw=(h, w), _augment=True,
                     _jitter=jitter, _grayscale=grayscale, _mixup=mixup, extra=extra)
