"""`--bits auto`: weight bits per output channel chosen by measured sensitivity under a
weight-byte budget (by default the bytes of uniform 8).

1. Per conv, the logit noise power of quantizing that layer alone is measured on calibration
   images at PROBES bits (with the export's clipping and, if on, bias correction), and
   interpolated log-linearly to every candidate (2..16; 4x less per bit above 8).
2. For per-channel plans, within a layer the noise is shared out over its output channels in
   proportion to each channel's own weight error at those bits, weighted by its inputs' mean
   square (sum_k dWe[o,k]^2 E[x_k^2], the output noise power that channel adds): a channel
   whose weights quantize well, or whose inputs are small, takes fewer bits.
3. A Lagrangian search picks the bits that minimise the summed noise within the budget: over
   layers (one width per layer), or over all channels of all layers
   (`--allocation channel`; each channel packs to ceil(K * bits / 8) bytes, or with
   `--weight-coding entropy` takes its codes' coded bytes, and may keep its whole range at a
   coded width; the plan is refitted until the coder's bytes are within the budget).
Measured on Lite0's held-out crops (docs/LOWBIT.md): per channel alone is within 0.3 dB of per
layer at 0.375x-0.75x and 0.9 dB worse at 8 bits' bytes (its split weights channels by their
inputs' power on the calibration images, which carries over to unseen photos less well than a
layer's total); with entropy-coded weights it prices each channel's coded width, which is why
the low-budget default (below budget 1) plans per channel and one width per layer is the
default at budget 1.
Layers where the int32 proof would fail at a bit-width never get it. Activation widths are
not this module's: they cost no weight bytes (`--act-bits auto`: auto_act_bits.py)."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..quant import act_params_from_range
from ..quant.cost import input_channel_map
from ..quant.entropy import code_lengths, coded_widths
from ..quant.packing import (
    codes_bytes,
    mult_row_bytes,
    row_bytes,
    stored_codes,
    stored_row_bytes,
)
from ..quant.weights import grouped_rows
from .bias_correction import output_shifts, sample
from .bits_spec import BitsPlan
from .calibrate import Ranges
from .clipping import mse_alpha
from .float_exec import run_float_graph
from ..ir.float_graph import FloatGraph, FloatNode
from .integerize import effective_weights, grouped_weight_codes, weight_codes
from .options import ExportOptions

CANDIDATES = np.arange(2, 17)
PROBES = (2, 3, 4, 6, 8)
ACC_MARGIN = float(1 << 30)
FIT_ROUNDS = 8  # budget refits when coded sizes overshoot the planner's estimate


def max_safe_bits(n: FloatNode, s_in: np.ndarray, group: int = 0) -> int:
    """Largest candidate whose accumulator bound with 8-bit inputs stays under 2^30."""
    o = n.weight.shape[0]
    best = int(CANDIDATES[0])
    for b in CANDIDATES:
        q, _ = weight_codes((n.weight * s_in.max()).reshape(o, -1), np.full(o, b), n.bias,
                            group=group)
        if float(np.abs(q).sum(axis=1).max()) * 255 < ACC_MARGIN:
            best = int(b)
    return best


def _interp(probes: dict[int, float]) -> np.ndarray:
    """Per candidate bits, log-linear between the measured probes, 4x less per bit above the
    highest and 4x more per bit below the lowest."""
    bs = np.array(sorted(probes))
    logs = np.log(np.maximum([probes[b] for b in bs], 1e-30))
    out = np.interp(CANDIDATES, bs, logs)
    out = np.where(CANDIDATES > bs[-1], logs[-1] - np.log(4.0) * (CANDIDATES - bs[-1]), out)
    out = np.where(CANDIDATES < bs[0], logs[0] + np.log(4.0) * (bs[0] - CANDIDATES), out)
    return np.exp(out)


class _Layer:
    """One conv's quantization: fake-quantized float weights at the probes and, for
    per-channel plans (`m2`, its input's per-channel mean square, given), each channel's
    input-weighted weight error at every candidate: a column per candidate bit-width and,
    for per-channel plans of entropy-coded MSE-clipped weights, a column per coded width
    keeping the channel's full range (`full`: with coding, an unclipped range costs a wider
    code fewer bytes than a packed one; measured on Lite0's late convs it lies above the
    clipped widths' rate-distortion curve by 0.2-0.4 dB of weight SQNR)."""

    def __init__(self, n: FloatNode, s_in: np.ndarray, clipping: str,
                 m2: np.ndarray | None = None, group: int = 0, coding: str = "packed"):
        o, cg, kh, kw = n.weight.shape
        we = effective_weights(n, s_in)
        ch = input_channel_map(o, cg, n.attrs["groups"])
        sa = s_in[ch][:, :, None, None]
        wx = None if m2 is None else np.repeat(m2[ch] / s_in[ch] ** 2, kh * kw, axis=1)
        k = cg * kh * kw
        coded = coding == "entropy"
        full = CANDIDATES[coded_widths(CANDIDATES) & (CANDIDATES <= 8)] if (
            coded and wx is not None and clipping == "mse") else CANDIDATES[:0]
        self.bits = np.concatenate([CANDIDATES, full])  # per column
        self.full = np.arange(len(self.bits)) >= len(CANDIDATES)
        self.base = np.searchsorted(CANDIDATES, self.bits)  # the column's plain width
        self.err = np.zeros((o, len(self.bits)))
        self.fake: dict[int, np.ndarray] = {}
        self.size = np.tile(stored_row_bytes(k, self.bits, group).astype(float), (o, 1))
        self.k, self.group, self.coding = k, group, coding
        self.codes: dict[int, np.ndarray] = {}  # stored codes per coded column (entropy)
        for i, b in enumerate(self.bits):
            code = coded and bool(coded_widths(b))
            if wx is None and b not in PROBES and not code:
                continue
            bits = np.full(o, b)
            mse = clipping == "mse" and b <= 8 and not self.full[i]
            alpha = mse_alpha(we, bits, n.bias, group) if mse else 1.0
            q, sw, mult, _ = grouped_weight_codes(we, bits, n.bias, alpha, group)
            if wx is not None:
                d = q * sw[:, None] - we
                self.err[:, i] = (d * d * wx).sum(axis=1)  # E[(q - z)^2] per tap
            if b in PROBES and not self.full[i]:
                self.fake[int(b)] = (q * sw[:, None]).reshape(n.weight.shape) / sa
            if code:  # the stored codes' ideal coded length, one stream per layer and width
                gr = grouped_rows(bits, k, group)
                sc = q if mult is None else stored_codes(q, mult, gr, group)
                self.size[:, i] = code_lengths(sc) / 8 + mult_row_bytes(k, gr, group)
                self.codes[i] = sc.astype(np.int16)

    def stored_bytes(self, cols: np.ndarray) -> int:
        """Bytes this conv's weights take in the file with channel o at column cols[o]
        (coded: what the writer's coder gives for the chosen codes, a stream per width)."""
        bits = self.bits[cols]
        grouped = grouped_rows(bits, self.k, self.group)
        if not (self.codes and coded_widths(bits).all()):
            return int(stored_row_bytes(self.k, bits, self.group).sum())
        sc = np.zeros((len(bits), self.k), dtype=np.int64)
        for c in np.unique(cols):
            sc[cols == c] = self.codes[int(c)][cols == c]
        return codes_bytes(sc, bits, self.coding) + int(mult_row_bytes(self.k, grouped,
                                                                       self.group).sum())

    def channel_noise(self, layer_noise: np.ndarray) -> np.ndarray:
        """The layer's noise per candidate width shared over its channels by their weight
        error (a full-range column: by its error against the clipped width's total)."""
        total = self.err[:, :len(CANDIDATES)].sum(axis=0)[self.base]
        return np.where(total > 0, self.err / np.where(total > 0, total, 1.0),
                        1.0 / len(self.err)) * layer_noise[None, self.base]


def _input_power(fg: FloatGraph, x: np.ndarray) -> dict[str, np.ndarray]:
    """E[x_c^2] per channel of every conv input tensor, over images and positions."""
    wanted = {n.inputs[0] for n in fg.conv_nodes()}
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}

    def hook(name: str, t: torch.Tensor) -> None:
        if name in wanted:
            v = t.double()
            sums[name] = sums.get(name, 0) + (v * v).sum(dim=(0, 2, 3)).numpy()
            counts[name] = counts.get(name, 0) + t.shape[0] * t.shape[2] * t.shape[3]

    run_float_graph(fg, x, hook=hook)
    return {k: sums[k] / counts[k] for k in sums}


