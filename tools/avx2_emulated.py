"""An AVX2-only CPU, emulated on this one: valgrind (`--tool=none`) executes x86-64
code as a CPU without AVX-512 or VNNI (its CPUID: LLVM names it haswell, with AVX, AVX2 and FMA),
on any x86-64 host, so ONNX Runtime, PyTorch, numba and this package (kernels/tvm/target.py's
cpu_flags) all take their AVX2 paths. Numerics only: under valgrind code runs 10-50x slower and
one thread at a time, so no timing comes from it.

1. ONNX Runtime int8 as an AVX2-only CPU computes it: its static int8 QDQ models of Lite0
   (calibrated on the 8 calibration photos' crops, as in fidelity_lite0.py; int8 weights, its
   default; `reduce_range`, 7-bit weights; "u8u8", uint8 weights) on the 376 held-out crops,
   under valgrind and natively on this CPU: the four fidelity numbers (runtime/fidelity.py) against
   the float model; also the default model run as DequantizeLinear + float ops ("float-sim", graph
   optimizations off), what the tests compare with; and natively with its MLAS dispatch patched to
   the AVX2 kernels (tools/ort_isa.py, what tvm_isas_lite0.py times), whose logits must be the
   emulated ones on every crop (the last column counts the crops that are).
2. The test files whose outcome could depend on the CPU, each run by pytest under valgrind.

Writes results/avx2_emulated.txt; resumable: each part's result is kept in
results/avx2_emulated.json as it finishes and skipped on a rerun (`--redo PART...`; `--only
PART...` runs just those, e.g. two processes for two cores: valgrind runs one thread at a time).
Parts: "ort", "ort-float-sim" and each test spec of TESTS. Hours on one core (the DDP test's three
training runs take over 20 minutes each under valgrind).

    python tools/avx2_emulated.py [--only ort tests/test_golden_logits.py]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ort_isa import make as ort_isa_package

from aq_runtime.runtime.fidelity import LEGEND, fidelity
from aq_runtime.bench.machine import describe
from aq_runtime.bench.ort_baseline import ORT_CONFIGS, ort_int8, ort_logits
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
from aq_runtime.export.float_exec import run_float_graph
from aq_runtime.files import atomic_open
from aq_runtime.models.efficientnet import lite0_float_graph, load_lite0

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
VALGRIND = ["valgrind", "--tool=none", "-q", "--trace-children=yes"]
# the tests whose outcome could depend on the CPU: every backend's logits against the committed
# hash (numba compiled for the emulated CPU, the tvm kernels it detects: AVX2), every backend
# == the reference on the CI graphs (Lite0 mixed 1..16 bits and ternary, B0, digits, random
# graphs), ONNX Runtime's int8 (saturating without VNNI), float summation order in distributed
# training. (The AVX2 kernels' own tests, and test_backends.py forced onto them, run in CI on
# every x86 CPU: tests/test_tvm_isas.py; here numba, numpy and the CPU detection are the
# emulated CPU's too.)
# ONNX Runtime's parts, apart by run time under valgrind: the quantized models ~20 minutes,
# float-sim (unoptimized) two hours
ORT_PARTS = {"ort": ORT_CONFIGS, "ort-float-sim": ("float-sim",)}
TESTS = ("tests/test_golden_logits.py",
         "tests/test_backends.py",
         "tests/test_training.py::test_ddp_equals_single_process",
         "tests/test_onnx_qdq.py")
PROBE = ("from aq_runtime.kernels.tvm.target import supported_isas; "
         "from aq_runtime.bench.machine import describe; print(describe(), supported_isas())")
ORT_CHILD = """
import sys
from pathlib import Path
import numpy as np
import onnxruntime
from aq_runtime.bench.ort_baseline import ort_logits
from aq_runtime.models.efficientnet import lite0_float_graph
d, run = sys.argv[1:3]  # valgrind: the installed package, emulated; avx2: ort_isa's, natively
mark = Path(onnxruntime.__file__).parent / ".isa"
assert (mark.read_text().strip() if mark.is_file() else "valgrind") == run
fg, x = lite0_float_graph(), np.load(d + "/heldout.npy")
for name in sys.argv[3:]:  # float-sim: the default model, graph optimizations off
    sim = name == "float-sim"
    np.save(f"{d}/{name}.{run}.npy",
            ort_logits(f"{d}/{'s8' if sim else name}.onnx", fg, x, optimize=not sim))
