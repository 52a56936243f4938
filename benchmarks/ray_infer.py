"""aq-infer on Ray against one machine, on the same 10,000 JPEGs (bench/scale.py) and
EfficientNet-Lite0 uniform 8 (backend tvm, kernels compiled ahead for every run):

- one machine: `aq-infer --workers 2` (2 decoding processes);
- `--engine ray` with 1 and 2 workers (a local Ray: one CPU per core for the workers, one for
  the read tasks); wall time from the command's start (Ray's start included) and images/s;
  Ray's own overhead: starting and stopping a local Ray, and a run of one image;
- each worker's start-up (Session, kernels loaded or compiled, one prediction) with the kernels
  file and without it (compiling, empty caches);
- every Ray output == the single-machine CSV, byte for byte;
- the same integers on mixed CPUs: a two-node Ray cluster on this machine, one node forced to
  the AVX2 kernels, on the first --mixed images == one machine; beside it ONNX Runtime int8
  (its default QDQ model of the same float Lite0) through its AVX-512 and its AVX2 kernels
  (tools/ort_isa.py) on the same decoded images: how many top-1 predictions and logits
  differ between the two.

    python benchmarks/ray_infer.py [--images 10000] [--mixed 1000]

Writes benchmarks/results/ray_infer.txt and .json; about 40 minutes on 2 cores."""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

RAY_START = """
import time, ray
t = time.perf_counter()
ray.init(num_cpus=3, object_store_memory=256 << 20, include_dashboard=False, log_to_driver=False)
t1 = time.perf_counter()
ray.shutdown()
print(t1 - t, time.perf_counter() - t1)
"""

MIXED = """
import json, sys, ray
from ray.cluster_utils import Cluster
from aq_runtime.cluster.ray_infer import infer_ray
model, images, kernels, out = sys.argv[1:5]
c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
for env in ({}, {"AQ_TVM_ISA": "avx2"}):
    c.add_node(num_cpus=1, resources={"aq_worker": 1}, env_vars=env)
ray.init(address=c.address, log_to_driver=False)
m = infer_ray(model, images, out, kernels=kernels, workers=2, resources={"aq_worker": 1},
              progress=False)
ray.shutdown()
c.shutdown()
print(json.dumps(m))
"""

ORT = """
import json, sys
import numpy as np
import onnxruntime as ort
from aq_runtime.bench.ort_baseline import ort_logits
from aq_runtime.models.registry import build_float_graph
path, images, out = sys.argv[1:4]
y = ort_logits(path, build_float_graph("efficientnet-lite0"), np.load(images))
np.save(out, y)
print(ort.__file__)
"""


