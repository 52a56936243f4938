"""ONNX Runtime's AVX2 kernels on a CPU that also has AVX-512 / AVX-VNNI, for the benchmarks: a
copy of the installed onnxruntime package in which MLAS's platform init (the CPUID dispatch of
onnxruntime/core/mlas/lib/platform.cpp) skips its AVX-VNNI and AVX-512 branches, two
conditional jumps made unconditional. ONNX Runtime then runs exactly the kernels an AVX2-only
CPU runs: its int8 models give the same logits, bit for bit, as the unpatched package under
valgrind's AVX2-only emulation (checked on every held-out crop by benchmarks/avx2_emulated.py),
the saturating `vpmaddubsw` included. ONNX Runtime has no switch for this, and CPUID cannot be
masked in this VM. Nothing installed is modified and the package never imports this; timings
with it are ONNX Runtime's AVX2 code on this CPU's cores (as the tvm AVX2 kernels' rows are
ours), not an AVX2-only CPU's.

    python benchmarks/ort_avx2.py DEST    # writes DEST/onnxruntime; then PYTHONPATH=DEST
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

LIB = "capi/onnxruntime_pybind11_state*.so"
JE, JMP = 0x74, 0xEB  # je rel8 -> jmp rel8
# (before, after) the `je` to make a `jmp`, as onnxruntime 1.32's MLAS init is compiled:
# cpuid(7, 1); test $0x10,%al (EAX bit 4: AVX-VNNI); je <no AVX-VNNI kernels>
# test $0x10000,%r10d (CPUID 7 EBX bit 16: AVX512F); je <no AVX-512 kernels>;
#   mov %r8,%rax; not %rax; test $0xe0,%al (XCR0: the OS saves the AVX-512 state)
BRANCHES = {"AVX-VNNI": (bytes.fromhex("0fa2a810"), b""),
            "AVX-512": (bytes.fromhex("41f7c200000100"), bytes.fromhex("4c89c048f7d0a8e0"))}


def installed() -> Path:
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("ort_avx2: onnxruntime is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def patch(lib: bytearray) -> None:
    """Turn both branches' `je` into `jmp`, in place; each pattern must occur exactly once."""
    for name, (before, after) in BRANCHES.items():
        pat = re.escape(before) + bytes([JE]) + b"." + re.escape(after)
        hits = [m.start() + len(before) for m in re.finditer(pat, lib, re.DOTALL)]
        if len(hits) != 1:
            raise SystemExit(f"ort_avx2: MLAS's {name} dispatch not recognised in this "
                             f"onnxruntime build ({len(hits)} matches; written for 1.32)")
        lib[hits[0]] = JMP


def make(dest: Path) -> Path:
    """dest/onnxruntime: the patched copy (made once; reused when already there). Returns dest,
    the folder to put first on PYTHONPATH."""
    dest = Path(dest)
    pkg = dest / "onnxruntime"
    if (pkg / ".avx2").is_file():
        return dest
    if pkg.exists():
        shutil.rmtree(pkg)
    tmp = dest / "onnxruntime.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(installed(), tmp, ignore=shutil.ignore_patterns("__pycache__"))
    (so,) = tmp.glob(LIB)
    lib = bytearray(so.read_bytes())
    patch(lib)
    so.write_bytes(bytes(lib))
    (tmp / ".avx2").write_text("MLAS dispatch: AVX2 (AVX-VNNI and AVX-512 branches skipped)\n")
    tmp.rename(pkg)
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    print(make(Path(sys.argv[1])))
