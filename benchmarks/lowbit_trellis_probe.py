"""Probe: what trellis-coded (dependent) quantization would add to entropy-coded weights.

Scalar uniform quantization with an ideal entropy coder (what `--weight-coding entropy` does,
up to its clipping choices) against dependent quantization as in VVC (Schwarz et al. 2018): two
scalar quantizers on one integer grid of step D (Q0: even multiples 2k; Q1: odd multiples and
zero, 2k - sgn(k)), the one in use chosen by a 4-state machine driven by the parity of the
previous level k, the levels chosen per output channel by a Viterbi search minimising
squared error + c * D^2 * bits (c = 0.08 and 0.2), the bits those of the levels under their
quantizer's histogram (two passes). The reconstructed weights are ordinary integers on the
grid, so kernels would run them unchanged; only the search and the coder's contexts differ.
Per layer (the late convs and the fc of Lite0, their effective weights with 8-bit input
scales from the calibration photos, each channel normalised to max |w| = 1), the upper
convex hull of (entropy in bits per weight, weight SQNR in dB) over a sweep of steps, at a
few rates. Then, on the 0.5x coded nearest file of lowbit_lite0.py, what reaches the logits:
the late pointwise convs and the fc requantized so (each layer's grid step scaled until its
entropy, one table pair per code width, equals the file's codes'; each channel's scale refit
by least squares), every other layer as exported, activations float, each changed layer's
mean output error on the calibration crops taken out of its bias as the export does; logit
SQNR on every second held-out crop against the file's own weights. A measurement for the next
lever, not a feature: nothing in the package uses it.

    python benchmarks/lowbit_trellis_probe.py    # about 5 minutes on 2 cores
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
from aq_runtime.export.api import calibrate_ranges
from aq_runtime.export.bias_correction import output_shifts
from aq_runtime.export.dequant import dequantized_conv
from aq_runtime.export.float_exec import run_float_graph
from aq_runtime.export.integerize import effective_weights
from aq_runtime.format import read_aqz
from aq_runtime.models.efficientnet import lite0_float_graph
from aq_runtime.quant import act_params_from_range
from aq_runtime.quant.cost import input_channel_map
from aq_runtime.quant.entropy import code_lengths
from aq_runtime.quant.packing import node_stored_codes
from aq_runtime.quant.requant import implied_scale
from lowbit_lite0 import KEEP, row_files

RESULTS = Path(__file__).parent / "results"
FILE_ROW = "auto 0.5 mse-ch coded"
LATE = ("_blocks.12.", "_blocks.13.", "_blocks.14.", "_blocks.15.", "_conv_head", "_fc")
LAYERS = ("_blocks.13._expand_conv", "_blocks.15._project_conv", "_conv_head", "_fc")
CHANNELS = 128
RATES = (2.5, 3.0, 3.5, 4.0, 4.5)
NEXT = np.array([[0, 2], [2, 0], [1, 3], [3, 1]])  # state, parity of k -> next state
M = 128  # level range |k| <= M in the rate tables


@njit(cache=True)
def _viterbi(w, lam, bits0, bits1):  # pragma: no cover (numba)
    """Levels k (O, K) and quantizer (O, K) per weight of rows w (in grid steps)."""
    o, kk = w.shape
    ks = np.zeros((o, kk), np.int64)
    qs = np.zeros((o, kk), np.int64)
    back_s = np.zeros((kk, 4), np.int64)
    back_k = np.zeros((kk, 4), np.int64)
    for r in range(o):
        cost = np.full(4, np.inf)
        cost[0] = 0.0
        for j in range(kk):
            x = w[r, j]
            new = np.full(4, np.inf)
            for s in range(4):
                if cost[s] == np.inf:
                    continue
                q1 = s >= 2
                base = np.floor((x + 1) / 2) if q1 else np.floor(x / 2)
                for d in range(-1, 3):
                    k = base + d if d < 2 else 0.0
                    if abs(k) > M:
                        continue
                    rec = 2 * k - np.sign(k) if q1 else 2 * k
                    b = bits1[int(k) + M] if q1 else bits0[int(k) + M]
                    c = cost[s] + (x - rec) ** 2 + lam * b
                    t = NEXT[s, int(k) & 1]
                    if c < new[t]:
                        new[t] = c
                        back_s[j, t] = s
                        back_k[j, t] = int(k)
            cost = new
        s = int(np.argmin(cost))
        for j in range(kk - 1, -1, -1):
            ks[r, j] = back_k[j, s]
            s = back_s[j, s]
            qs[r, j] = 1 if s >= 2 else 0
    return ks, qs


def _bits(k: np.ndarray) -> tuple[np.ndarray, float]:
    """(-log2 p per level in -M..M, 20 bits where unseen; total entropy in bits)."""
    c = np.bincount(k.ravel() + M, minlength=2 * M + 1).astype(float)
    p = c / max(c.sum(), 1)
    nl = np.where(c > 0, -np.log2(np.where(c > 0, p, 1)), 20.0)
    return nl, float((c * np.where(c > 0, nl, 0)).sum())


def trellis_points(w: np.ndarray, steps: np.ndarray) -> list[tuple[float, float]]:
    e2 = float((w ** 2).mean())
    pts = []
    for n in steps:
        x = w * n  # grid step 1/n of the channel's max
        for c in (0.08, 0.2):
            b0 = b1 = np.zeros(2 * M + 1)
            ks, qs = _viterbi(x, 0.0, b0, b1)
            for _ in range(2):
                b0, _ = _bits(ks[qs == 0])
                b1, _ = _bits(ks[qs == 1])
                ks, qs = _viterbi(x, c, b0, b1)
            rate = (_bits(ks[qs == 0])[1] + _bits(ks[qs == 1])[1]) / ks.size
            rec = np.where(qs == 1, 2 * ks - np.sign(ks), 2 * ks) / n
            pts.append((rate, -10 * np.log10(((rec - w) ** 2).mean() / e2)))
    return pts


def scalar_points(w: np.ndarray, steps: np.ndarray) -> list[tuple[float, float]]:
    e2 = float((w ** 2).mean())
    pts = []
    for n in steps:
        q = np.round(w * n)
        rate = float(code_lengths(q.reshape(1, -1)).sum() / q.size)
        pts.append((rate, -10 * np.log10(((q / n - w) ** 2).mean() / e2)))
    return pts


def hull_at(pts: list[tuple[float, float]], r: float) -> float:
    """The upper convex hull of (rate, SQNR) points at rate r (nan outside their span)."""
    best = np.nan
    for r1, s1 in pts:
        for r2, s2 in pts:
            if r1 <= r <= r2 and r2 > r1:
                v = s1 + (s2 - s1) * (r - r1) / (r2 - r1)
                best = v if np.isnan(best) else max(best, v)
    return best


def _trellis_layer(n, g, fn) -> tuple[np.ndarray, float, float]:
    """(real weights of IR conv `n` of `g` requantized by dependent quantization at the
    entropy of its codes, weight-error gain in dB, bits per weight); `fn` its float node."""
    t_in = g.tensors[n.inputs[0]]
    sw = implied_scale(n.arrays["mult"], n.arrays["shift"], g.tensors[n.output].scale)
    o, cg = n.arrays["weight"].shape[:2]
    sa = t_in.scale[input_channel_map(o, cg, n.attrs["groups"])][:, :, None, None]
    we = effective_weights(fn, t_in.scale)  # in the units of sw * Q
    q, cb = node_stored_codes(n.arrays, n.attrs)
    target = sum(float(code_lengths(q[cb == b].reshape(1, -1)).sum()) for b in np.unique(cb))

    def run(f: float) -> tuple[float, np.ndarray]:
        x = we / (sw[:, None] * f)
        ks, qs = _viterbi(x, 0.0, np.zeros(2 * M + 1), np.zeros(2 * M + 1))
        for _ in range(2):
            ks, qs = _viterbi(x, 0.12, _bits(ks[qs == 0])[0], _bits(ks[qs == 1])[0])
        rate = sum(_bits(ks[cb == b][qs[cb == b] == s])[1] for b in np.unique(cb) for s in (0, 1))
        return rate, np.where(qs == 1, 2 * ks - np.sign(ks), 2 * ks)

    lo, hi = 0.3, 1.5
    for _ in range(14):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if run(mid)[0] > target else (lo, mid)
    rate, rec = run(hi)
    gain = (rec * we).sum(1) / np.maximum((rec * rec).sum(1), 1e-30)  # least-squares scale
    w = rec * gain[:, None]
    err = 10 * np.log10(((q * sw[:, None] - we) ** 2).sum() / ((w - we) ** 2).sum())
    return w.reshape(n.arrays["weight"].shape) / sa, err, rate / q.size


def logits_probe(fg, xc: np.ndarray) -> list[str]:
    """Weights-only logit SQNR of the 0.5x coded file, its own codes vs trellis-requantized
    late layers, both bias-corrected on the calibration crops."""
    g = read_aqz(row_files(KEEP, fg.name, [FILE_ROW])[0])
    xh = crops_of(HELDOUT_PHOTOS)[0][::2]
    fnodes = {n.name: n for n in fg.conv_nodes()}
    own = {n.name: dequantized_conv(g, n) for n in g.weight_nodes()}
    late = [n for n in g.weight_nodes() if n.name.startswith(LATE) and "depthwise" not in n.name]
    lines, dq = [], {}
    for n in late:
        dq[n.name], err, bits = _trellis_layer(n, g, fnodes[n.name])
        lines.append(f"  {n.name:26s} {bits:5.2f} bits per weight, weight error {err:+.2f} dB")
    ref = run_float_graph(fg, xh)

    def sqnr(weights: dict) -> float:
        shift = output_shifts(fg, xc, {k: weights[k] - fnodes[k].weight for k in dq})
        biases = {k: own[k][1] for k in own} | {k: fnodes[k].bias - shift[k] for k in dq}
        y = run_float_graph(fg, xh, weights=weights, biases=biases)
        return float(10 * np.log10((ref ** 2).sum() / ((y - ref) ** 2).sum()))

    base = {k: w for k, (w, _) in own.items()}
    a, b = sqnr(base), sqnr(base | dq)
    return lines + [f"  weights-only logit SQNR on {len(xh)} held-out crops: the file's codes "
                    f"{a:.2f} dB, trellis-requantized late layers {b:.2f} dB ({b - a:+.2f})"]


def main() -> None:
    fg = lite0_float_graph()
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    ranges = calibrate_ranges(fg, xc)
    lines = []
    for name in LAYERS:
        n = next(m for m in fg.conv_nodes() if m.name == name)
        lo, hi = ranges[n.inputs[0]]
        s_in = act_params_from_range(lo, hi, np.full(lo.shape, 8))[0]
        w = effective_weights(n, s_in)[:CHANNELS]
        w = w / np.abs(w).max(axis=1, keepdims=True)
        sc = scalar_points(w, np.geomspace(2, 60, 30))
        tr = trellis_points(w, np.geomspace(3, 45, 9))  # levels cover 2 grid steps
        cells = [f"{a:6.2f} {b:6.2f} {b - a:+5.2f}"
                 for a, b in ((hull_at(sc, r), hull_at(tr, r)) for r in RATES)]
        lines.append(f"{name:26s} " + "   ".join(cells))
        print(lines[-1], flush=True)
    head = (f"{'layer (first 128 channels)':26s} " + "   ".join(
        f"{f'{r} bits: scalar  trellis  gain':>23s}" for r in RATES))
    text = ("Weight SQNR (dB) at equal entropy (bits per weight): scalar uniform quantization vs "
            "4-state dependent (trellis-coded) quantization,\nupper convex hull over a sweep of "
            "steps; each channel normalised to max|w| = 1 (EfficientNet-Lite0, effective "
            "weights, 8-bit input scales)\n\n" + head + "\n" + "\n".join(lines) + "\n\n"
            f"At the logits ({FILE_ROW}, blocks 12-15's pointwise convs, the head and the fc "
            "requantized at their codes' entropy; activations float; bias-corrected):\n"
            + "\n".join(logits_probe(fg, xc)) + "\n")
    write_result(RESULTS / "lowbit_trellis_probe.txt", text)


if __name__ == "__main__":
    main()
