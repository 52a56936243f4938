"""The tvm CPU backend: activations stay NHWC rows of uint8 codes between layers (nhwc.Act), and
the work runs in TVM's thread pool as TIR kernels. One-group convs are GEMMs on the VNNI
microkernel (gemm.py): 1x1 convs straight on the activation rows, others on TIR im2col rows
(layout.py); weight codes wider than one byte digit add base-128 digit columns (AVX-512) or
go as int16 to `vpmaddwd` (256-bit vectors: gemm.py's `word` kernels), ternary weights two
0/1 column blocks. Per conv up to three exact candidates are timed at plan time
(the fastest kept and remembered, kernels/choice.py): 'fused', the GEMM that requantizes in
registers (vec_requant: float64, used only where quant.requant.float_exact proves it exact);
'gemm', int32 sums through memory and the int64 Numba epilogue; 'rows', a Numba kernel on int32
weights. Depthwise convs (depthwise.py: three exact candidates, timed), residual adds,
gating and global pooling (elementwise.py) requantize in registers the same way, with the
int64 Numba kernels (nhwc.py) where the proof fails; tables are a TIR gather; grouped convs
other than depthwise run on the NCHW Numba kernels of kernels/nchw.py, max/average pools on
the reference. Numba kernels run on the calling thread (`_Serial`). `TvmCpuOps` is the ops
object of one graph: each node, once planned, keeps its chosen kernel bound to its constants
(`_prepared`), so a run is a walk of prepared calls."""

from __future__ import annotations

import threading
from typing import Callable

import numba
import numpy as np

from ...ir.graph import Graph, Node
from ...quant.requant import float_exact
from .. import choice, nchw, reference
from ..choice import Chooser
from ..ops import Ops
from . import nhwc as _nhwc
from .depthwise import (
    depthwise_fn,
    pair_weights,
    pairs_pay,
    padded_fn,
    row_weights,
    rows_fn,
    rows_pay,
)
from .elementwise import add_fn, gap_fn, lut_fn, mul_fn
from .buffers import aligned_empty, aligned_zeros
from .compiled import VERSION, ahead_loaded
from .dot import column_offsets, digit_limit, fits_int16, group_size, takes_words
from .gemm import fused_fn, gemm_fn, pack_fused, pack_weights, packed_columns
from .layout import im2col_fn, pad_fn
from .target import isa
from .nhwc import Act, from_nchw, out_dtype, to_nchw, width
from ..tvm_runtime import cpu_threads
from .vec_requant import float_params, full_range

choice.KERNEL_VERSION["tvm"] = VERSION  # a kernel code change retimes the choices
Runner = Callable[[Act], Act]


class _Serial:
    """The Numba kernels this backend still calls (nhwc's, nchw's fallbacks), run on the
    calling thread only: OpenMP's pool would otherwise wake and spin beside TVM's thread pool
    on the same cores, which made whole runs 2-4x slower (measured: Lite0 5.0 -> 3.2 ms)."""

    def __init__(self, mod):
        self._mod = mod

    def __getattr__(self, name):
        f = getattr(self._mod, name)

        def serial(*args, **kw):
            prev = numba.get_num_threads()
            numba.set_num_threads(1)
            try:
                return f(*args, **kw)
            finally:
                numba.set_num_threads(prev)
        return serial


nhwc = _Serial(_nhwc)
_nchw_serial = _Serial(nchw)


class _Scratch:
    """The arrays one planned node writes (its output rows, im2col rows, padded copies), kept
    from run to run per thread: no allocation and no fresh pages to fault in on every run.
    A node's output is read only within the same run (the executor frees it after its last
    use; to_host copies the graph output), so the next run may overwrite it."""

    def __init__(self) -> None:
        self._tls = threading.local()

    def get(self, role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        bufs = self._tls.__dict__
        b = bufs.get(role)
        if b is None or b.shape != shape or b.dtype != dtype:
            b = bufs[role] = aligned_empty(shape, dtype)
        return b

    def act(self, n: int, h: int, w: int, c: int, dtype) -> Act:
        m = n * h * w
        return Act(self.get("out", (m + (-m % 4), width(c)), np.dtype(dtype)),
                   n, h, w, c)


def _key(a: Act) -> tuple:
    return (a.n, a.h, a.w, a.c, a.data.dtype)


JIT_CANDIDATES = ("gemm", "rows")  # the GEMM candidates that run Numba code (compiled on use)


def _i64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64).reshape(-1)


