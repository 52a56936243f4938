"""The tvm CPU backend: activations stay NHWC rows of uint8 codes between layers (nhwc.Act).
One-group convs run on the VNNI GEMM microkernel (gemm.py): 1x1 convs straight on the activation
rows, others through an NHWC im2col; the requantization runs in a vectorized Numba epilogue
straight into the next layer's rows. Ternary convs are two GEMM column blocks (the inputs under
+1 and under -1 weights); weight codes wider than int8 (9..16 bits) put their higher base-128
digits in extra GEMM column blocks, recombined exactly in the epilogue. Per int conv, a Numba
kernel that multiplies the rows by int32 weights along the output channels (no digits, no int32
matrix through memory) competes with the GEMM: the faster, timed at plan time, is kept and
remembered (numba_cpu/choice.py); it wins on large early layers with few input channels.
Depthwise convs, residual adds, gating, global pooling and tables are NHWC Numba kernels along
the channels; grouped convs and max/average pools fall back to the numba_cpu kernels (NCHW,
converted on the way)."""

from __future__ import annotations

import weakref

import numpy as np

from ...export.ir import Node
from ...quant.requant import float_exact
from ..numba_cpu import choice
from ..numba_cpu import ops as _nb
from . import nhwc
from .depthwise import depthwise_fn, pad_fn
from .gemm import (
    aligned_empty,
    aligned_zeros,
    fused_fn,
    gemm_fn,
    pack_fused,
    pack_weights,
)
from .nhwc import Act, from_nchw, new_act, out_dtype, to_nchw
from .vec_requant import float_params

_cache: "weakref.WeakKeyDictionary[Node, dict]" = weakref.WeakKeyDictionary()


def _i64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64).reshape(-1)


def _act(x) -> Act:
    if isinstance(x, Act):
        return x
    x = np.asarray(x)
    return from_nchw(x, np.uint8 if x.min() >= 0 and x.max() <= 255 else np.int32)


def from_images(images: np.ndarray) -> Act:
    """uint8 N x H x W x C images (already the input codes, DESIGN §5) -> the input's rows."""
    n, h, w, c = images.shape
    a = new_act(n, h, w, c, np.uint8)
    a.data[:a.m, :c] = images.reshape(a.m, c)
    return a


def to_host(x) -> np.ndarray:
    return to_nchw(x) if isinstance(x, Act) else np.asarray(x)


