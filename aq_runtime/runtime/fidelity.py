"""Fidelity: the four numbers, one function used by tests, demo and benchmarks: top-1
agreement, top-5 containment (float top-1 within the integer top-5), agreement on confident
images (float top-1 probability >= 0.5) and logit SQNR in dB."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

CONFIDENT = 0.5
# the legend under the fidelity tables: what the three agreement columns count
LEGEND = ("top-1: agreement with the float top-1; top-5: float top-1 within the top-5; "
          f"conf.: agreement where float p >= {CONFIDENT:g}")


@dataclass
class Fidelity:
    n: int
    top1_agreement: float
    top5_containment: float
    confident_agreement: float
    n_confident: int
    sqnr_db: float

    def as_dict(self) -> dict:
        return asdict(self)


def argmax_lowest(x: np.ndarray) -> np.ndarray:
    """argmax along the last axis, ties to the lowest index (docs/SEMANTICS.md, Output)."""
    return np.argmax(x, axis=-1)


def topk(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest per row, by value descending then index ascending."""
    idx = np.argsort(-x, axis=-1, kind="stable")
    return idx[..., :k]


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    noise = float(((ref - test) ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(float((ref ** 2).sum()) / noise)


def fidelity(float_logits: np.ndarray, test_logits: np.ndarray, test_scale: float = 1.0
             ) -> Fidelity:
    """Compare real-valued float logits with test logits (integer codes times `test_scale`)."""
    f = np.asarray(float_logits, np.float64)
    q = np.asarray(test_logits, np.float64) * test_scale
    ft1 = argmax_lowest(f)
    agree = argmax_lowest(q) == ft1
    top5 = (topk(q, min(5, q.shape[1])) == ft1[:, None]).any(axis=1)
    p = np.exp(f - f.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    conf = p.max(axis=1) >= CONFIDENT
    return Fidelity(int(f.shape[0]), float(agree.mean()), float(top5.mean()),
                    float(agree[conf].mean()) if conf.any() else float("nan"), int(conf.sum()),
                    sqnr_db(f, q))
