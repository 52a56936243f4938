"""The CUDA backends on a real GPU, run by hand (CI has no GPU; there, tests/test_numba_cuda.py
runs the simulator and tests/test_tvm_cuda.py the same loops on the CPU).

  python benchmarks/gpu_check.py prepare DIR   # any machine with apache-tvm (no GPU needed):
      exports the check models and their images to DIR, compiles their tvm-cuda modules into
      DIR/cache (a GPU machine then needs only TVM's runtime libraries and nvcc)
  AQ_CACHE_DIR=DIR/cache python benchmarks/gpu_check.py run DIR OUT   # on the GPU machine:
      every CUDA backend == reference (int32 logits) on every model, then aq-bench on
      EfficientNet-Lite0 (--bits auto) at batch 1/8/32 with PyTorch fp32 on the GPU and the CPU
      and ONNX Runtime fp32/int8 on the CPU, measured in the same run; writes
      OUT/gpu_exactness.txt, OUT/gpu_bench_lite0.{txt,json}.
      (Where numba-cuda 0.30.4 meets numpy >= 2.5, put tools/gpu_site first on PYTHONPATH:
      its sitecustomize.py restores the removed np.row_stack alias that numba-cuda needs.)

Models: digits CNN, EfficientNet-B0 at 96 px (SE, swish tables), Lite0 at 96 px with random
mixed bits incl. 1-, 2- and 16-bit channels and two ternary layers, a graph with grouped /
strided / asymmetrically padded convs + ternary + pools, 20 random small graphs (seeds 0-19
of `aq_runtime.bench.graphs.random_graph`), and Lite0 --bits auto at 224 on
held-out photo crops."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

BACKENDS = ("numba-cuda", "tvm-cuda")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]


def _models() -> dict:
    """name -> (graph, uint8 images)."""
    from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.export.sources import calibration_images
    from aq_runtime.models.digits import digits_data
    from aq_runtime.models.registry import build_float_graph
    out = {}
    fg = build_float_graph("digits-cnn")
    out["digits"] = (export_graph(fg, digits_data()[0][:256],
                                  ExportOptions(bits=8, progress=False)),
                     digits_data()[2][:64])
    cal96 = crops_of(CALIBRATION_PHOTOS[:2], 96)[0][::4]
    held96 = crops_of(HELDOUT_PHOTOS[:2], 96)[0][:6]
    out["b0-96"] = (export_graph(build_float_graph("efficientnet-b0", 96), cal96, 6,
                                 progress=False), held96)
    from aq_runtime.bench.graphs import lite0_mixed_graph, random_graph, small_ternary_graph
    out["lite0-96-mixed-1-2-16-bit-ternary"] = (lite0_mixed_graph(cal96), held96)
    out["small-ternary-pools"] = small_ternary_graph()
    for i in range(20):
        out[f"random-{i:02d}"] = random_graph(i)
    fg = build_float_graph("efficientnet-lite0", 224)
    out["lite0-224-auto"] = (export_graph(fg, calibration_images(fg, None), "auto",
                                          progress=False),
                             crops_of(HELDOUT_PHOTOS, 224)[0][::7][:16])
    return out


def prepare(folder: Path) -> None:
    os.environ["AQ_CACHE_DIR"] = str(folder / "cache")
    from aq_runtime.format import write_aqz
    from aq_runtime.kernels.tvm_cuda.build import prebuild
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, (g, x) in _models().items():
        write_aqz(g, folder / f"{name}.aqz")
        np.save(folder / f"{name}.npy", np.ascontiguousarray(x, np.uint8))
        t = time.perf_counter()
        prebuild(g, ("sm_90",))  # H100 / H200 cubins: the run then needs no nvcc
        names.append(name)
        print(f"{name}: {len(g.nodes)} nodes, {x.shape[0]} images, tvm-cuda module "
              f"{time.perf_counter() - t:.1f} s")
    (folder / "models.json").write_text(json.dumps(names))


def run(folder: Path, out: Path) -> None:
    import torch

    from aq_runtime.bench import latency
    from aq_runtime.runtime import Session
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [f"GPU: {gpu}; torch {torch.__version__}", "",
             f"{'model':36} {'images':>6} {'backend':>11} {'== reference':>13} {'setup s':>8}"]
    ok = True
    for name in json.loads((folder / "models.json").read_text()):
        path = folder / f"{name}.aqz"
        x = np.load(folder / f"{name}.npy", allow_pickle=False)
        want = Session(path, "reference").run(x)
        for b in BACKENDS:
            t = time.perf_counter()
            try:
                s = Session(path, b)
                got = s.run(x)
                eq = got.dtype == np.int32 and np.array_equal(got, want)
                res = "yes" if eq else f"NO ({int((got != want).sum())} differ)"
            except Exception as e:  # report, keep checking the rest
                eq, res = False, f"ERROR {type(e).__name__}: {str(e).splitlines()[0][:80]}"
            ok &= eq
            lines.append(f"{name:36} {x.shape[0]:>6} {b:>11} {res:>13} "
                         f"{time.perf_counter() - t:>8.2f}")
            print(lines[-1], flush=True)
    lines.append("")
    lines.append("all equal" if ok else "SOME DIFFER")
    (out / "gpu_exactness.txt").write_text("\n".join(lines) + "\n")
    model = folder / "lite0-224-auto.aqz"
    rows = latency.bench(model, [1, 8, 32], 100, True, list(BACKENDS))
    warm = {b: latency.warm_start(model, b) for b in BACKENDS}
    text = latency.format_timings(rows) + "\n" + latency.format_warm(warm) + "\n"
    print(text)
    (out / "gpu_bench_lite0.txt").write_text(text)
    (out / "gpu_bench_lite0.json").write_text(json.dumps(latency.as_json(rows, warm), indent=1))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "prepare":
        prepare(Path(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "run":
        run(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
