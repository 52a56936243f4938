"""The tvm kernels on every x86 instruction set this CPU runs (AVX-512 VNNI, AVX-VNNI, AVX2;
`AQ_TVM_ISA`, one process each), on the demo's `--bits auto` Lite0 and the same export with
`--target avx2` (no 8-bit weight codes), batch 1 and 8; PyTorch fp32 and ONNX Runtime fp32 /
int8 of the same float model measured in the same run. On an AVX-512 CPU the avx2 rows are the
AVX2 kernels run there, not an AVX2-only CPU's timings; beside them, ONNX Runtime int8's own
kernels for each instruction set on the same cores (its default and its reduce_range model;
tools/ort_isa.py: a copy of onnxruntime whose MLAS dispatch skips the sets above it; for
AVX2 bit-exact with valgrind's AVX2-only emulation): AVX2 code against AVX2 code, AVX-VNNI
against AVX-VNNI. The table also shows each row against a user's AVX2-only Zen 3 run (ONNX Runtime
int8 there at 0.33x PyTorch fp32 eager's batch-1 latency, 0.37x at batch 8), an estimate with
PyTorch fp32 as the yardstick between the two CPUs: PyTorch here restricted to its AVX2 code
paths (oneDNN, ATen and MKL each have a switch), as it ran on the Zen 3.
Writes results/tvm_isas_lite0.txt (and .json). About 4 minutes on 2 cores.

    python benchmarks/tvm_isas_lite0.py [--keep runs/tvm_isas] [--rounds 3] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from aq_runtime.bench.machine import describe
from aq_runtime.bench.ort_baseline import int8_file, ort_int8
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, crops_of
from aq_runtime.export.pipeline import export_to_file
from aq_runtime.export.options import ExportOptions
from aq_runtime.export.sources import calibration_images
from aq_runtime.kernels.tvm.target import supported_isas
from aq_runtime.models.efficientnet import lite0_float_graph, load_lite0

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from ort_isa import make as ort_isa_package  # noqa: E402  (tools/ort_isa.py)

MODELS = (("auto", "lite0_auto.aqz", {}),
          ("auto --target avx2", "lite0_auto_avx2.aqz", {"target": "avx2"}))
BATCHES = (1, 8)
ZEN3_ORT_INT8 = {1: 0.33, 8: 0.37}  # x PyTorch fp32, from a user's AVX2-only Zen 3 run
# PyTorch fp32 on its AVX2 code paths: the yardstick against the Zen 3 run
PYTORCH_AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
CHILD = """
import json, sys
from aq_runtime.bench.latency import bench
from aq_runtime.kernels.tvm.target import isa
rows = bench(sys.argv[1], batches=(1, 8), runs=int(sys.argv[2]), baselines=False,
             backends=["tvm"])
print(json.dumps({"isa": isa(), "ms": {r.batch: r.median_ms for r in rows}}))
"""
BASELINES = """
import json, sys
import numpy as np
from aq_runtime.bench.latency import baseline_timings
from aq_runtime.format import read_aqz
g = read_aqz(sys.argv[1])
h, w, c = g.meta["input"]["shape"]
x = np.random.default_rng(0).integers(0, 256, (8, h, w, c), dtype=np.uint8)
rows = baseline_timings(g, x, (1, 8), int(sys.argv[2]))
print(json.dumps([[r.name, r.batch, r.median_ms] for r in rows]))
"""
PYTORCH_BASELINE = """
import json, os, sys
import numpy as np
import torch
from aq_runtime.bench.latency import time_fn
from aq_runtime.export.float_exec import normalize_input
from aq_runtime.format import read_aqz
from aq_runtime.models.efficientnet import lite0_float_graph, load_lite0

assert torch.backends.cpu.get_cpu_capability() == os.environ["ATEN_CPU_CAPABILITY"].upper()
torch.set_num_threads(os.cpu_count() or 1)
h, w, c = read_aqz(sys.argv[1]).meta["input"]["shape"]
fg, m = lite0_float_graph(), load_lite0().eval()
x = np.random.default_rng(0).integers(0, 256, (8, h, w, c), dtype=np.uint8)
out = []
for b in (1, 8):
    xf = normalize_input(x[:b], fg)
    with torch.no_grad():
        out.append(["PyTorch fp32", b, time_fn(lambda: m(xf), int(sys.argv[2]))[0]])