def _act(x) -> Act:
    if isinstance(x, Act):
        return x
    x = np.asarray(x)
    return from_nchw(x, np.uint8 if x.min() >= 0 and x.max() <= 255 else np.int32)


def digit_rows(w: np.ndarray, limit: int = 127, words: bool = False) -> tuple[np.ndarray, int]:
    """Weight codes (O, K) of up to 16 bits -> (int8 rows (ndig*O, K), ndig) whose digits the
    dot product takes exactly (|d| <= `limit`: 127, int8, or 64 with AVX2's vpmaddubsw). When
    some code does not fit: with `words` (dot.takes_words) the codes as int16 rows, ndig 1;
    else every channel is written in base 128: w = d0 + 128 d1 (+ 16384 d2),
    the lower digits in 0..127 (limit 127) or -64..63 (limit 64), the top one signed; block j
    of O rows holds digit j, so the epilogue recombines column oc with columns O + oc (and
    2 O + oc), vectorized."""
    w = np.asarray(w, np.int64)
    lo = -128 if limit == 127 else -limit
    if not w.size or (w.min() >= lo and w.max() <= limit):
        return w.astype(np.int8), 1
    if words and fits_int16(w):
        return w.astype(np.int16), 1
    digits, r = [], w
    while not digits or r.min() < lo or r.max() > limit:
        d = np.mod(r, 128) if limit == 127 else np.mod(r + 64, 128) - 64
        digits.append(d)
        r = (r - d) // 128
    digits.append(r)
    out = np.concatenate(digits)
    assert out.min() >= lo and out.max() <= limit and len(digits) <= 3
    return out.astype(np.int8), len(digits)


def _is_depthwise(node: Node) -> bool:
    o, cg, _, _ = node.arrays["weight"].shape
    g = node.attrs["groups"]
    return cg == 1 and g == o and g > 1 and node.attrs.get("mode", "int") == "int"


def _fused_params(d: dict, rows: np.ndarray, k_multiple: int) -> None:
    """Set up the requantizing GEMM (gemm.fused_fn) where its float64 requantization is exact
    for every possible sum: bound |v| by the digit sums' worst case plus the bias."""
    o, ndig = d["o"], d["ndig"]
    dig = np.abs(rows.astype(np.int64)).sum(1).reshape(ndig, o) * 255
    vmax = (dig * (128 ** np.arange(ndig))[:, None]).sum(0) + np.abs(d["bias"])
    if not float_exact(vmax, d["mult"], d["shift"], d["z"]):
        return
    packed = pack_fused(rows, o, ndig, k_multiple)
    word = rows.dtype == np.int16
    cv = packed.shape[2] // ndig
    ncol = packed.shape[0] * cv * 16
    bias = aligned_zeros((ncol,), np.int32)
    digit_offsets = column_offsets(isa(), rows).reshape(ndig, o)  # digit j weighs 128^j
    bias[:o] = d["bias"] + (digit_offsets * (128 ** np.arange(ndig))[:, None]).sum(0)
    c16 = width(o)
    q, lh = float_params(d["mult"], d["shift"], d["z"], d["lo"], d["hi"], ncol)
    kp, dt = packed.shape[1] * 4, np.dtype(d["dtype"]).name
    g = group_size(isa(), int(np.abs(rows.astype(np.int64)).max(initial=0)), kp // 4) if (
        ndig == 1 and not word) else 1
    full = dt == "uint8" and full_range(d["lo"], d["hi"])
    d["fused"] = dict(packed=packed, bias=bias, c16=c16, q=q, lh=lh,
                      fn=fused_fn(kp, o, ndig, c16, dt, word=word, group=g, full=full),
                      fn_cols=fused_fn(kp, o, ndig, c16, dt, cols_outer=True, word=word,
                                       group=g, full=full))