"""
ORT_HEADER = (f"{'ONNX Runtime int8 QDQ':28s} {'CPU':24s} {'top-1':>7s} {'top-5':>7s} "
              f"{'conf.':>7s} {'SQNR dB':>8s}  == AVX2-only")


def emulated(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(VALGRIND + args, capture_output=True, text=True, cwd=ROOT, **kw)


def ort_rows(work: Path, names: tuple[str, ...]) -> list[str]:
    """Table rows for ONNX Runtime's models `names` (of ORT_CONFIGS, or "float-sim"): natively,
    under valgrind, and (the quantized ones) with ort_isa's AVX2 dispatch."""
    fg = lite0_float_graph()
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    xh, _ = crops_of(HELDOUT_PHOTOS)
    np.save(work / "heldout.npy", xh)
    f = run_float_graph(fg, xh)
    module = load_lite0()
    fp32 = None
    quantized = tuple(n for n in names if n != "float-sim")
    for config in dict.fromkeys(quantized + (("s8",) if "float-sim" in names else ())):
        fp32, path = ort_int8(module, fg, xc, str(work), config, fp32)
        shutil.move(path, work / f"{config}.onnx")
    r = emulated([sys.executable, "-c", ORT_CHILD, str(work), "valgrind", *names])
    if r.returncode:
        raise SystemExit(f"ONNX Runtime under valgrind failed:\n{r.stderr[-3000:]}")
    if quantized:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ort_isa_package(work, "avx2")), os.environ.get("PYTHONPATH", "")]))
        subprocess.run([sys.executable, "-c", ORT_CHILD, str(work), "avx2", *quantized],
                       env=env, cwd=ROOT, check=True, capture_output=True)
    lines = []
    for name in names:
        label = {"s8": "int8 weights (default)", "reduce_range": "reduce_range (7-bit)",
                 "u8u8": "uint8 weights (u8u8)", "float-sim": "default, float-sim"}[name]
        native = ort_logits(str(work / f"{'s8' if name == 'float-sim' else name}.onnx"), fg, xh,
                            optimize=name != "float-sim")
        emu = np.load(work / f"{name}.valgrind.npy")
        rows = [("this CPU (native)", native), ("AVX2-only (valgrind)", emu)]
        if name != "float-sim":
            rows.append(("AVX2 kernels (ort_isa)", np.load(work / f"{name}.avx2.npy")))
        for cpu, logits in rows:
            d = fidelity(f, logits)
            same = (logits == emu).all(axis=1).sum()
            lines.append(f"{label:28s} {cpu:24s} {d.top1_agreement:7.1%} "
                         f"{d.top5_containment:7.1%} {d.confident_agreement:7.1%} "
                         f"{d.sqnr_db:8.2f}  {same}/{len(emu)} crops")
    return lines


def test_row(spec: str) -> str:
    """pytest `spec` under valgrind: its summary line and minutes."""
    t = time.time()
    r = emulated([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", spec],
                 env=dict(os.environ, PYTHONFAULTHANDLER="1", AQ_TEST_TIMEOUT_SCALE="20"))
    if r.returncode < 0:  # killed (by a signal): no result
        raise SystemExit(f"{spec}: valgrind was killed ({-r.returncode})")
    tail = [s for s in r.stdout.strip().splitlines() if s.strip()][-1:] or ["(no output)"]
    if r.returncode:
        print(r.stdout[-4000:], r.stderr[-2000:])
    return f"{spec:62s} {tail[0].strip('= ').split(' in ')[0]:24s} {(time.time() - t) / 60:7.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="run just these parts")
    ap.add_argument("--redo", nargs="*", default=[], help="run these parts again")
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("avx2_emulated: needs valgrind (apt install valgrind)")
    t0 = time.time()
    probe = emulated([sys.executable, "-c", PROBE])
    seen = probe.stdout.strip()
    if probe.returncode or not seen.endswith("['avx2']"):
        raise SystemExit(f"valgrind does not present an AVX2-only CPU here: {seen or probe.stderr}")
    version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout
    store = RESULTS / "avx2_emulated.json"

    def stored() -> dict:  # as the last process to finish a part left it
        return json.loads(store.read_text()) if store.exists() else {}

    for part in (*ORT_PARTS, *TESTS):
        done = stored()
        if (a.only and part not in a.only) or (part in done and part not in a.redo):
            continue
        if part in ORT_PARTS:
            with tempfile.TemporaryDirectory(prefix="aq-avx2-") as work:
                result = ort_rows(Path(work), ORT_PARTS[part])
        else:
            result = [test_row(part)]
        print("\n".join(result), flush=True)
        done = stored()  # with what another process added meanwhile
        done[part] = result
        done["emulated"] = f"{seen} ({version.strip()} --tool=none)"
        with atomic_open(store, "w") as fh:  # a temp file of its own, then renamed
            json.dump(done, fh, indent=1)
    done = stored()
    ort_lines = [row for part in ORT_PARTS for row in done.get(part, [f"{part}: not run"])
                 if not row.startswith("ONNX Runtime int8 QDQ")]  # (earlier runs stored it)
    lines = [f"host: {describe()}", f"emulated: {done.get('emulated', seen)}", "",
             ORT_HEADER, *ort_lines, "",
             LEGEND, "",
             f"{'pytest under valgrind (AVX2-only CPU)':62s} {'result':24s} {'minutes':>7s}"]
    lines += [done[t][0] if t in done else f"{t:62s} not run" for t in TESTS]
    lines += ["", "(each part as it finished, kept in avx2_emulated.json; "
              f"this run {time.time() - t0:.0f} s)"]
    text = "\n".join(lines) + "\n"
    write_result(RESULTS / "avx2_emulated.txt", text)


if __name__ == "__main__":
    main()