def lagrangian_choice(noise: np.ndarray, size: np.ndarray, ok: np.ndarray, budget: float
              ) -> np.ndarray:
    """Per unit (row) the candidate index minimising noise + lam * size, lam the smallest
    whose total size fits `budget` (bisection in log space)."""
    rows = np.arange(len(noise))

    def choose(lam: float) -> np.ndarray:
        return np.where(ok, noise + lam * size, np.inf).argmin(axis=1)

    lo, hi = 1e-30, 1e30
    for _ in range(200):
        mid = float(np.sqrt(lo * hi))
        if size[rows, choose(mid)].sum() <= budget:
            hi = mid
        else:
            lo = mid
    return choose(hi)


def auto_bits(fg: FloatGraph, images: np.ndarray, ranges: Ranges, options: ExportOptions,
              n_images: int = 16) -> BitsPlan:
    """The weight plan and its report: weight bytes <= `options.budget` x the bytes of
    uniform 8 bits, one width per layer or (`options.allocation='channel'`) per output
    channel; target 'avx2' never chooses 8; with `weight_groups`, widths 2..5 carry group
    multipliers (their noise measured so, their 3 bits per group priced); with
    `weight_coding='entropy'` each channel's
    codes at 2..12 bits are priced at their entropy-coded size (their layer's codes at that
    width as one stream's histogram), the budget still uniform 8's packed bytes. With
    `bias_correction` each probe's noise is measured as the export will leave it: with the
    layer's mean output error taken out of its bias."""
    o = options
    budget_ratio, progress, clipping = o.budget, o.progress, o.clipping
    group, coding = o.weight_groups, o.weight_coding
    skip_bits = (8,) if o.target == "avx2" else ()
    x = sample(images, n_images)
    ref = run_float_graph(fg, x)
    per_channel = o.allocation == "channel"
    m2 = _input_power(fg, x) if per_channel else {}
    scales = {t: act_params_from_range(lo, hi, np.full(lo.shape, 8))[0]
              for t, (lo, hi) in ranges.items()}
    convs = fg.conv_nodes()
    layers = {n.name: _Layer(n, scales[n.inputs[0]], clipping, m2.get(n.inputs[0]), group,
                             coding)
              for n in tqdm(convs, desc="weight errors", disable=not progress)}
    shift = {b: (output_shifts(fg, sample(images), {n.name: layers[n.name].fake[b] - n.weight
                                                    for n in convs})
                 if o.bias_correction else {n.name: 0.0 for n in convs}) for b in PROBES}
    layer_noise, layer_ok = [], []
    for n in tqdm(convs, desc="sensitivity", disable=not progress):
        L = layers[n.name]
        meas = {}
        for b in PROBES:
            y = run_float_graph(fg, x, weights={n.name: L.fake[b]},
                                biases={n.name: n.bias - shift[b][n.name]})
            meas[b] = float(((y - ref) ** 2).mean())
        layer_noise.append(_interp(meas))  # (candidates,)
        layer_ok.append((CANDIDATES <= max_safe_bits(n, scales[n.inputs[0]], group))
                        & ~np.isin(CANDIDATES, skip_bits))
    size_c = np.concatenate([layers[n.name].size for n in convs])
    k_of = {n.name: int(np.prod(n.weight.shape[1:])) for n in convs}
    budget = budget_ratio * sum(int(row_bytes(k_of[n.name], 8)) * n.weight.shape[0]
                                for n in convs)  # uniform 8 bits, packed
    if per_channel:
        noise = np.concatenate([layers[n.name].channel_noise(ln)
                                for n, ln in zip(convs, layer_noise)])
        size = size_c
        ok = np.concatenate([np.broadcast_to(k[layers[n.name].base], layers[n.name].err.shape)
                             for n, k in zip(convs, layer_ok)])
    else:
        noise = np.stack(layer_noise)
        size = np.stack([layers[n.name].size.sum(axis=0) for n in convs])
        ok = np.stack(layer_ok)
    units = np.cumsum([0] + [n.weight.shape[0] if per_channel else 1 for n in convs])
    target = budget
    for _ in range(FIT_ROUNDS):  # coded sizes: the planner's estimate, then the coder's bytes
        idx = lagrangian_choice(noise, size, ok, target)
        cols = {n.name: np.broadcast_to(idx[units[i]:units[i + 1]], (n.weight.shape[0],))
                for i, n in enumerate(convs)}
        stored = sum(layers[n.name].stored_bytes(cols[n.name]) for n in convs)
        if stored <= budget:
            break
        target *= budget / stored * (1 - 1e-4)
    wbits = {k: layers[k].bits[c].astype(np.int64) for k, c in cols.items()}
    full = {k: layers[k].full[c] for k, c in cols.items() if layers[k].full[c].any()}
    predicted = float(noise[np.arange(len(idx)), idx].sum())
    report = {"budget_bytes": int(budget), "weight_bytes": int(stored),
              "allocation": o.allocation, "budget": budget_ratio,
              "predicted_noise": predicted, "probes": list(PROBES),
              "clipping": clipping, "bits": {k: float(v.mean()) for k, v in wbits.items()},
              "full_range_channels": int(sum(v.sum() for v in full.values())),
              "full_range": full}
    return BitsPlan(wbits, {}, {}, report)
