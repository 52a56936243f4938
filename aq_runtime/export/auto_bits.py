"""`--bits auto`: weight bits per layer chosen by measured sensitivity under a weight-byte
budget (by default the bytes of uniform 8). For every conv, the logit noise power of
quantizing that layer alone is measured at two bit-widths on calibration images and
extended to 2..16 bits by a log-linear model; a Lagrangian search then picks the bits that
minimize the summed noise within the budget. Layers where the int32 proof would fail at a
bit-width never get it. Activations stay at 8 bits (they cost no weight bytes)."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from ..quant import act_params_from_range, quantize_weights
from ..quant.cost import input_channel_map
from ..quant.packing import packed_size
from .bias_correction import output_shifts, sample
from .bits_spec import BitsPlan
from .calibrate import Ranges
from .float_exec import run_float_graph
from .float_graph import FloatGraph, FloatNode

CANDIDATES = tuple(range(2, 17))
PROBES = (4, 8)
ACC_MARGIN = float(1 << 30)


def fake_weights(n: FloatNode, s_in: np.ndarray, bits: int) -> np.ndarray:
    """The float weights a layer has after folding s_in, quantizing at `bits`, unfolding."""
    o, cg, kh, kw = n.weight.shape
    ch = input_channel_map(o, cg, n.attrs["groups"])
    sa = s_in[ch][:, :, None, None]
    q, sw = quantize_weights((n.weight * sa).reshape(o, -1), np.full(o, bits))
    return (q * sw[:, None]).reshape(n.weight.shape) / sa


def max_safe_bits(n: FloatNode, s_in: np.ndarray) -> int:
    """Largest candidate whose accumulator bound with 8-bit inputs stays under 2^30."""
    o = n.weight.shape[0]
    best = CANDIDATES[0]
    for b in CANDIDATES:
        q, _ = quantize_weights((n.weight * s_in.max()).reshape(o, -1), np.full(o, b))
        if float(np.abs(q).sum(axis=1).max()) * 255 < ACC_MARGIN:
            best = b
    return best


def noise_model(n_lo: float, n_hi: float) -> dict[int, float]:
    """Noise power per candidate bits from measurements at PROBES (4, 8)."""
    lo_b, hi_b = PROBES
    n_lo, n_hi = max(n_lo, 1e-30), max(n_hi, 1e-30)
    slope = float(np.clip(np.log2(n_lo / n_hi) / (hi_b - lo_b), 1.0, 2.5))
    out = {}
    for b in CANDIDATES:
        if b >= hi_b:
            out[b] = n_hi * 4.0 ** -(b - hi_b)
        elif b >= lo_b:
            out[b] = n_hi * 2.0 ** (slope * (hi_b - b))
        else:
            out[b] = n_lo * 2.0 ** (max(slope, 2.5) * (lo_b - b))
    return out


def auto_bits(fg: FloatGraph, images: np.ndarray, ranges: Ranges, budget_ratio: float = 1.0,
              n_images: int = 16, progress: bool = True, bias_correction: bool = True
              ) -> tuple[BitsPlan, dict]:
    """(bits plan, report) with weight bytes <= budget_ratio * bytes of uniform 8 bits.
    With `bias_correction` each probe's noise is measured as the export will leave it: with
    the layer's mean output error taken out of its bias."""
    x = sample(images, n_images)
    ref = run_float_graph(fg, x)
    scales = {t: act_params_from_range(lo, hi, np.full(lo.shape, 8))[0]
              for t, (lo, hi) in ranges.items()}
    convs = fg.conv_nodes()
    fake = {b: {n.name: fake_weights(n, scales[n.inputs[0]], b) for n in convs} for b in PROBES}
    shift = {b: (output_shifts(fg, sample(images), {n.name: fake[b][n.name] - n.weight
                                                    for n in convs})
                 if bias_correction else {n.name: 0.0 for n in convs}) for b in PROBES}
    noise, sizes, allowed = {}, {}, {}
    for n in tqdm(convs, desc="sensitivity", disable=not progress):
        s_in = scales[n.inputs[0]]
        meas = []
        for b in PROBES:
            y = run_float_graph(fg, x, weights={n.name: fake[b][n.name]},
                                biases={n.name: n.bias - shift[b][n.name]})
            meas.append(float(((y - ref) ** 2).mean()))
        noise[n.name] = noise_model(*meas)
        k = int(np.prod(n.weight.shape[1:]))
        sizes[n.name] = {b: packed_size(k, np.full(n.weight.shape[0], b)) for b in CANDIDATES}
        allowed[n.name] = max_safe_bits(n, s_in)
    budget = budget_ratio * sum(sizes[n.name][8] for n in convs)

    def choose(lam: float) -> dict[str, int]:
        return {n.name: min((b for b in CANDIDATES if b <= allowed[n.name]),
                            key=lambda b: noise[n.name][b] + lam * sizes[n.name][b])
                for n in convs}

    def total(c: dict[str, int]) -> int:
        return sum(sizes[k][b] for k, b in c.items())

    lo, hi = 1e-30, 1e30
    for _ in range(200):
        mid = float(np.sqrt(lo * hi))
        if total(choose(mid)) <= budget:
            hi = mid
        else:
            lo = mid
    pick = choose(hi)
    wbits = {n.name: np.full(n.weight.shape[0], pick[n.name], np.int64) for n in convs}
    report = {"budget_bytes": int(budget), "weight_bytes": total(pick),
              "predicted_noise": float(sum(noise[k][b] for k, b in pick.items())),
              "bits": pick}
    return (wbits, {}, {}), report