print(json.dumps(out))
"""
# ONNX Runtime int8's kernels for one instruction set (the installed package for this CPU's
# best, else ort_isa's copy on PYTHONPATH), its default and reduce_range QDQ models (argv[1]:
# the folder holding them, made by the installed package in main); rows "ORT int8[ rr] <isa>"
ORT_ISA_CHILD = """
import json, os, sys
from pathlib import Path
import numpy as np
import onnxruntime as ort
from aq_runtime.bench.latency import time_fn
from aq_runtime.export.float_exec import normalize_input
from aq_runtime.models.efficientnet import lite0_float_graph
mark = Path(ort.__file__).parent / ".isa"
assert (mark.read_text().strip() if mark.is_file() else None) == (os.environ.get("ORT_ISA")
                                                                  or None), ort.__file__
fg = lite0_float_graph()
c, h, w = fg.input_shape
x = np.random.default_rng(0).integers(0, 256, (8, h, w, c), dtype=np.uint8)
o = ort.SessionOptions()
o.log_severity_level = 3
o.intra_op_num_threads = os.cpu_count() or 1
out = []
for name, file in (("ORT int8", %r), ("ORT int8 rr", %r)):
    s = ort.InferenceSession(str(Path(sys.argv[1]) / file), o, providers=["CPUExecutionProvider"])
    for b in (1, 8):
        xn = normalize_input(x[:b], fg).numpy()
        out.append([name, b, time_fn(lambda: s.run(None, {"x": xn}), int(sys.argv[2]))[0]])
