"""Latency harness: every available aq backend on a .aqz, and the baselines of the same float
model measured in the same run (PyTorch fp32 eager, ONNX Runtime fp32, ONNX Runtime int8 static
QDQ per-channel calibrated on the same calibration images). Medians, p90, images/s, ratios."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..format import read_aqz
from ..runtime import Session, available_backends


@dataclass
class Timing:
    name: str
    batch: int
    median_ms: float
    p90_ms: float
    images_per_s: float
    setup_s: float
    file_bytes: int | None = None
    backend: str | None = None  # our backend's name; None for a baseline


def time_fn(fn: Callable[[], object], runs: int, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ts)), float(np.percentile(ts, 90))


def _timing(name, batch, fn, runs, setup_s, size=None, backend=None) -> Timing:
    med, p90 = time_fn(fn, runs)
    return Timing(name, batch, med, p90, batch * 1e3 / med, setup_s, size, backend)


def machine() -> str:
    """The CPU with the features the kernels choose by, cores, Python, and a GPU if one ran."""
    from .machine import describe
    desc = describe()
    gpu = _gpu_name()
    return f"{desc}; GPU: {gpu}" if gpu else desc


def _gpu_name() -> str | None:
    import sys
    if "torch" not in sys.modules:  # only where a GPU backend or baseline loaded torch
        return None
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def bench(model: str | Path, batches=(1, 8), runs: int = 30, baselines: bool = True,
          backends: list[str] | None = None, images: np.ndarray | None = None) -> list[Timing]:
    """Timings of every available backend (or `backends`) on `model`, and the baselines (a
    kernels file loaded before, runtime.backends.use_kernels, is what tvm runs)."""
    graph = read_aqz(model)
    h, w = graph.meta["input"]["shape"][:2]
    c = graph.meta["input"]["shape"][2]
    rng = np.random.default_rng(0)
    if images is None:
        images = rng.integers(0, 256, size=(max(batches), h, w, c), dtype=np.uint8)
    out = []
    for name in backends or available_backends():
        t = time.perf_counter()
        s = Session(graph, name)
        s.run(images[:1])
        setup = time.perf_counter() - t
        for b in batches:
            x = images[:b]
            out.append(_timing(f"aq {name}", b, lambda: s.run(x), runs, setup,
                               Path(model).stat().st_size, backend=name))
    if baselines:
        out += baseline_timings(graph, images, batches, runs)
    return out


def baseline_timings(graph, images, batches, runs) -> list[Timing]:
    """PyTorch fp32 eager and ONNX Runtime fp32/int8 of the built-in float model; int8 both
    as its default model ("ORT int8 QDQ", int8 weights) and its reduce_range one ("ORT int8 QDQ
    rr", 7-bit weights: what ONNX Runtime advises where the CPU lacks VNNI)."""
    import onnxruntime as ort
    import torch

    from ..export.float_exec import normalize_input
    from ..models.registry import build_float_graph
    from .ort_baseline import ort_int8

    name = graph.meta.get("model")
    size = graph.meta["input"]["shape"][0]
    fg = build_float_graph(name, size if name != "digits-cnn" else None)
    module = _module(name)
    torch.set_num_threads(os.cpu_count() or 1)
    from ..export.sources import calibration_images
    calib = calibration_images(fg, None)[::4]
    tmp = tempfile.mkdtemp(prefix="aq-bench-")
    t = time.perf_counter()
    fp32, int8 = ort_int8(module, fg, calib, tmp)
    setup = time.perf_counter() - t
    t = time.perf_counter()
    _, int8_rr = ort_int8(module, fg, calib, tmp, "reduce_range", fp32)
    setup_rr = time.perf_counter() - t
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = os.cpu_count() or 1
    sess = {p: ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"])
            for p in (fp32, int8, int8_rr)}
    cuda = None
    if torch.cuda.is_available():
        import copy
        cuda = copy.deepcopy(module).cuda().eval()
    out = []
    for b in batches:
        xf = normalize_input(images[:b], fg)
        xn = xf.numpy()
        with torch.no_grad():
            out.append(_timing("PyTorch fp32", b, lambda: module(xf), runs, 0.0))
            if cuda is not None:  # input copied in, logits copied out, as the aq GPU backends
                out.append(_timing("PyTorch fp32 GPU", b,
                                   lambda: cuda(xf.to("cuda")).cpu(), runs, 0.0))
        out.append(_timing("ORT fp32", b, lambda: sess[fp32].run(None, {"x": xn}), runs, setup,
                           Path(fp32).stat().st_size))
        out.append(_timing("ORT int8 QDQ", b, lambda: sess[int8].run(None, {"x": xn}), runs, setup,
                           Path(int8).stat().st_size))
        out.append(_timing("ORT int8 QDQ rr", b, lambda: sess[int8_rr].run(None, {"x": xn}), runs,
                           setup_rr, Path(int8_rr).stat().st_size))
    return out


def _module(name: str):
    if name == "efficientnet-lite0":
        from ..models.efficientnet import load_lite0
        return load_lite0()
    if name == "efficientnet-b0":
        from ..models.efficientnet import make_b0
        return make_b0()
    from ..models.digits import train_digits_cnn
    return train_digits_cnn()


_START = """
import sys, time
t0 = time.perf_counter()
import numpy as np
from aq_runtime.runtime import Session
t1 = time.perf_counter()
s = Session(sys.argv[1], sys.argv[2], kernels=sys.argv[3] or None)
s.run(np.zeros((1, *s.input_shape), np.uint8))
t2 = time.perf_counter()
print(f"{t2 - t1:.4f} {t2 - t0:.4f}")
"""


def start_time(model: str | Path, backend: str, kernels: str | Path | None = None,
               cold: bool = False, python: str | None = None) -> tuple[float, float]:
    """A new process's start: seconds from the Session call to the end of its first run, and
    from the interpreter's first statement (NaN if it failed). `cold`: with empty caches
    (compiled kernels, kernel choices, Numba's), as a fresh worker; else with the caches this
    process wrote (warm). `python`: another interpreter (another install) to start."""
    import subprocess
    import sys
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="aq-cold-") as tmp:
        if cold:
            env.update(AQ_CACHE_DIR=os.path.join(tmp, "aq"), NUMBA_CACHE_DIR=os.path.join(tmp, "nb"))
        r = subprocess.run([python or sys.executable, "-c", _START, str(model), backend,
                            str(kernels or "")], capture_output=True, text=True, timeout=900,
                           env=env, cwd=tmp)
    if r.returncode != 0:
        return float("nan"), float("nan")
    ready, total = map(float, r.stdout.split()[-2:])
    return ready, total


