"""Weight clipping (`--clipping mse`): per output channel, the range factor alpha (AQ's range
scale, 1 = max|We[o]|) that minimises the channel's squared weight-rounding error at its own
bits, by a grid search. At low bits a channel's largest weight costs every other weight
resolution; clipping it trades a little error there for less everywhere else."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..quant.bits import weight_code_max
from ..quant.weights import GROUP_MULT_MAX, code_bits, grouped_rows
from ..ir.float_graph import FloatGraph
from .integerize import BIAS_CODE_LIMIT, effective_weights
from ..ir.graph import Graph

ALPHAS = np.round(np.arange(0.30, 1.0001, 0.01), 2)
GROUPED_ALPHAS = np.round(np.arange(0.50, 1.0001, 0.05), 2)


def mse_alpha(we: np.ndarray, bits: np.ndarray, bias: np.ndarray, group: int = 0
              ) -> np.ndarray:
    """Per channel the alpha of ALPHAS with the least sum (We - sw * Q)^2 (first on ties);
    channels that take group multipliers (`group`) search the coarser GROUPED_ALPHAS (each
    group already picks its own step of eight: measured on Lite0's convs at 3-4 bits, the
    full grid gains 0.6% of the weight error over this one at 6x the time)."""
    bits = np.asarray(bits, dtype=np.int64)
    bias = np.broadcast_to(np.asarray(bias, dtype=np.float64), bits.shape)
    alpha = np.ones(len(bits))
    rows = grouped_rows(bits, we.shape[1], group)
    for sel, alphas, g in ((~rows, ALPHAS, 0), (rows, GROUPED_ALPHAS, group)):
        if sel.any():  # each channel searched once, on its own grid
            alpha[sel] = _search(we[sel], bits[sel], bias[sel], alphas, g)
    return np.where(bits <= 1, 1.0, alpha)


def _search(we: np.ndarray, bits: np.ndarray, bias: np.ndarray, alphas: np.ndarray,
            group: int) -> np.ndarray:
    """Each channel's alpha of `alphas`, searched from 1.0 down: a smaller range only where
    its squared error is lower by more than a relative 1e-12 (ties keep the larger range).
    One fused pass per channel (numba), its scale and codes as quant.weights computes them
    (`quantize_weights`; with `group`, every channel grouped, `quantize_weights_grouped`'s
    multiplier per group); tests/test_lowbit.py holds it to integerize.weight_codes."""
    we = np.ascontiguousarray(we, dtype=np.float64)
    floor = np.abs(np.asarray(bias, dtype=np.float64)) / BIAS_CODE_LIMIT
    qmax = weight_code_max(np.maximum(bits, 2)).astype(np.float64)  # 1 bit: discarded
    return _fused_search(we, qmax, floor, np.ascontiguousarray(alphas[::-1], np.float64),
                         group, GROUP_MULT_MAX)


@njit(cache=True, nogil=True)
def _fused_search(we: np.ndarray, qmax: np.ndarray, floor: np.ndarray, alphas: np.ndarray,
                  group: int, mults: int) -> np.ndarray:  # pragma: no cover (numba)
    o, k = we.shape
    out = np.ones(o)
    step = group if group else max(k, 1)  # without groups, the whole row at once
    top = mults if group else 1  # the largest multiplier tried; the scale's divisor
    for r in range(o):
        amax = 0.0
        for j in range(k):
            amax = max(amax, abs(we[r, j]))
        qm = qmax[r]
        best = np.inf
        for a in alphas:
            s = max(a * amax / (qm * top), floor[r])  # top 1 without groups: a * amax / qm
            if not s > 0:
                s = 1.0
            err = 0.0
            for g0 in range(0, k, step):
                g1 = min(g0 + step, k)
                m_best = 1
                e_best = np.inf
                for m in range(1, top + 1):
                    st = s * m
                    e = 0.0
                    for j in range(g0, g1):
                        c = min(max(np.floor(we[r, j] / st + 0.5), -qm), qm)
                        d = we[r, j] - c * st
                        e += d * d
                    if e < e_best * (1 - 1e-12):
                        e_best = e
                        m_best = m
                if not group:  # m = 1: the row's error as measured
                    err += e_best
                    continue
                st = s * m_best
                for j in range(g0, g1):
                    c = min(max(np.floor(we[r, j] / st + 0.5), -qm), qm)
                    d = we[r, j] - (c * m_best) * s
                    err += d * d
            if err < best * (1 - 1e-12):
                best = err
                out[r] = a
    return out


def mse_ranges(fg: FloatGraph, graph: Graph, group: int = 0) -> dict[str, np.ndarray]:
    """alpha per output channel of every non-ternary conv of `fg`, at the code bits and input
    scales `graph` (its nearest-rounded integerization) gives it."""
    nodes = {n.name: n for n in graph.weight_nodes()}
    out = {}
    for n in fg.conv_nodes():
        node = nodes.get(n.name)
        if node is None or node.attrs.get("mode") == "ternary":
            continue
        we = effective_weights(n, graph.tensors[n.inputs[0]].scale)
        out[n.name] = mse_alpha(we, code_bits(node.arrays), n.bias, group)
    return out