def _out_hw(a: Act, kh: int, kw: int, node: Node) -> tuple[int, int]:
    sh, sw = node.attrs["stride"]
    t, b, l, r = node.attrs["pad"]
    return (a.h + t + b - kh) // sh + 1, (a.w + l + r - kw) // sw + 1


def _plan_add(node: Node, a1: Act, a2: Act, z1: np.ndarray, z2: np.ndarray, z_out: np.ndarray
              ) -> Callable[[Act, Act], Act]:
    ar = node.arrays
    lo, hi = _i64(ar["lo"]), _i64(ar["hi"])
    za, zb, ma, mb = _i64(z1), _i64(z2), _i64(ar["mult_a"]), _i64(ar["mult_b"])
    sh, zo = _i64(ar["shift"]), _i64(z_out)
    n, h, w, c = a1.n, a1.h, a1.w, a1.c
    dtype = out_dtype(lo, hi)
    c16 = width(c)
    sc = _Scratch()
    pmax = np.maximum(za, 255 - za) * np.abs(ma) + np.maximum(zb, 255 - zb) * np.abs(mb)
    if (a1.data.dtype == a2.data.dtype == dtype == np.uint8
            and a1.data.shape[1] == a2.data.shape[1] == c16
            and float_exact(pmax, np.ones_like(sh), sh, zo)):  # the TIR kernel
        zm = aligned_zeros((4, c16), np.int32)
        zm[0, :c], zm[1, :c], zm[2, :c], zm[3, :c] = za, zb, ma, mb
        q, lh = float_params(np.ones_like(sh), sh, zo, lo, hi, c16)
        fn = add_fn(c16, full_range(lo, hi))

        def run(x1: Act, x2: Act) -> Act:
            out = sc.act(n, h, w, c, np.uint8)
            fn(x1.data, x2.data, zm, q, lh, out.data)
            return out
    else:
        def run(x1: Act, x2: Act) -> Act:
            out = sc.act(n, h, w, c, dtype)
            nhwc.add(x1.data, za, x2.data, zb, ma, mb, sh, zo, lo, hi, x1.m, c, out.data)
            return out
    return run


def _plan_mul(node: Node, a1: Act, a2: Act, z1: np.ndarray, z2: np.ndarray, z_out: np.ndarray
              ) -> Callable[[Act, Act], Act]:
    ar = node.arrays
    lo, hi = _i64(ar["lo"]), _i64(ar["hi"])
    mult, shift, za, zb, zo = (_i64(ar["mult"]), _i64(ar["shift"]), _i64(z1), _i64(z2),
                               _i64(z_out))
    n, h, w, c = a1.n, a1.h, a1.w, a1.c
    dtype = out_dtype(lo, hi)
    c16 = width(c)
    sc = _Scratch()
    vmax = np.maximum(za, 255 - za) * np.maximum(zb, 255 - zb)
    if (a1.data.dtype == a2.data.dtype == dtype == np.uint8
            and a1.data.shape[1] == a2.data.shape[1] == c16
            and float_exact(vmax, mult, shift, zo)):
        zz = aligned_zeros((2, c16), np.int32)
        zz[0, :c], zz[1, :c] = za, zb
        q, lh = float_params(mult, shift, zo, lo, hi, c16)
        fn = mul_fn(h * w, c16)

        def run(x1: Act, x2: Act) -> Act:
            out = sc.act(n, h, w, c, np.uint8)
            fn(x1.data, x2.data, zz, q, lh, out.data, n)
            return out
    else:
        def run(x1: Act, x2: Act) -> Act:
            out = sc.act(n, h, w, c, dtype)
            nhwc.mul(x1.data, za, x2.data, zb, mult, shift, zo, lo, hi, n, h * w, c, out.data)
            return out
    return run


