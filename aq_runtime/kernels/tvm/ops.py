"""The tvm CPU backend: convs with one group (1x1 directly, others through im2col; not
ternary) run as the VNNI GEMM microkernel (kernels/tvm/gemm.py) with a Numba requantization epilogue (quant.requant's
`requant_one`); every other op is the numba_cpu kernel. Channels with codes wider than int8
(9..16 bits) add their higher base-128 digits as extra GEMM columns, combined exactly in the
epilogue. Activations are transposed once per pointwise layer to rows of uint8 codes. Per
layer, the first run times this GEMM path against the numba kernel and keeps the faster
(`kernel_choice`, shown by `aq-bench --layers`); decisions are remembered in the kernel cache
folder (kernel_choices.json, keyed by the layer's weights and input shape)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import weakref
from pathlib import Path

import numpy as np
from numba import njit, prange

from ...export.ir import Node
from ..numba_cpu import ops as _nb
from ..numba_cpu.ops import (  # noqa: F401
    _requant,  # quant.requant.requant_one, compiled once
    add,
    avgpool,
    gap,
    lut,
    maxpool,
    mul,
)
from .gemm import aligned_empty, cache_dir, gemm_fn, pack_weights

_cache: "weakref.WeakKeyDictionary[Node, tuple]" = weakref.WeakKeyDictionary()


@njit(parallel=True, cache=True)
def _to_rows(x, a):
    """x (N, C, P) int32 codes in 0..255 -> a[n*P + p, c] uint8 (a pre-zeroed, padded)."""
    nb, c, p = x.shape
    for t in prange(nb * p):
        b = t // p
        q = t % p
        for ci in range(c):
            a[t, ci] = x[b, ci, q]


@njit(parallel=True, cache=True)
def _epilogue(cm, wide, nw, bias, mult, shift, z, lo, hi, out):
    """cm[n*P + p, column] int32 partial sums -> out (N, O, P) requantized codes. Column o holds
    digit 0 of channel o; a wide channel (wide[o] = j >= 0) adds 128 x column O + j and
    16384 x column O + nw + j (its higher base-128 digits). Tiles of 16 pixels x all channels
    keep both the row-major reads and the channel-major writes in cache."""
    nb, o, p = out.shape
    ncol = cm.shape[1]
    tiles = (p + 15) // 16
    for t in prange(nb * tiles):
        b = t // tiles
        q0 = (t % tiles) * 16
        q1 = min(q0 + 16, p)
        for oc in range(o):
            bi, mi, si, zi, li, hv = bias[oc], mult[oc], shift[oc], z[oc], lo[oc], hi[oc]
            j = wide[oc]
            for q in range(q0, q1):
                r = b * p + q
                acc = np.int64(cm[r, oc])
                if j >= 0:
                    acc += np.int64(128) * cm[r, o + j]
                    if o + nw + j < ncol:
                        acc += np.int64(16384) * cm[r, o + nw + j]
                out[b, oc, q] = _requant(acc, bi, mi, si, zi, li, hv)


def split_digits(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Weight codes (O, K) of up to 16 bits -> (rows (O + nw*(d-1), K) of int8 digits, wide
    index per channel (-1: fits int8), nw). Channels with |w| > 127 are written in base 128:
    w = d0 + 128 d1 (+ 16384 d2), d0 (and d1) in 0..127, the top digit signed."""
    w = np.asarray(w, np.int64)
    wide_rows = np.nonzero(np.abs(w).max(axis=1) > 127)[0] if w.size else np.zeros(0, np.int64)
    wide = np.full(w.shape[0], -1, np.int64)
    wide[wide_rows] = np.arange(len(wide_rows))
    if not len(wide_rows):
        return w.astype(np.int8), wide, 0
    three = np.abs(w[wide_rows]).max() > 16383
    r = w[wide_rows]
    d0 = np.mod(r, 128)
    r = (r - d0) // 128
    digits = [d0]
    if three:
        d1 = np.mod(r, 128)
        digits += [d1, (r - d1) // 128]
    else:
        digits.append(r)
    rows = w.copy()
    rows[wide_rows] = digits[0]
    out = np.concatenate([rows] + digits[1:])
    assert out.min() >= -128 and out.max() <= 127
    return out.astype(np.int8), wide, len(wide_rows)


@njit(parallel=True, cache=True)
def _im2col(xp, kh, kw, sh, sw, ho, wo, a):
    """Padded xp (N, C, Hp, Wp) int32 -> a[n*P + y*Wo + x, (c*kh + i)*kw + j] uint8."""
    nb, c = xp.shape[0], xp.shape[1]
    for t in prange(nb * ho):
        b = t // ho
        y = t % ho
        for xx in range(wo):
            r = b * ho * wo + y * wo + xx
            for ci in range(c):
                for i in range(kh):
                    for j in range(kw):
                        a[r, (ci * kh + i) * kw + j] = xp[b, ci, y * sh + i, xx * sw + j]


def gemm_eligible(node: Node) -> bool:
    """Every int conv with one group runs on the GEMM (1x1 directly, others via im2col)."""
    return node.attrs["groups"] == 1 and node.attrs.get("mode", "int") == "int"


def prepare(node: Node, z_out: np.ndarray) -> tuple:
    """Packed int8 weights, the compiled kernel and the epilogue arrays of one node (cached)."""
    if node not in _cache:
        a = node.arrays
        rows, wide, nw = split_digits(a["weight"].reshape(a["weight"].shape[0], -1))
        packed = pack_weights(rows)
        kpad, npad = packed.shape[1] * 4, packed.shape[0] * 64
        i64 = lambda k: np.ascontiguousarray(a[k], dtype=np.int64)  # noqa: E731
        _cache[node] = (packed, gemm_fn(kpad, npad), kpad, rows.shape[0], wide, nw, i64("bias"),
                        i64("mult"), i64("shift"), np.ascontiguousarray(z_out, dtype=np.int64),
                        i64("lo"), i64("hi"))
    return _cache[node]


_choice: "weakref.WeakKeyDictionary[Node, str]" = weakref.WeakKeyDictionary()


def kernel_choice(node: Node) -> str:
    """The kernel this backend runs for a conv: 'gemm' (tvm VNNI) or 'numba' (decided by
    timing both on the first input the node sees; both are exact)."""
    return _choice.get(node, "gemm" if gemm_eligible(node) else "numba")


def _timed(fn, *args) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(2):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, out


_disk: dict[str, str] | None = None


def _choice_key(node: Node, x: np.ndarray) -> str:
    h = hashlib.sha1()
    for k in ("weight", "wbits"):
        h.update(np.ascontiguousarray(node.arrays[k]).tobytes())
    h.update(repr((node.attrs["stride"], node.attrs["pad"], x.shape)).encode())
    return h.hexdigest()


def _choices_file() -> Path:
    return cache_dir() / "kernel_choices.json"


def _remember(key: str, value: str) -> None:
    """Persist a timing decision next to the compiled kernels (best effort, atomic)."""
    assert _disk is not None
    _disk[key] = value
    try:
        path = _choices_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(_disk, f)
        os.replace(tmp, path)
    except OSError:
        pass


def conv(node: Node, x: np.ndarray, z_in: np.ndarray, z_out: np.ndarray) -> np.ndarray:
    global _disk
    if not gemm_eligible(node):
        return _nb.conv(node, x, z_in, z_out)
    if node not in _choice:  # plan time: measure both kernels on this input, keep the faster
        if _disk is None:
            try:
                _disk = dict(json.loads(_choices_file().read_text()))
            except (OSError, ValueError, TypeError):
                _disk = {}
        key = _choice_key(node, x)
        if _disk.get(key) in ("gemm", "numba"):  # measured by an earlier process
            _choice[node] = _disk[key]
        else:
            t_gemm, out = _timed(_gemm_conv, node, x, z_in, z_out)
            t_nb, _ = _timed(_nb.conv, node, x, z_in, z_out)
            _choice[node] = "gemm" if t_gemm <= t_nb else "numba"
            _remember(key, _choice[node])
            return out
    if _choice[node] == "numba":
        return _nb.conv(node, x, z_in, z_out)
    return _gemm_conv(node, x, z_in, z_out)


def _gemm_conv(node: Node, x: np.ndarray, z_in: np.ndarray, z_out: np.ndarray) -> np.ndarray:
    packed, fn, kpad, nrows, wide, nw, bias, mult, shift, z, lo, hi = prepare(node, z_out)
    npad = packed.shape[0] * 64
    sh, sw = node.attrs["stride"]
    o, c, kh, kw = node.arrays["weight"].shape
    pad = node.attrs["pad"]
    n = x.shape[0]
    ho = (x.shape[2] + pad[0] + pad[1] - kh) // sh + 1
    wo = (x.shape[3] + pad[2] + pad[3] - kw) // sw + 1
    p = ho * wo
    m = n * p
    k = c * kh * kw
    a = aligned_empty((m + (-m % 4), kpad), np.uint8)
    a[m:] = 0
    if kpad > k:
        a[:, k:] = 0
    if kh == kw == 1 and not any(pad):
        xs = x[:, :, ::sh, ::sw] if (sh, sw) != (1, 1) else x
        _to_rows(np.ascontiguousarray(xs, dtype=np.int32).reshape(n, c, p), a)
    else:
        xp = _nb._pad(np.ascontiguousarray(x, dtype=np.int32), pad[0], pad[1], pad[2], pad[3],
                      np.ascontiguousarray(z_in, dtype=np.int32))
        _im2col(xp, kh, kw, sh, sw, ho, wo, a)
    cm = aligned_empty((a.shape[0], npad), np.int32)
    fn(a, packed, cm)
    out = np.empty((n, o, p), np.int32)
    _epilogue(cm[:, :nrows], wide, nw, bias, mult, shift, z, lo, hi, out)
    return out.reshape(n, o, ho, wo)