def cli(*args: str, env: dict | None = None) -> float:
    t = time.perf_counter()
    r = subprocess.run(["aq-infer", *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"aq-infer {' '.join(args)} failed: {r.stderr[-2000:]}")
    return time.perf_counter() - t


def concatenated(out: Path) -> str:
    texts = []
    for p in sorted(glob.glob(str(out / "part-*[0-9].csv"))):
        with open(p, newline="") as f:
            texts.append(f.read().split("\r\n"))
    return "\r\n".join([texts[0][0]] + [r for t in texts for r in t[1:] if r]) + "\r\n"


def manifest(out: Path) -> dict:
    return json.loads((out / "_SUCCESS").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--mixed", type=int, default=1000)
    ap.add_argument("--render", action="store_true",
                    help="only write the .txt again from the committed .json")
    a = ap.parse_args()
    if a.render:
        text = render(json.loads((RESULTS / "ray_infer.json").read_text()))
        (RESULTS / "ray_infer.txt").write_text(text + "\n")
        print(text)
        return
    from aq_runtime.bench.machine import describe
    from aq_runtime.bench.scale import write_jpegs

    d = Path(tempfile.mkdtemp(prefix="aq-ray-bench-"))
    model, kernels, images = d / "lite0.aqz", d / "lite0.kernels", d / "images"
    print("exporting, writing images, compiling kernels ...", flush=True)
    subprocess.run(["aq-export", "efficientnet-lite0", str(model), "--bits", "8"], check=True,
                   capture_output=True)
    write_jpegs(images, a.images)
    subprocess.run(["aq-compile", str(model), "-o", str(kernels)], check=True,
                   capture_output=True)
    common = ["--kernels", str(kernels), "--quiet"]

    print("one machine ...", flush=True)
    single = d / "single.csv"
    t_single = cli(str(model), str(images), "--workers", "2", "--output", str(single), *common)
    with open(single, newline="") as f:
        single_text = f.read()
    rows = {}
    for w in ("1", "2"):
        print(f"ray, {w} worker(s) ...", flush=True)
        out = d / f"ray{w}"
        t = cli(str(model), str(images), "--engine", "ray", "--workers", str(w), "--output",
                str(out), *common)
        m = manifest(out)
        rows[w] = {"wall_s": t, "images_per_s": a.images / t, "pipeline_s": m["seconds"],
                   "equal": concatenated(out) == single_text,
                   "start_s": [x["start_s"] for x in m["workers"]]}
    print("Ray's overhead, start-up without kernels ...", flush=True)
    r = subprocess.run([sys.executable, "-c", RAY_START], capture_output=True, text=True,
                       check=True)
    ray_init, ray_stop = map(float, r.stdout.split()[-2:])
    one = d / "one"
    one.mkdir()
    os.link(sorted(images.rglob("*.jpg"))[0], one / "a.jpg")
    t_one = cli(str(model), str(one), "--engine", "ray", "--workers", "1", "--output",
                str(d / "ray_one"), *common)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, AQ_CACHE_DIR=f"{cache}/aq", NUMBA_CACHE_DIR=f"{cache}/nb")
        cli(str(model), str(one), "--engine", "ray", "--workers", "1", "--output",
            str(d / "ray_jit"), "--quiet", env=env)
    jit_start = [x["start_s"] for x in manifest(d / "ray_jit")["workers"]]

    print("mixed CPUs: aq on two Ray nodes, ONNX Runtime's AVX2 and AVX-512 kernels ...",
          flush=True)
    sub = d / "mixed"
    for p in sorted(images.rglob("*.jpg"))[:a.mixed]:
        (sub / p.parent.name).mkdir(parents=True, exist_ok=True)
        os.link(p, sub / p.parent.name / p.name)
    t = time.perf_counter()
    cli(str(model), str(sub), "--output", str(d / "mixed_single.csv"), *common)
    r = subprocess.run([sys.executable, "-c", MIXED, str(model), str(sub), str(kernels),
                        str(d / "mixed_ray")], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"mixed run failed: {r.stderr[-2000:]}")
    mixed = json.loads(r.stdout.splitlines()[-1])
    with open(d / "mixed_single.csv", newline="") as f:
        mixed_equal = concatenated(d / "mixed_ray") == f.read()
    mixed_s = time.perf_counter() - t
    ort = ort_compare(sub, d)

    res = {"machine": describe(), "images": a.images, "single_s": t_single, "ray": rows,
           "ray_init_s": ray_init, "ray_stop_s": ray_stop, "ray_one_image_s": t_one,
           "jit_start_s": jit_start,
           "mixed": {"images": a.mixed, "seconds": mixed_s, "equal": mixed_equal,
                     "isas": sorted({w["isa"] for w in mixed["workers"]})},
           "ort_isa": ort}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray_infer.json").write_text(json.dumps(res, indent=1) + "\n")
    text = render(res)
    print(text)
    (RESULTS / "ray_infer.txt").write_text(text + "\n")


def render(res: dict) -> str:
    rows, ort, mixed = res["ray"], res["ort_isa"], res["mixed"]
    n = res["images"]
    lines = [f"machine: {res['machine']}",
             "model: efficientnet-lite0 uniform 8, backend tvm with kernels compiled ahead; "
             f"{n} JPEGs (96..320 px)", "",
             f"{'run':28} {'wall s':>8} {'images/s':>9} {'== one machine':>15}",
             f"{'one machine, 2 decoders':28} {res['single_s']:8.1f} {n / res['single_s']:9.1f} "
             f"{'(reference)':>15}"]
    for w, r in rows.items():
        lines.append(f"{f'ray, {w} worker(s)':28} {r['wall_s']:8.1f} {r['images_per_s']:9.1f} "
                     f"{'byte for byte' if r['equal'] else 'DIFFERENT':>15}")
    starts = rows["1"]["start_s"] + rows["2"]["start_s"]
    lines += ["",
              f"Ray's own overhead: a local Ray starts in {res['ray_init_s']:.1f} s and stops in "
              f"{res['ray_stop_s']:.1f} s; a whole run of 1 image takes "
              f"{res['ray_one_image_s']:.1f} s",
              "worker start-up (Session, kernels, one prediction): with the kernels file "
              f"{', '.join(f'{s:.2f}' for s in starts)} s; without (compiling, empty caches) "
              f"{', '.join(f'{s:.1f}' for s in res['jit_start_s'])} s",
              "",
              f"mixed CPUs, first {mixed['images']} images ({mixed['seconds']:.0f} s): two Ray "
              f"nodes, kernels {', '.join(mixed['isas'])}: "
              f"{'== one machine, byte for byte' if mixed['equal'] else 'DIFFERENT'}",
              "ONNX Runtime int8 (default QDQ model, s8 weights) on the same decoded images, "
              f"its AVX2 kernels against its AVX-512 ones: top-1 differs on {ort['top1_diff']} "
              f"of {ort['n']} images, logits differ on {ort['logit_diff']}, max |diff| "
              f"{ort['max_abs']:.3f} (logit SQNR of AVX2 against AVX-512: {ort['sqnr_db']:.1f} dB)",
              "", estimate(rows["2"]["images_per_s"] / 2)]
    return "\n".join(lines)


def ort_compare(images: Path, d: Path) -> dict:
    """ONNX Runtime int8's logits through its AVX-512 and AVX2 kernels on the same pixels."""
    from aq_runtime.bench.ort_baseline import ort_int8
    from aq_runtime.data.images import list_images
    from aq_runtime.export.sources import calibration_images
    from aq_runtime.models.efficientnet import load_lite0
    from aq_runtime.models.registry import build_float_graph
    from aq_runtime.runtime.predict import preprocess_file
    from aq_runtime.runtime.session import Session

    fg = build_float_graph("efficientnet-lite0")
    _, int8 = ort_int8(load_lite0(), fg, calibration_images(fg, None)[::4], str(d))
    s = Session(d / "lite0.aqz", "reference")
    x = np.stack([preprocess_file(s, p) for p in list_images(images)])
    np.save(d / "x.npy", x)
    patched = d / "ort_avx2"
    subprocess.run([sys.executable, str(ROOT / "tools" / "ort_isa.py"), "avx2", str(patched)],
                   check=True, capture_output=True)
    ys = {}
    for name, extra in (("avx512", None), ("avx2", str(patched))):
        env = dict(os.environ)
        if extra:
            env["PYTHONPATH"] = os.pathsep.join([extra, env.get("PYTHONPATH", "")])
        subprocess.run([sys.executable, "-c", ORT, int8, str(d / "x.npy"), str(d / f"{name}.npy")],
                       check=True, capture_output=True, env=env)
        ys[name] = np.load(d / f"{name}.npy")
    a, b = ys["avx512"], ys["avx2"]
    return {"n": len(a), "top1_diff": int((a.argmax(1) != b.argmax(1)).sum()),
            "logit_diff": int((np.abs(a - b) > 0).any(1).sum()),
            "max_abs": float(np.abs(a - b).max()),
            "sqnr_db": float(10 * np.log10((a ** 2).sum() / max(((a - b) ** 2).sum(), 1e-30)))}


def estimate(per_core: float) -> str:
    """10^8 images on N machines, from the measured rate per core."""
    lines = [f"paper estimate: 10^8 images at this run's {per_core:.1f} images/s per core (2 Ray "
             "workers on 2 cores, Ray's overhead included), assuming the rate scales with "
             "cores (every image is independent; the driver only writes ~150 bytes a row) and "
             "the storage delivers the files that fast (~20 KB each):"]
    for machines, cores in ((1, 2), (10, 16), (100, 16), (100, 64)):
        hours = 1e8 / (per_core * cores * machines) / 3600
        lines.append(f"  {machines:3d} machines x {cores:2d} cores: "
                     + (f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