def _plan_gap(node: Node, a: Act, z_in: np.ndarray, z_out: np.ndarray) -> Runner:
    ar = node.arrays
    lo, hi = _i64(ar["lo"]), _i64(ar["hi"])
    mult, shift, zi, zo = _i64(ar["mult"]), _i64(ar["shift"]), _i64(z_in), _i64(z_out)
    n, c, p = a.n, a.c, a.h * a.w
    dtype = out_dtype(lo, hi)
    c16 = width(c)
    sc = _Scratch()
    if (a.data.dtype == dtype == np.uint8 and a.data.shape[1] == c16
            and float_exact(np.full(c, 255 * p), mult, shift, zo)):
        zpp = aligned_zeros((c16,), np.int32)
        zpp[:c] = zi * p
        q, lh = float_params(mult, shift, zo, lo, hi, c16)
        fn = gap_fn(p, c16)

        def run(x: Act) -> Act:
            out = sc.act(n, 1, 1, c, np.uint8)
            fn(x.data, zpp, q, lh, out.data, n)
            return out
    else:
        def run(x: Act) -> Act:
            out = sc.act(n, 1, 1, c, dtype)
            nhwc.gap(x.data, zi, mult, shift, zo, lo, hi, n, p, c, out.data)
            return out
    return run


def _plan_lut(node: Node, a: Act) -> Runner:
    table = np.ascontiguousarray(node.arrays["table"], dtype=np.int32)
    n, h, w, c = a.n, a.h, a.w, a.c
    dtype = out_dtype(table, table)
    sc = _Scratch()
    if a.data.dtype == np.uint8:
        tab = aligned_empty(table.shape, np.int32)
        tab[...] = table
        fn = lut_fn(c, a.data.shape[1], width(c), np.dtype(dtype).name)

        def run(x: Act) -> Act:
            out = sc.act(n, h, w, c, dtype)
            fn(x.data, tab, out.data, x.m)
            return out
    else:
        def run(x: Act) -> Act:
            out = sc.act(n, h, w, c, dtype)
            nhwc.lut(x.data, table, x.m, c, out.data)
            return out
    return run


