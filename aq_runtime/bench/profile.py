"""Per-layer profile of one backend: the time of every node (median over runs), its MACs and
achieved GOPS (2 ops per MAC), grouped by kind (pointwise / depthwise / other conv / add / ...),
next to a measured int8 GEMM peak of this machine (the tvm microkernel where available,
the numba pointwise kernel otherwise)."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..ir.graph import Graph, Node
from ..runtime import Session

OPS = ("conv", "add", "mul", "gap", "lut", "maxpool", "avgpool")


@dataclass
class LayerTime:
    name: str
    kind: str
    macs: int
    ms: float
    kernel: str = ""

    @property
    def gops(self) -> float:
        return 2 * self.macs / (self.ms * 1e6) if self.ms > 0 else 0.0


def node_kind(n: Node) -> str:
    if n.op != "conv":
        return n.op
    o, cg, kh, kw = n.arrays["weight"].shape
    if kh == kw == 1 and n.attrs["groups"] == 1:
        return "pointwise"
    if cg == 1 and n.attrs["groups"] > 1:
        return "depthwise"
    return "conv"


def node_macs(g: Graph, n: Node) -> int:
    if n.op != "conv":
        return 0
    _, h, w = g.tensors[n.output].shape
    return int(np.prod(n.arrays["weight"].shape)) * h * w


def profile(model, backend: str, batch: int = 1, runs: int = 10) -> list[LayerTime]:
    s = Session(model, backend)
    g = s.graph
    x = np.random.default_rng(0).integers(0, 256, (batch, *s.input_shape), dtype=np.uint8)
    s.run(x)
    times: dict[str, list[float]] = defaultdict(list)
    ops = s.ops

    class Timed:
        def __getattr__(self, name):
            f = getattr(ops, name)
            if name not in OPS:  # to_host, from_images: not ops
                return f

            def g_(node, *a):
                t = time.perf_counter()
                r = f(node, *a)
                times[node.name].append(time.perf_counter() - t)
                return r
            return g_

    s.ops = Timed()
    for _ in range(runs):
        s.run(x)
    return [LayerTime(n.name, node_kind(n), node_macs(g, n) * batch,
                      1e3 * float(np.median(times[n.name])),
                      ops.kernel_choice(n) if n.op == "conv" else backend) for n in g.nodes]


def gemm_peak_gops() -> tuple[str, float]:
    """(what was measured, GOPS): u8 x s8 GEMM 1024^3 on the tvm microkernel, else the numba
    pointwise kernel on 1024 x 1024 x 1024."""
    rng = np.random.default_rng(0)
    m = k = n = 1024
    try:
        from ..runtime.backends import unavailable
        if unavailable("tvm"):
            raise ImportError
        from ..kernels.tvm.buffers import aligned_zeros
        from ..kernels.tvm.dot import digit_limit
        from ..kernels.tvm.gemm import gemm_fn, pack_weights
        from ..kernels.tvm.target import isa
        a = aligned_zeros((m, k), np.uint8)
        a[...] = rng.integers(0, 256, (m, k))
        lim = digit_limit(isa())  # one digit per weight: the instruction's own peak
        b = pack_weights(rng.integers(-lim, lim + 1, (n, k)))
        c = aligned_zeros((m, n), np.int32)
        fn = gemm_fn(k, n)
        what = f"tvm {isa()} GEMM 1024^3"

        def run():
            fn(a, b, c)
    except ImportError:
        from ..kernels.nchw import pointwise
        x = rng.integers(0, 256, (1, k, m)).astype(np.int32)
        w = rng.integers(-127, 128, (n, k)).astype(np.int32)
        one = np.ones(n, np.int64)
        out = np.empty((1, n, m), np.int32)
        what = "numba pointwise GEMM 1024^3"

        def run():
            pointwise(x, w, 0 * one, one, 16 * one, 0 * one, 0 * one, 255 * one, out)
    run()
    ts = []
    for _ in range(10):
        t = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t)
    return what, 2 * m * k * n / float(np.median(ts)) / 1e9


def format_profile(rows: list[LayerTime], backend: str, peak: tuple[str, float],
                   top: int = 15) -> str:
    total = sum(r.ms for r in rows)
    lines = [f"per-layer profile, backend {backend}: {total:.2f} ms in {len(rows)} nodes; "
             f"int8 GEMM peak of this machine: {peak[1]:.0f} GOPS ({peak[0]})", "",
             f"{'kind':10} {'nodes':>5} {'ms':>8} {'share':>6} {'GMACs':>7} {'GOPS':>7} "
             f"{'of peak':>7}"]
    by: dict[str, list[LayerTime]] = defaultdict(list)
    for r in rows:
        by[r.kind].append(r)
    for kind, rs in sorted(by.items(), key=lambda kv: -sum(r.ms for r in kv[1])):
        ms = sum(r.ms for r in rs)
        macs = sum(r.macs for r in rs)
        gops = 2 * macs / (ms * 1e6) if ms and macs else 0.0
        lines.append(f"{kind:10} {len(rs):>5} {ms:>8.2f} {100 * ms / total:>5.1f}% "
                     f"{macs / 1e9:>7.3f} {gops:>7.1f} "
                     f"{(100 * gops / peak[1]) if gops else 0:>6.1f}%")
    lines += ["", f"slowest {top} nodes:",
              f"{'node':34} {'kind':10} {'kernel':8} {'ms':>7} {'GOPS':>7}"]
    for r in sorted(rows, key=lambda r: -r.ms)[:top]:
        lines.append(f"{r.name:34} {r.kind:10} {r.kernel:8} {r.ms:>7.3f} {r.gops:>7.1f}")
    kernels: dict[str, int] = defaultdict(int)
    for r in rows:
        if r.kind in ("pointwise", "depthwise", "conv") and r.kernel != backend:
            kernels[r.kernel] += 1
    if kernels:
        lines.append("conv kernels: " + ", ".join(f"{k} {v}" for k, v in sorted(kernels.items()))
                     + " (per layer the fastest exact candidate, timed at plan time)")
    return "\n".join(lines)
