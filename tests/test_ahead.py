"""Kernels compiled ahead (aq-compile, --kernels): every CI graph, compiled for every
instruction set this CPU runs, gives the golden int32 logits in a fresh process where the TVM
compiler cannot be imported and every cache is empty; a kernels file of another model, a
truncated or altered one, or one with no target this CPU runs is refused in one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from make_golden import DATA, MODELS
from blocked import BLOCKER, NOT_RUNTIME

from aq_runtime.kernels.tvm.target import supported_isas

pytestmark = pytest.mark.tvm  # kernels compiled for this CPU, by apache-tvm

NAMES = {"avx512_vnni": "avx512-vnni", "avx_vnni": "avx-vnni", "avx2": "avx2"}


def cli(*args, env=None, blocked=()):
    code = BLOCKER.format(blocked=set(blocked)) + (
        "from aq_runtime.cli.{0} import main\n"
        "sys.argv = ['aq-{0}'] + {1!r}\n"
        "main()\n").format(args[0], [str(a) for a in args[1:]])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """name -> (model path, kernels file for every instruction set this CPU runs)."""
    d = tmp_path_factory.mktemp("kernels")
    out = {}
    for name in MODELS:
        model = DATA / f"golden_{name}.aqz"
        k = d / f"{name}.kernels"
        r = cli("compile", model, "--target", *[NAMES[i] for i in supported_isas()], "-o", k)
        assert r.returncode == 0, r.stderr
        assert all(f"{i}: " in r.stdout for i in supported_isas())
        out[name] = (model, k)
    return out


RUN = """
import json, sys
from aq_runtime.format import read_aqz
from aq_runtime.runtime import Session
from aq_runtime.kernels.tvm.target import isa
from make_golden import DATA, golden_images, logits_hash
out = {}
for name, kernels in json.loads(sys.argv[1]).items():
    g = read_aqz(DATA / f"golden_{name}.aqz")
    s = Session(g, kernels=kernels)
    out[name] = [s.backend_name, isa(), logits_hash(s.run(golden_images(name, g.tensors[g.input].shape)))]
print(json.dumps(out))
"""


@pytest.mark.parametrize("isa", supported_isas())
def test_golden_logits_without_a_compiler(kernels, isa, tmp_path):
    env = dict(os.environ, AQ_TVM_ISA=isa, AQ_CACHE_DIR=str(tmp_path / "aq"),
               NUMBA_CACHE_DIR=str(tmp_path / "nb"),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get(
                   "PYTHONPATH", "")]))
    code = BLOCKER.format(blocked=set(NOT_RUNTIME)) + RUN
    arg = json.dumps({n: str(k) for n, (_, k) in kernels.items()})
    r = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    golden = json.loads((DATA / "golden_logits.json").read_text())
    for name in MODELS:
        assert got[name] == ["tvm", isa, golden[name]], name
    assert not (tmp_path / "aq" / "tvm").exists()  # nothing compiled, nothing JIT-cached


def _one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def _rewrite(src: Path, dst: Path, change) -> Path:
    """A copy of kernels file `src` with change(name, bytes) -> bytes | None applied."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as w:
        for info in z.infolist():
            data = change(info.filename, z.read(info.filename))
            if data is not None:
                w.writestr(info.filename, data)
    return dst


def _manifest(change):
    def edit(name, data):
        if name != "kernels.json":
            return data
        m = json.loads(data)
        change(m)
        return json.dumps(m).encode()
    return edit


def test_bad_kernels_files(kernels, image_folder, tmp_path):
    model, k = kernels["digits"]
    other = kernels["small"][1]
    full = k.read_bytes()
    truncated = tmp_path / "truncated.kernels"
    truncated.write_bytes(full[: len(full) // 2])
    isa = supported_isas()[0]

    def flip(name, data):
        return data[:-9] + bytes([data[-9] ^ 1]) + data[-8:] if name.endswith(".so") else data
    cases = {
        "kernels of another model": other,
        "truncated": truncated,
        "checksum mismatch": _rewrite(k, tmp_path / "flipped.kernels", flip),
        "no kernels this CPU runs": _rewrite(
            k, tmp_path / "arm.kernels", _manifest(lambda m: m.update(targets={
                "neon_dot": m["targets"][isa]}))),
        "other kernel code": _rewrite(
            k, tmp_path / "old.kernels", _manifest(lambda m: m.update(kernel_version=-1))),
        "not a kernels file": model,
        "no such file": tmp_path / "missing.kernels",
    }
    for why, path in cases.items():
        out = tmp_path / "preds.csv"
        line = _one_line(cli("infer", model, image_folder, "--quiet", "--kernels", path,
                             "--output", out))
        assert str(path) in line and why in line, (why, line)
        assert not out.exists()  # nothing written
        line = _one_line(cli("verify", model, image_folder, "--kernels", path))
        assert why in line


def test_infer_and_verify_with_kernels(kernels, image_folder):
    model, k = kernels["small"]
    r = cli("verify", model, image_folder, "--kernels", k, blocked={"tvm"})
    assert r.returncode == 0, r.stderr
    assert "tvm: identical" in r.stdout
    with_k = cli("infer", model, image_folder, "--quiet", "--kernels", k, blocked={"tvm"})
    ref = cli("infer", model, image_folder, "--quiet", "--backend", "reference")
    assert with_k.returncode == 0, with_k.stderr
    assert with_k.stdout == ref.stdout


def test_compile_bad_input(tmp_path):
    model = DATA / "golden_digits.aqz"
    out = tmp_path / "k.kernels"
    assert "unknown --target" in _one_line(cli("compile", model, "--target", "sse2", "-o", out))
    assert "no such file" in _one_line(cli("compile", tmp_path / "nope.aqz", "-o", out))
    assert "aq-runtime[jit]" in _one_line(cli("compile", model, "-o", out, blocked={"tvm"}))
    if shutil.which("gcc"):  # no C compiler: one line naming it
        env = dict(os.environ, CC="no-such-cc")
        assert "C compiler" in _one_line(cli("compile", model, "-o", out, env=env))
    assert not out.exists()


@pytest.mark.x86
def test_aarch64_cross_compile(tmp_path):
    """aq-compile --target aarch64 on x86: an aarch64 library with the thread pool linked in,
    its kernels' dot products `sdot`; an x86 CPU refuses it in one line (it runs under qemu:
    benchmarks/arm_emulated.py)."""
    if not shutil.which("aarch64-linux-gnu-gcc"):
        pytest.fail("needs Debian's gcc-aarch64-linux-gnu (.ci/run installs it)")
    model = DATA / "golden_lite0_mixed32.aqz"
    k = tmp_path / "arm.kernels"
    r = cli("compile", model, "--target", "aarch64", "-o", k)
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(k) as z:
        m = json.loads(z.read("kernels.json"))
        lib = z.read("neon_dot.so")
    assert list(m["targets"]) == ["neon_dot"]
    assert lib[:4] == b"\x7fELF" and int.from_bytes(lib[18:20], "little") == 183  # EM_AARCH64
    assert b"aq_parallel_launch" in lib and b"aq_pool_start" in lib
    objdump = shutil.which("aarch64-linux-gnu-objdump")
    if objdump:
        (tmp_path / "neon_dot.so").write_bytes(lib)
        asm = subprocess.run([objdump, "-d", str(tmp_path / "neon_dot.so")],
                             capture_output=True, text=True).stdout
        assert re.search(r"\bsdot\b", asm)
    line = _one_line(cli("infer", model, DATA, "--kernels", k))
    assert "no kernels this CPU runs" in line and "neon_dot" in line