class TvmCpuOps(Ops):
    name = "tvm"

    def __init__(self, graph: Graph):
        super().__init__(graph)
        self.choice = Chooser("tvm")
        self._params: dict[Node, dict] = {}  # per conv node: its prepared operands
        # per node, once planned: (input key, the chosen kernel bound to its constants)
        self._prepared: dict[Node, tuple[tuple, Callable]] = {}
        self._nchw: dict[Node, tuple] = {}  # per fallback conv: nchw.conv_arrays

    def _planned(self, node: Node, acts: tuple[Act, ...], plan: Callable[[], Callable]) -> Act:
        """Run the node's prepared kernel on these inputs; `plan()` prepares it (constants bound,
        kernel chosen) when the node has none yet for inputs of this shape."""
        key = tuple(_key(a) for a in acts)
        f = self._prepared.get(node)
        if f is None or f[0] != key:
            f = self._prepared[node] = (key, plan())
        return f[1](*acts)

    def _fastest(self, node: Node, a: Act, shape: tuple, runners: dict[str, Runner]) -> Runner:
        """The candidate that ran fastest on `a` (kernels/choice.py: timed once per input shape,
        remembered on disk). With kernels compiled ahead, candidates that would compile Numba code
        are not timed where a compiled one exists: a fresh worker is ready in seconds, not after
        seconds of Numba compilation per kernel."""
        if ahead_loaded():
            compiled_only = {k: r for k, r in runners.items() if k not in JIT_CANDIDATES}
            runners = compiled_only or runners
        self.choice.run_fastest(node, shape, {k: (lambda r=r: r(a)) for k, r in runners.items()})
        picked = self.choice.chosen(node, shape)
        if picked in runners:
            return runners[picked]
        # no decision recorded (run_fastest replaced, as the tests do): ask it on every run
        return lambda x: self.choice.run_fastest(
            node, shape, {k: (lambda r=r: r(x)) for k, r in runners.items()})

    def kernel_choice(self, node: Node) -> str:
        """The kernel this backend last ran for a conv node: for one-group convs the GEMM candidate
        that was fastest at plan time for that input shape ('fused', 'fused-cols', 'gemm',
        'rows'; see the module docstring); for depthwise convs 'depthwise' (bounds checked at the
        border), 'depthwise-padded' (on a padded copy) or 'depthwise-rows' (on widened input
        rows), also timed; 'numba' (NCHW fallback)."""
        if node.attrs["groups"] == 1:
            return self.choice.chosen(node) or "gemm"
        if _is_depthwise(node):
            return self.choice.chosen(node) or "depthwise"
        return "numba"

    def _gemm_params(self, node: Node, z_out: np.ndarray) -> dict:
        if node not in self._params:
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
                rows, d["ndig"] = digit_rows(wk, digit_limit(isa()), takes_words(isa()))
            pointwise = wk.shape[1] == w.shape[1]  # 1x1: K = C, the activation rows' width
            d["packed"] = pack_weights(rows, _nhwc.CPAD if pointwise else 4)
            d["kpad"], d["npad"] = d["packed"].shape[1] * 4, packed_columns(d["packed"])
            d["fn"] = gemm_fn(d["kpad"], d["npad"], word=rows.dtype == np.int16,
                              offsets=column_offsets(isa(), rows))
            d["dtype"] = out_dtype(d["lo"], d["hi"])
            if not d["ternary"]:
                _fused_params(d, rows, _nhwc.CPAD if pointwise else 4)
            self._params[node] = d
        return self._params[node]

    def _gemm_runners(self, node: Node, a: Act, z_in: np.ndarray, z_out: np.ndarray
                      ) -> dict[str, Runner]:
        """The candidate kernels of a one-group conv on inputs shaped like `a`, each a function
        of the input rows alone (everything else bound here, once)."""
        d = self._gemm_params(node, z_out)
        o, _, kh, kw = node.arrays["weight"].shape
        (sh, sw), pad = node.attrs["stride"], node.attrs["pad"]
        n, h, w, c = a.n, a.h, a.w, a.c
        ho, wo = _out_hw(a, kh, kw, node)
        m, kp, zi = n * ho * wo, d["kpad"], _i64(z_in)
        direct = kh == kw == 1 and (sh, sw) == (1, 1) and not any(pad) and a.data.shape[1] == kp

        if not direct and a.data.dtype == np.uint8:
            c16 = a.data.shape[1]
            i2c = im2col_fn(h, w, c, c16, kh, kw, sh, sw, pad[0], pad[2], ho, wo, kp)
            zp = aligned_zeros((c16,), np.uint8)
            zp[:c] = zi

        sc = _Scratch()

        def rows_of(x: Act) -> np.ndarray:
            if direct:
                return x.data  # the activation rows are the GEMM's A operand
            rows = sc.get("rows", (m + (-m % 4), kp), np.dtype(np.uint8))
            i2c(x.data, zp, rows, n)
            return rows

        def gemm(x: Act) -> Act:
            rows = rows_of(x)
            cm = sc.get("sums", (rows.shape[0], d["npad"]), np.dtype(np.int32))
            d["fn"](rows, d["packed"], cm)
            out = sc.act(n, ho, wo, o, d["dtype"])
            if d["ternary"]:
                nhwc.epilogue_ternary(cm, m, o, d["bias"], d["bias_n"], d["mult"], d["mult_n"],
                                      d["shift"], d["z"], d["lo"], d["hi"], out.data)
            else:
                nhwc.epilogue(cm, m, o, d["ndig"], d["bias"], d["mult"], d["shift"], d["z"],
                              d["lo"], d["hi"], out.data)
            return out

        if d["ternary"]:
            return {"gemm": gemm}

        def rowwise(x: Act) -> Act:
            if "wt" not in d:
                wk = np.asarray(node.arrays["weight"], np.int64).transpose(0, 2, 3, 1)
                wk = wk.reshape(o, -1)
                d["wt"] = np.ascontiguousarray(wk.T, dtype=np.int32)  # (K, O)
            out = sc.act(n, ho, wo, o, d["dtype"])
            nhwc.pointwise_rows(rows_of(x), m, d["wt"], d["bias"], d["mult"], d["shift"], d["z"],
                                d["lo"], d["hi"], out.data)
            return out

        runners = {"gemm": gemm, "rows": rowwise}
        if "fused" in d:
            f = d["fused"]
            fn, packed, bias, q, lh = f["fn"], f["packed"], f["bias"], f["q"], f["lh"]

            fn_cols = f["fn_cols"]

            def fused(x: Act) -> Act:
                out = sc.act(n, ho, wo, o, d["dtype"])
                fn(rows_of(x), packed, bias, q, lh, out.data)
                return out

            def fused_cols(x: Act) -> Act:
                out = sc.act(n, ho, wo, o, d["dtype"])
                fn_cols(rows_of(x), packed, bias, q, lh, out.data)
                return out
            runners["fused"] = fused
            if packed.shape[0] >= cpu_threads():  # a column block per task: enough to share out
                runners["fused-cols"] = fused_cols
        return runners

    def _gemm_conv(self, node: Node, a: Act, z_in: np.ndarray, z_out: np.ndarray) -> Runner:
        runners = self._gemm_runners(node, a, z_in, z_out)
        kh, kw = node.arrays["weight"].shape[2:]
        ho, wo = _out_hw(a, kh, kw, node)
        m = a.n * ho * wo
        return self._fastest(node, a, (m + (-m % 4), self._params[node]["kpad"]), runners)

    def _depthwise_params(self, node: Node, z_in: np.ndarray, z_out: np.ndarray) -> dict:
        if node not in self._params:
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
                c16 = width(c)
                kh, kw = wt.shape[:2]
                d["w16"] = aligned_zeros((kh, kw, c16), np.int32)
                d["w16"][:, :, :c] = wt
                d["b16"] = aligned_zeros((c16,), np.int32)
                d["b16"][:c] = bias
                d["q"], d["lh"] = float_params(mult, shift, z, lo, hi, c16)
                d["wz16"] = aligned_zeros((kh, kw, c16), np.int32)
                d["wz16"][:, :, :c] = d["wz"]
                d["zp"] = aligned_zeros((c16,), np.uint8)
                d["zp"][:c] = _i64(z_in)
                words = fits_int16(wt)  # the weights vpmaddwd takes: pairs, widened rows
                d["pairs"] = pairs_pay(isa()) and words
                d["full"] = full_range(lo, hi)
                d["wp16"] = pair_weights(wt if d["pairs"] else np.zeros_like(wt), c16)
                if words and rows_pay(isa()):  # the widened-rows kernel (depthwise.rows_fn)
                    d["wpr"], d["wl"] = row_weights(wt, c16)
            self._params[node] = d
        return self._params[node]

    def _depthwise(self, node: Node, a: Act, z_in: np.ndarray, z_out: np.ndarray) -> Runner:
        d = self._depthwise_params(node, z_in, z_out)
        kh, kw = d["wt"].shape[:2]
        n, h, w, c = a.n, a.h, a.w, a.c
        ho, wo = _out_hw(a, kh, kw, node)
        (sh, sw), pad = node.attrs["stride"], node.attrs["pad"]
        dtype = d["dtype"]
        sc = _Scratch()
        if "q" in d and a.data.dtype == np.uint8 and a.data.shape[1] % _nhwc.CPAD == 0:
            c16 = a.data.shape[1]
            pt, pb, pl, pr = pad
            hp, wp = h + pt + pb, w + pl + pr
            pairs = d["pairs"]
            dwf = depthwise_fn(h, w, kh, kw, sh, sw, pt, pl, ho, wo, c16, pairs, d["full"])
            padf = pad_fn(h, w, c16, pt, pb, pl, pr)
            dwp = padded_fn(hp, wp, kh, kw, sh, sw, c16, pairs, d["full"])
            w16, wz16, b16, q, lh, zp = d["w16"], d["wz16"], d["b16"], d["q"], d["lh"], d["zp"]
            wp16 = d["wp16"]

            def inline(x: Act) -> Act:
                out = sc.act(n, ho, wo, c, dtype)
                dwf(x.data, w16, wz16, wp16, b16, q, lh, out.data, n)
                return out

            def padded(x: Act) -> Act:
                out = sc.act(n, ho, wo, c, dtype)
                xp = sc.get("padded", (n, hp, wp, c16), np.dtype(np.uint8))
                padf(x.data, zp, xp)
                dwp(xp.reshape(-1, c16), w16, wz16, wp16, b16, q, lh, out.data, n)
                return out
            runners = {"depthwise": inline, "depthwise-padded": padded}
            if "wpr" in d:
                dwr = rows_fn(h, w, kh, kw, sh, sw, pt, pl, ho, wo, c16, d["full"])
                wpr, wl = d["wpr"], d["wl"]

                def rows(x: Act) -> Act:
                    out = sc.act(n, ho, wo, c, dtype)
                    dwr(x.data, wpr, wl, zp, b16, q, lh, out.data, n)
                    return out
                runners["depthwise-rows"] = rows
            return self._fastest(node, a, a.data.shape, runners)
        wt, wz, bias, mult, shift = d["wt"], d["wz"], d["bias"], d["mult"], d["shift"]
        z, lo, hi = d["z"], d["lo"], d["hi"]

        def run(x: Act) -> Act:
            out = sc.act(n, ho, wo, c, dtype)
            nhwc.depthwise(x.data, n, h, w, c, wt, wz, sh, sw, pad[0], pad[2], ho, wo, bias,
                           mult, shift, z, lo, hi, out.data)
            return out
        return run

    def _fallback_conv(self, node: Node, z_in: np.ndarray, z_out: np.ndarray) -> Runner:
        """The NCHW Numba conv of kernels/nchw.py (grouped convs, int32 inputs, ternary
        depthwise), converted on the way."""
        dtype = out_dtype(_i64(node.arrays["lo"]), _i64(node.arrays["hi"]))
        if node not in self._nchw:
            self._nchw[node] = nchw.conv_arrays(node, z_out)
        arrays = self._nchw[node]
        return lambda x: from_nchw(_nchw_serial.conv(node, to_nchw(x), z_in, z_out, arrays),
                                   dtype)

    def conv(self, node: Node, x, z_in: np.ndarray, z_out: np.ndarray) -> Act:
        a = _act(x)

        def plan() -> Runner:
            if node.attrs["groups"] == 1 and a.data.dtype == np.uint8:  # every GEMM candidate
                return self._gemm_conv(node, a, z_in, z_out)
            if _is_depthwise(node):
                return self._depthwise(node, a, z_in, z_out)
            return self._fallback_conv(node, z_in, z_out)
        return self._planned(node, (a,), plan)

    def add(self, node: Node, x1, z1: np.ndarray, x2, z2: np.ndarray, z_out: np.ndarray) -> Act:
        a1, a2 = _act(x1), _act(x2)
        return self._planned(node, (a1, a2), lambda: _plan_add(node, a1, a2, z1, z2, z_out))

    def mul(self, node: Node, x1, z1: np.ndarray, x2, z2: np.ndarray, z_out: np.ndarray) -> Act:
        a1, a2 = _act(x1), _act(x2)
        return self._planned(node, (a1, a2), lambda: _plan_mul(node, a1, a2, z1, z2, z_out))

    def gap(self, node: Node, x, z_in: np.ndarray, z_out: np.ndarray) -> Act:
        a = _act(x)
        return self._planned(node, (a,), lambda: _plan_gap(node, a, z_in, z_out))

    def lut(self, node: Node, x) -> Act:
        a = _act(x)
        return self._planned(node, (a,), lambda: _plan_lut(node, a))

    def maxpool(self, node: Node, x) -> Act:
        a = _act(x)
        return from_nchw(reference.maxpool(node, to_nchw(a).astype(np.int64)), a.data.dtype)

    def avgpool(self, node: Node, x, z_in: np.ndarray, z_out: np.ndarray) -> Act:
        a = _act(x)
        y = reference.avgpool(node, to_nchw(a).astype(np.int64), z_in, z_out)
        return from_nchw(y, out_dtype(_i64(node.arrays["lo"]), _i64(node.arrays["hi"])))

    def from_images(self, images: np.ndarray) -> Act:
        """uint8 N x H x W x C images (already the input codes) -> the input's rows,
        C wide (one contiguous copy: the first layer is an im2col conv, which reads any width)."""
        n, h, w, c = images.shape
        m = n * h * w
        a = Act(aligned_empty((m + (-m % 4), c), np.uint8), n, h, w, c)
        a.data[:m] = images.reshape(m, c)
        return a

    def to_host(self, x) -> np.ndarray:
        """A copy (never a view of a buffer the next run reuses)."""
        return np.array(to_nchw(x) if isinstance(x, Act) else x, copy=True)