print(json.dumps(out))
""" % (int8_file("s8"), int8_file("reduce_range"))


def child(code: str, path: Path, runs: int, isa: str | None = None, env: dict | None = None):
    """The JSON that `code` prints, run in a new process (the tvm instruction set is fixed per
    process; the baselines' thread pools do not meet TVM's), with `env` added."""
    env = dict(os.environ, **({"AQ_TVM_ISA": isa} if isa else {}), **(env or {}))
    r = subprocess.run([sys.executable, "-c", code, str(path), str(runs)], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def tvm_times(path: Path, isa: str, runs: int) -> dict[int, float]:
    out = child(CHILD, path, runs, isa)
    assert out["isa"] == isa
    return {int(b): ms for b, ms in out["ms"].items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", default="runs/tvm_isas", help="where the two exports are kept")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    t0 = time.time()
    keep = Path(args.keep)
    keep.mkdir(parents=True, exist_ok=True)
    fg = lite0_float_graph()
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    paths = {}
    for name, file, opts in MODELS:
        paths[name] = keep / file
        if not paths[name].is_file():
            export_to_file(fg, xc, paths[name], ExportOptions(bits="auto", progress=False, **opts))
    ort_dir = keep / "ort"  # ONNX Runtime's int8 models, as baseline_timings makes them
    for config in ("s8", "reduce_range"):
        if not (ort_dir / int8_file(config)).is_file():
            ort_dir.mkdir(exist_ok=True)
            ort_int8(load_lite0(), fg, calibration_images(fg, None)[::4], str(ort_dir), config)
    isas = supported_isas()
    ort_env = {isa: {"ORT_ISA": "", "PYTHONPATH": os.environ.get("PYTHONPATH", "")} if i == 0
               else {"ORT_ISA": isa, "PYTHONPATH": os.pathsep.join(
                   [str(ort_isa_package(keep / f"ort_{isa}", isa)),
                    os.environ.get("PYTHONPATH", "")])}
               for i, isa in enumerate(isas)}  # the installed package for the best one
    times: dict[tuple[str, str], list[dict[int, float]]] = {}
    bases: dict[tuple[str, int], list[float]] = {}
    for _ in tqdm(range(args.rounds), desc="rounds"):  # interleaved: this VM is noisy
        for name in paths:
            for isa in isas:
                times.setdefault((name, isa), []).append(tvm_times(paths[name], isa, args.runs))
        for bn, b, ms in child(BASELINES, paths["auto"], args.runs):
            bases.setdefault((bn, b), []).append(ms)
        for bn, b, ms in child(PYTORCH_BASELINE, paths["auto"], args.runs, env=PYTORCH_AVX2):
            bases.setdefault((bn + " (AVX2)", b), []).append(ms)
        for isa in isas:
            for bn, b, ms in child(ORT_ISA_CHILD, ort_dir, args.runs, env=ort_env[isa]):
                bases.setdefault((f"{bn} {isa}", b), []).append(ms)
    base = {k: min(v) for k, v in bases.items()}
    lines = [f"machine: {describe()}",
             f"median ms over {args.runs} runs, per round ({args.rounds} rounds; each round "
             "runs every row and the baselines, one process each)", "",
             f"{'model':20s} {'isa':12s} {'batch':>5s} {'median ms (rounds)':>22s} "
             f"{'vs ORT int8':>11s} {'same isa (rr)':>15s} {'vs PyTorch':>10s} "
             f"{'vs Zen3 ORT (est.)':>18s}"]
    for b in BATCHES:
        for name in paths:
            for isa in isas:
                ms = [r[b] for r in times[(name, isa)]]
                best = min(ms)
                pt = base[("PyTorch fp32", b)]
                pt2 = base[("PyTorch fp32 (AVX2)", b)]
                same = (f"{best / base[(f'ORT int8 {isa}', b)]:.2f}x "
                        f"({best / base[(f'ORT int8 rr {isa}', b)]:.2f}x)")
                lines.append(f"{name:20s} {isa:12s} {b:5d} "
                             f"{' / '.join(f'{m:.2f}' for m in ms):>22s} "
                             f"{best / base[('ORT int8 QDQ', b)]:10.2f}x {same:>15s} "
                             f"{best / pt:9.2f}x {best / (ZEN3_ORT_INT8[b] * pt2):17.2f}x")
        for bn in ("ORT int8 QDQ", *(f"ORT int8{rr} {isa}" for isa in isas for rr in ("", " rr")),
                   "ORT fp32", "PyTorch fp32", "PyTorch fp32 (AVX2)"):
            lines.append(f"{bn:33s} {b:5d} "
                         f"{' / '.join(f'{m:.2f}' for m in bases[(bn, b)]):>22s}")
    lines += ["", "ratios use each row's and each baseline's fastest round; vs ORT int8: "
              "against ONNX Runtime's default int8 model (ORT int8 QDQ, its kernels",
              "for this CPU); same isa (rr): against its default (reduce_range) model run by its "
              "kernels for the row's instruction set (ORT int8[ rr] <isa>:",
              "tools/ort_isa.py's copy of onnxruntime whose MLAS dispatch skips the sets "
              "above it; for avx2 == valgrind's AVX2-only emulation, tools/avx2_emulated.py);",
              "vs Zen3 ORT (est.): the row against "
              f"{ZEN3_ORT_INT8[1]}x / {ZEN3_ORT_INT8[8]}x this run's PyTorch fp32 on its AVX2 "
              "paths (batch 1 / 8;",
              "PyTorch fp32 (AVX2): " + " ".join(f"{k}={v}" for k, v in PYTORCH_AVX2.items())
              + "),",
              "ONNX Runtime int8's ratio to PyTorch fp32 in a user's AVX2-only Zen 3 run: "
              "an estimate, not a measurement on such a CPU",
              f"({time.time() - t0:.0f} s)"]
    text = "\n".join(lines) + "\n"
    out = Path(__file__).parent / "results" / "tvm_isas_lite0"
    out.with_suffix(".json").write_text(json.dumps(
        {"machine": describe(), "tvm": {f"{n} | {i}": v for (n, i), v in times.items()},
         "baselines": {f"{n} | {b}": ms for (n, b), ms in bases.items()}}, indent=1))
    write_result(out.with_suffix(".txt"), text)


if __name__ == "__main__":
    main()