def warm_start(model: str | Path, backend: str, kernels: str | Path | None = None
               ) -> tuple[float, float]:
    """A second process (compile caches already written by this one): start_time, warm."""
    return start_time(model, backend, kernels)


def format_warm(warm: dict[str, tuple[float, float]]) -> str:
    return "warm start (a new process; compile caches warm): " + "; ".join(
        f"{k} ready in {v[0]:.2f} s ({v[1]:.2f} s with imports)" for k, v in warm.items())


def format_timings(rows: list[Timing]) -> str:
    base = {name: {r.batch: r.median_ms for r in rows if r.name == name}
            for name in ("ORT int8 QDQ", "ORT int8 QDQ rr", "PyTorch fp32")}

    def ratio(r: Timing, name: str) -> str:
        return f"{r.median_ms / base[name][r.batch]:.2f}x" if r.batch in base[name] else ""

    lines = [f"machine: {machine()}", "",
             f"{'runtime':16} {'batch':>5} {'median ms':>10} {'p90 ms':>9} {'img/s':>9} "
             f"{'vs ORT int8':>11} {'(rr)':>6} {'vs PyTorch':>10} {'setup s':>8} "
             f"{'file bytes':>11}"]
    for r in sorted(rows, key=lambda r: (r.batch, r.median_ms)):
        lines.append(f"{r.name:16} {r.batch:>5} {r.median_ms:>10.2f} {r.p90_ms:>9.2f} "
                     f"{r.images_per_s:>9.1f} {ratio(r, 'ORT int8 QDQ'):>11} "
                     f"{ratio(r, 'ORT int8 QDQ rr'):>6} {ratio(r, 'PyTorch fp32'):>10} "
                     f"{r.setup_s:>8.2f} {r.file_bytes if r.file_bytes else '':>11}")
    lines.append("\nratios are median latency / baseline median latency (lower is faster); (rr): "
                 "against ONNX Runtime's reduce_range int8 model (ORT int8 QDQ rr, 7-bit weights, "
                 "its advice for CPUs without VNNI); setup = load + plan + first run (JIT compile "
                 "or cache load)")
    return "\n".join(lines)


def as_json(rows: list[Timing], warm: dict[str, tuple[float, float]] | None = None) -> dict:
    return {"machine": machine(), "rows": [asdict(r) for r in rows],
            "warm_start_s": {k: {"ready": v[0], "with_imports": v[1]}
                             for k, v in (warm or {}).items()}}