def digit_rows(w: np.ndarray) -> tuple[np.ndarray, int]:
    """Weight codes (O, K) of up to 16 bits -> (int8 rows (ndig*O, K), ndig). When some code
    does not fit int8, every channel is written in base 128: w = d0 + 128 d1 (+ 16384 d2), the
    lower digits in 0..127, the top one signed; block j of O rows holds digit j, so the
    epilogue recombines column oc with columns O + oc (and 2 O + oc), vectorized."""
    w = np.asarray(w, np.int64)
    if not w.size or np.abs(w).max() <= 127:
        return w.astype(np.int8), 1
    d0 = np.mod(w, 128)
    r = (w - d0) // 128
    digits = [d0]
    if np.abs(w).max() > 16383:
        d1 = np.mod(r, 128)
        digits += [d1, (r - d1) // 128]
    else:
        digits.append(r)
    out = np.concatenate(digits)
    assert out.min() >= -128 and out.max() <= 127
    return out.astype(np.int8), len(digits)


def kernel_choice(node: Node) -> str:
    """The kernel this backend runs for a conv node: 'gemm' (VNNI) or 'rows' (Numba, int32
    weights along the output channels: no digit split, no int32 matrix in memory), whichever
    was faster when timed at plan time; 'depthwise'; 'numba' (NCHW fallback)."""
    o, cg, _, _ = node.arrays["weight"].shape
    g = node.attrs["groups"]
    if g == 1:
        return choice.chosen("tvm", node) or "gemm"
    if cg == 1 and g == o and node.attrs.get("mode", "int") == "int":
        return "depthwise"
    return "numba"


def _gemm_params(node: Node, z_out: np.ndarray) -> dict:
    if node not in _cache:
        a = node.arrays
        w = np.asarray(a["weight"], np.int64)
        o = w.shape[0]
        wk = w.transpose(0, 2, 3, 1).reshape(o, -1)  # K ordered (i, j, c): NHWC im2col
        d = dict(o=o, k=wk.shape[1], bias=_i64(a["bias"]), mult=_i64(a["mult"]),
                 shift=_i64(a["shift"]), z=_i64(z_out), lo=_i64(a["lo"]), hi=_i64(a["hi"]),
                 ternary=node.attrs.get("mode", "int") == "ternary")
        if d["ternary"]:
            rows = np.concatenate([wk == 1, wk == -1]).astype(np.int8)
            d.update(bias_n=_i64(a["bias_n"]), mult_n=_i64(a["mult_n"]))
        else:
            rows, d["ndig"] = digit_rows(wk)
        pointwise = wk.shape[1] == w.shape[1]  # 1x1: K = C, the activation rows' width
        d["packed"] = pack_weights(rows, nhwc.CPAD if pointwise else 4)
        d["kpad"], d["npad"] = d["packed"].shape[1] * 4, d["packed"].shape[0] * 64
        d["fn"] = gemm_fn(d["kpad"], d["npad"])
        d["dtype"] = out_dtype(d["lo"], d["hi"])
        if not d["ternary"] and d["dtype"] == np.uint8:
            _fused_params(d, rows, nhwc.CPAD if pointwise else 4)
        _cache[node] = d
    return _cache[node]


def _fused_params(d: dict, rows: np.ndarray, k_multiple: int) -> None:
    """Set up the requantizing GEMM (gemm.fused_fn) where its float64 requantization is exact
    for every possible sum: bound |v| by the digit sums' worst case plus the bias."""
    o, ndig = d["o"], d["ndig"]
    dig = np.abs(rows.astype(np.int64)).sum(1).reshape(ndig, o) * 255
    vmax = (dig * (128 ** np.arange(ndig))[:, None]).sum(0) + np.abs(d["bias"])
    if not float_exact(vmax, d["mult"], d["shift"], d["z"]):
        return
    packed = pack_fused(rows, o, ndig, k_multiple)
    cv = packed.shape[2] // ndig
    ncol = packed.shape[0] * cv * 16
    bias = aligned_zeros((ncol,), np.int32)
    bias[:o] = d["bias"]
    c16 = o + (-o % nhwc.CPAD)
    q, lh = float_params(d["mult"], d["shift"], d["z"], d["lo"], d["hi"], ncol)
    d["fused"] = dict(packed=packed, bias=bias, c16=c16, q=q, lh=lh,
                      fn=fused_fn(packed.shape[1] * 4, o, ndig, c16))


def _out_hw(a: Act, kh: int, kw: int, node: Node) -> tuple[int, int]:
    sh, sw = node.attrs["stride"]
    t, b, l, r = node.attrs["pad"]
    return (a.h + t + b - kh) // sh + 1, (a.w + l + r - kw) // sw + 1


def _gemm_conv(node: Node, a: Act, z_in: np.ndarray, z_out: np.ndarray) -> Act:
    d = _gemm_params(node, z_out)
    o, _, kh, kw = node.arrays["weight"].shape
    (sh, sw), pad = node.attrs["stride"], node.attrs["pad"]
    ho, wo = _out_hw(a, kh, kw, node)
    if kh == kw == 1 and (sh, sw) == (1, 1) and not any(pad) and a.data.shape[1] == d["kpad"]:
        rows = a.data  # the activation rows are the GEMM's A operand
    else:
        m = a.n * ho * wo
        rows = aligned_empty((m + (-m % 4), d["kpad"]), np.uint8)
        if d["kpad"] > d["k"]:
            rows[:, d["k"]:] = 0
        nhwc.im2col(a.data, a.n, a.h, a.w, a.c, kh, kw, sh, sw, pad[0], pad[2], ho, wo,
                    _i64(z_in), rows)

    def gemm() -> Act:
        cm = aligned_empty((rows.shape[0], d["npad"]), np.int32)
        d["fn"](rows, d["packed"], cm)
        out = new_act(a.n, ho, wo, o, d["dtype"])
        if d["ternary"]:
            nhwc.epilogue_ternary(cm, out.m, o, d["bias"], d["bias_n"], d["mult"], d["mult_n"],
                                  d["shift"], d["z"], d["lo"], d["hi"], out.data)
        else:
            nhwc.epilogue(cm, out.m, o, d["ndig"], d["bias"], d["mult"], d["shift"], d["z"],
                          d["lo"], d["hi"], out.data)
        return out

    if d["ternary"]:
        return gemm()

    def rowwise() -> Act:
        if "wt" not in d:
            wk = np.asarray(node.arrays["weight"], np.int64).transpose(0, 2, 3, 1).reshape(o, -1)
            d["wt"] = np.ascontiguousarray(wk.T, dtype=np.int32)  # (K, O)
        out = new_act(a.n, ho, wo, o, d["dtype"])
        nhwc.pointwise_rows(rows, out.m, d["wt"], d["bias"], d["mult"], d["shift"], d["z"],
                            d["lo"], d["hi"], out.data)
        return out

    candidates = {"gemm": gemm, "rows": rowwise}
    if "fused" in d:
        def fused() -> Act:
            f = d["fused"]
            out = new_act(a.n, ho, wo, o, np.uint8)
            f["fn"](rows, f["packed"], f["bias"], f["q"], f["lh"], out.data)
            return out
        candidates["fused"] = fused
    return choice.run_fastest("tvm", node, rows.shape, candidates)


def _depthwise_params(node: Node, z_in: np.ndarray, z_out: np.ndarray) -> dict:
    if node not in _cache:
        w = np.asarray(node.arrays["weight"], np.int64)[:, 0]  # (C, kh, kw)
        c = w.shape[0]
        wt = np.ascontiguousarray(w.transpose(1, 2, 0), dtype=np.int32)
        ar = node.arrays
        bias, mult, shift = _i64(ar["bias"]), _i64(ar["mult"]), _i64(ar["shift"])
        lo, hi, z = _i64(ar["lo"]), _i64(ar["hi"]), _i64(z_out)
        d = dict(wt=wt, wz=np.ascontiguousarray(wt * _i64(z_in).astype(np.int32)),
                 bias=bias, mult=mult, shift=shift, z=z, lo=lo, hi=hi, dtype=out_dtype(lo, hi))
        vmax = np.abs(w).reshape(c, -1).sum(1) * 255 + np.abs(bias)
        if d["dtype"] == np.uint8 and float_exact(vmax, mult, shift, z):  # the TIR kernel
            c16 = c + (-c % nhwc.CPAD)
            kh, kw = wt.shape[:2]
            d["w16"] = aligned_zeros((kh, kw, c16), np.int32)
            d["w16"][:, :, :c] = wt
            d["b16"] = aligned_zeros((c16,), np.int32)
            d["b16"][:c] = bias
            d["q"], d["lh"] = float_params(mult, shift, z, lo, hi, c16)
            d["zp"] = aligned_zeros((c16,), np.uint8)
            d["zp"][:c] = _i64(z_in)
        _cache[node] = d
    return _cache[node]


def _depthwise(node: Node, a: Act, z_in: np.ndarray, z_out: np.ndarray) -> Act:
    d = _depthwise_params(node, z_in, z_out)
    kh, kw = d["wt"].shape[:2]
    ho, wo = _out_hw(a, kh, kw, node)
    out = new_act(a.n, ho, wo, a.c, d["dtype"])
    (sh, sw), pad = node.attrs["stride"], node.attrs["pad"]
    if "q" in d and a.data.dtype == np.uint8:
        c16 = a.data.shape[1]
        pt, pb, pl, pr = pad
        hp, wp = a.h + pt + pb, a.w + pl + pr
        xp = aligned_empty((a.n, hp, wp, c16), np.uint8)
        pad_fn(a.h, a.w, c16, pt, pb, pl, pr)(a.data, d["zp"], xp)
        depthwise_fn(hp, wp, kh, kw, sh, sw, c16)(xp, d["w16"], d["b16"], d["q"], d["lh"],
                                                  out.data)
        return out
    nhwc.depthwise(a.data, a.n, a.h, a.w, a.c, d["wt"], d["wz"], sh, sw, pad[0], pad[2], ho, wo,
                   d["bias"], d["mult"], d["shift"], d["z"], d["lo"], d["hi"], out.data)
    return out


def conv(node: Node, x, z_in: np.ndarray, z_out: np.ndarray) -> Act:
    a = _act(x)
    kind = kernel_choice(node)
    if kind in ("gemm", "rows", "fused") and a.data.dtype == np.uint8:
        return _gemm_conv(node, a, z_in, z_out)
    if kind == "depthwise":
        return _depthwise(node, a, z_in, z_out)
    y = _nb.conv(node, to_nchw(a), z_in, z_out)
    return from_nchw(y, out_dtype(_i64(node.arrays["lo"]), _i64(node.arrays["hi"])))


def _requant_out(node: Node, n: int, h: int, w: int, c: int
                 ) -> tuple[np.ndarray, np.ndarray, Act]:
    """(lo, hi, output rows) of a requantizing op: uint8 rows unless its codes need int32."""
    lo, hi = _i64(node.arrays["lo"]), _i64(node.arrays["hi"])
    return lo, hi, new_act(n, h, w, c, out_dtype(lo, hi))


def add(node: Node, x1, z1: np.ndarray, x2, z2: np.ndarray, z_out: np.ndarray) -> Act:
    a1, a2 = _act(x1), _act(x2)
    ar = node.arrays
    lo, hi, out = _requant_out(node, a1.n, a1.h, a1.w, a1.c)
    nhwc.add(a1.data, _i64(z1), a2.data, _i64(z2), _i64(ar["mult_a"]), _i64(ar["mult_b"]),
             _i64(ar["shift"]), _i64(z_out), lo, hi, a1.m, a1.c, out.data)
    return out


def mul(node: Node, x1, z1: np.ndarray, x2, z2: np.ndarray, z_out: np.ndarray) -> Act:
    a1, a2 = _act(x1), _act(x2)
    ar = node.arrays
    lo, hi, out = _requant_out(node, a1.n, a1.h, a1.w, a1.c)
    nhwc.mul(a1.data, _i64(z1), a2.data, _i64(z2), _i64(ar["mult"]), _i64(ar["shift"]),
             _i64(z_out), lo, hi, a1.n, a1.h * a1.w, a1.c, out.data)
    return out


def gap(node: Node, x, z_in: np.ndarray, z_out: np.ndarray) -> Act:
    a = _act(x)
    ar = node.arrays
    lo, hi, out = _requant_out(node, a.n, 1, 1, a.c)
    nhwc.gap(a.data, _i64(z_in), _i64(ar["mult"]), _i64(ar["shift"]), _i64(z_out), lo, hi,
             a.n, a.h * a.w, a.c, out.data)
    return out


def lut(node: Node, x) -> Act:
    a = _act(x)
    table = np.ascontiguousarray(node.arrays["table"], dtype=np.int32)
    out = new_act(a.n, a.h, a.w, a.c, out_dtype(table, table))
    nhwc.lut(a.data, table, a.m, a.c, out.data)
    return out


def maxpool(node: Node, x) -> Act:
    a = _act(x)
    return from_nchw(_nb.maxpool(node, to_nchw(a)), a.data.dtype)


def avgpool(node: Node, x, z_in: np.ndarray, z_out: np.ndarray) -> Act:
    a = _act(x)
    y = _nb.avgpool(node, to_nchw(a), z_in, z_out)
    return from_nchw(y, out_dtype(_i64(node.arrays["lo"]), _i64(node.arrays["hi"])))
