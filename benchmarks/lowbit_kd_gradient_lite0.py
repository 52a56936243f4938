"""Why distillation on the calibration photos does not carry to other photos, to first order.

At the start of the low-bit table's KD recipe (`auto 0.5 learned coded blk`, the best 0.5x
export, bits frozen; loss: MSE to the float logits + 10 x the block outputs' relative MSE, as
lowbit_lite0.py trains it), the gradient of that loss over the trained parameters is taken on
each photo alone (the mean over its fixed crops, unmirrored), for the 8 calibration photos and
the 11 held-out ones. If what the calibration photos teach were what the others need, their
gradients would point the same way: the file reports the cosines between photos' gradients
(calibration with calibration, held-out with held-out, across), the cosine between the
calibration photos' mean gradient and the held-out photos' (all parameters, and per group),
and the same for two halves of the held-out photos (a control: do other photos agree among
themselves?). It also gives what an Adam-like first step (every parameter moved by the same
amount against the sign of its calibration gradient) does to the held-out loss to first order:
the fraction of the held-out gradient's L1 mass it descends (+1: all of it, -1: it climbs).
Nothing here trains; about 1.5 minutes on 2 cores. Writes results/lowbit_kd_gradient_lite0.txt.

    python benchmarks/lowbit_kd_gradient_lite0.py
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lowbit_kd_variants_lite0 import START, variant_config
from lowbit_lite0 import KD_BLOCKS, KEEP
from tqdm import tqdm

from aq_runtime.bench.machine import describe
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, photo_crops, photo_paths
from aq_runtime.training.loop import block_kd, prepare

RESULTS = Path(__file__).resolve().parent / "results"
CHUNK = 8


def photo_gradient(tr, x: np.ndarray) -> dict[str, np.ndarray]:
    """Group -> flattened gradient of the mean KD loss over the crops `x` (uint8 NHWC)."""
    model = tr.model
    model.train()
    model.zero_grad(set_to_none=True)
    for i in range(0, len(x), CHUNK):
        xt = torch.from_numpy(np.ascontiguousarray(x[i:i + CHUNK]))
        logits, mid = model.run(xt, tr.kept)
        t_logits, t_mid = tr.teacher.run(xt, tr.kept)
        loss = F.mse_loss(logits, t_logits) + KD_BLOCKS * block_kd(mid, t_mid)
        (loss * len(xt) / len(x)).backward()
    out = {}
    for group, params in (("weights and biases", model.other_parameters()),
                          ("ranges", model.range_parameters())):
        out[group] = np.concatenate([(p.grad if p.grad is not None else torch.zeros_like(p))
                                     .detach().double().reshape(-1).numpy() for p in params])
    return out


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))


def main() -> None:
    start = Path(KEEP) / f"{START}.aqz"
    if not start.is_file():
        raise SystemExit(f"{start}: run benchmarks/lowbit_lite0.py --only "
                         "'auto 0.5 learned coded blk' first")
    t0 = time.time()
    cfg = variant_config(Path("runs/kd_gradient_probe"), start, {})
    tr, _, _, _ = prepare(cfg, False, 0, 1)  # builds the start model; writes nothing
    paths = photo_paths()
    names = list(CALIBRATION_PHOTOS) + list(HELDOUT_PHOTOS)
    grads = {}
    for n in tqdm(names, desc="gradient per photo"):
        grads[n] = photo_gradient(tr, photo_crops(paths[n], flips=False))
    groups = list(grads[names[0]])
    flat = {n: np.concatenate([grads[n][g] for g in groups]) for n in names}  # all parameters

    def mean(ns, g: str | None = None) -> np.ndarray:
        return np.mean([flat[n] if g is None else grads[n][g] for n in ns], axis=0)

    def pairs(a, b) -> tuple[float, float, float]:
        cs = [cos(flat[p], flat[q]) for p, q in (itertools.combinations(a, 2) if a is b
                                                    else itertools.product(a, b))]
        return float(np.mean(cs)), float(np.min(cs)), float(np.max(cs))

    cal, held = list(CALIBRATION_PHOTOS), list(HELDOUT_PHOTOS)
    half_a, half_b = held[::2], held[1::2]
    lines = [f"KD loss gradient per photo at the start of the KD recipe ({start.name}, bits "
             f"frozen; MSE to the float logits + {KD_BLOCKS:g} x block outputs' relative MSE), "
             "each photo's fixed crops unmirrored",
             f"machine: {describe()}; {time.time() - t0:.0f} s", "",
             "cosine between two photos' gradients (all trained parameters)",
             f"  {'pairs':34s} {'mean':>7s} {'min':>7s} {'max':>7s}"]
    for label, a, b in (("calibration with calibration", cal, cal),
                        ("held-out with held-out", held, held),
                        ("calibration with held-out", cal, held)):
        m, lo, hi = pairs(a, b)
        lines.append(f"  {label:34s} {m:7.3f} {lo:7.3f} {hi:7.3f}")
    lines += ["", "cosine between mean gradients",
              f"  {'':50s} " + " ".join(f"{g:>18s}" for g in ["all", *groups])]

    def row(label: str, a, b) -> str:
        vals = [cos(mean(a), mean(b))] + [cos(mean(a, g), mean(b, g)) for g in groups]
        return f"  {label:50s} " + " ".join(f"{v:18.3f}" for v in vals)
    lines.append(row("8 calibration photos vs 11 held-out photos", cal, held))
    lines.append(row("held-out half A vs half B (control)", half_a, half_b))
    lines.append(row("calibration half A vs half B", cal[::2], cal[1::2]))
    gc = mean(cal)

    def share(g: np.ndarray) -> float:  # of g's L1 mass that a step -sign(gc) descends
        return float(np.sign(gc) @ g) / max(float(np.abs(g).sum()), 1e-300)
    lines += ["", "first order, a sign step against the calibration photos' mean gradient "
                  "(Adam's first step): the share of a loss gradient's L1 mass it descends "
                  "(+1 all, 0 none, -1 it climbs)",
              f"  the held-out photos' mean loss: {share(mean(held)):+.3f}",
              "  per held-out photo: " + ", ".join(f"{n} {share(flat[n]):+.3f}" for n in held),
              "  per calibration photo: " + ", ".join(f"{n} {share(flat[n]):+.3f}"
                                                      for n in cal)]
    write_result(RESULTS / "lowbit_kd_gradient_lite0.txt", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
