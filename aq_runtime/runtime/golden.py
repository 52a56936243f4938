"""Golden logits: fixed images that are the same bytes on every platform, and the SHA-256 of
int32 logits. A model run on those images gives one hash on every CPU, backend and kernel
build; a machine that computes differently shows a different hash (the tests' committed
contract, and the check a deployment can run on its own hardware)."""

from __future__ import annotations

import hashlib

import numpy as np


def golden_images(name: str, shape: tuple[int, int, int], n: int = 8) -> np.ndarray:
    """`n` fixed uint8 images N x H x W x C for input `shape` (C, H, W), seeded by `name`
    (PCG64 integers: the same bytes on every platform)."""
    c, h, w = shape
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def logits_hash(y: np.ndarray) -> str:
    """SHA-256 of int32 logits as little-endian bytes."""
    return hashlib.sha256(np.ascontiguousarray(y, dtype="<i4").tobytes()).hexdigest()
