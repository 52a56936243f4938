"""Cold start and install size: how long a fresh worker takes from a new process to its first
prediction on Lite0 (`--bits auto`), with kernels compiled ahead (aq-compile) against the JIT
path, and what each install profile weighs.

- Builds a plain runtime install (`pip install .`, no extras) in a new venv and measures it.
- Compiles the model's kernels for every instruction set this CPU runs (aq-compile, timed).
- Starts fresh processes with empty caches (compiled kernels, kernel choices, Numba's), in the
  plain install and in this (full) one: tvm with the kernels file, tvm compiling its kernels
  (JIT, full install only), numba; each one's seconds to the end of its first prediction
  (ready) and from the interpreter's first statement (with imports), median of --repeats.
- Checks that the kernels' int32 logits `==` the JIT path's on 8 random images, per target.

    python benchmarks/cold_start.py [--model lite0_auto.aqz] [--repeats 3]

Writes benchmarks/results/cold_start.txt and .json. About 10 minutes on 2 cores."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

LOGITS = """
import sys, numpy as np
from aq_runtime.runtime import Session
s = Session(sys.argv[1], "tvm", kernels=sys.argv[2] or None)
x = np.random.default_rng(1).integers(0, 256, (8, *s.input_shape), dtype=np.uint8)
np.save(sys.argv[3], s.run(x))
"""


def du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def site_packages(python: str) -> Path:
    out = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out)


def package_sizes(python: str, top: int = 12) -> list[tuple[str, float]]:
    sp = site_packages(python)
    sizes = [(p.name, du_mb(p)) for p in sp.iterdir() if p.is_dir()
             and not p.name.endswith((".dist-info", "__pycache__"))]
    return sorted(sizes, key=lambda s: -s[1])[:top]


def median_start(runs: int, python: str, model: Path, backend: str, kernels: Path | None,
                 cold: bool = True) -> tuple[float, float]:
    from aq_runtime.bench.latency import start_time
    res = [start_time(model, backend, kernels, cold, python) for _ in range(runs)]
    if any(r[0] != r[0] for r in res):  # NaN: the process failed
        raise SystemExit(f"{backend} start failed in {python}")
    return statistics.median(r[0] for r in res), statistics.median(r[1] for r in res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a .aqz (default: efficientnet-lite0 --bits auto, exported "
                                    "here)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lean-venv", help="an existing plain install to use (default: built)")
    a = ap.parse_args()

    from aq_runtime.bench.machine import describe
    from aq_runtime.kernels.tvm.target import supported_isas

    work = Path(tempfile.mkdtemp(prefix="aq-coldstart-"))
    model = Path(a.model) if a.model else work / "lite0_auto.aqz"
    if not a.model:
        print("exporting efficientnet-lite0 --bits auto ...", flush=True)
        subprocess.run(["aq-export", "efficientnet-lite0", str(model), "--bits", "auto"],
                       check=True, capture_output=True)
    lean = Path(a.lean_venv) if a.lean_venv else work / "lean"
    if not a.lean_venv:
        print("building the plain runtime install ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(lean)], check=True)
        t = time.perf_counter()
        subprocess.run([str(lean / "bin" / "pip"), "install", "-q", str(ROOT)], check=True,
                       capture_output=True)
        lean_install_s = time.perf_counter() - t
    else:
        lean_install_s = float("nan")
    lean_py = str(lean / "bin" / "python")

    kernels = work / "lite0_auto.kernels"
    t = time.perf_counter()
    subprocess.run(["aq-compile", str(model), "-o", str(kernels)], check=True,
                   capture_output=True)
    compile_s = time.perf_counter() - t
    with zipfile.ZipFile(kernels) as z:
        manifest = json.loads(z.read("kernels.json"))

    os.environ.pop("AQ_TVM_ISA", None)  # each process takes its CPU's best kernels
    rows = []
    print("timing cold starts ...", flush=True)
    rows.append(("plain", "tvm + kernels file",
                 median_start(a.repeats, lean_py, model, "tvm", kernels)))
    rows.append(("plain", "numba", median_start(a.repeats, lean_py, model, "numba", None)))
    rows.append(("full", "tvm + kernels file",
                 median_start(a.repeats, sys.executable, model, "tvm", kernels)))
    rows.append(("full", "tvm JIT (compiles)",
                 median_start(1, sys.executable, model, "tvm", None)))
    rows.append(("full", "numba", median_start(1, sys.executable, model, "numba", None)))
    warm_k = median_start(a.repeats, lean_py, model, "tvm", kernels, cold=False)

    equal = {}
    for isa in supported_isas():
        e = dict(os.environ, AQ_TVM_ISA=isa)
        ys = []
        for k in (kernels, None):
            out = work / f"y_{isa}_{'k' if k else 'jit'}.npy"
            subprocess.run([sys.executable, "-c", LOGITS, str(model), str(k or ""), str(out)],
                           check=True, env=e, capture_output=True)
            ys.append(out)
        import numpy as np
        equal[isa] = bool((np.load(ys[0]) == np.load(ys[1])).all())

    sizes = {"plain": du_mb(lean), "full": du_mb(Path(sys.prefix))}
    lines = [f"machine: {describe()}",
             f"model: efficientnet-lite0 --bits auto ({model.stat().st_size} bytes)",
             f"aq-compile (targets {', '.join(manifest['targets'])}): {compile_s:.1f} s, "
             f"{kernels.stat().st_size} bytes",
             "",
             "first prediction of a fresh process, empty caches (median of "
             f"{a.repeats}; JIT and full-install numba: 1 run):",
             f"{'install':8} {'backend':22} {'ready s':>8} {'with imports s':>15}"]
    for inst, name, (ready, total) in rows:
        lines.append(f"{inst:8} {name:22} {ready:8.2f} {total:15.2f}")
    lines += [f"plain    tvm + kernels, warm caches {warm_k[0]:8.2f} {warm_k[1]:15.2f}",
              "",
              "kernels file == JIT logits (8 random images): " + ", ".join(
                  f"{i}: {'equal' if ok else 'DIFFERENT'}" for i, ok in equal.items()),
              "",
              f"install sizes (venv, MB): plain {sizes['plain']:.0f} "
              f"(pip install . took {lean_install_s:.0f} s), this venv ([test] and any tools "
              f"added to it) {sizes['full']:.0f}",
              "plain install, largest packages (MB): " + ", ".join(
                  f"{n} {s:.0f}" for n, s in package_sizes(lean_py)),
              "full install, largest packages (MB): " + ", ".join(
                  f"{n} {s:.0f}" for n, s in package_sizes(sys.executable))]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cold_start.txt").write_text(text + "\n")
    (RESULTS / "cold_start.json").write_text(json.dumps({
        "machine": describe(), "compile_s": compile_s, "kernels_bytes": kernels.stat().st_size,
        "targets": list(manifest["targets"]),
        "cold": [{"install": i, "backend": n, "ready_s": r, "with_imports_s": t}
                 for i, n, (r, t) in rows],
        "warm_kernels": {"ready_s": warm_k[0], "with_imports_s": warm_k[1]},
        "kernels_equal_jit": equal, "venv_mb": sizes}, indent=1) + "\n")


if __name__ == "__main__":
    main()
