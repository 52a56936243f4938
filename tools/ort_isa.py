"""ONNX Runtime's AVX2 or AVX-VNNI kernels on a CPU that also has AVX-512, for the benchmarks: a
copy of the installed onnxruntime package in which MLAS's platform init (the CPUID dispatch of
onnxruntime/core/mlas/lib/platform.cpp) skips its AVX-512 branch, and for AVX2 its AVX-VNNI
branch too: conditional jumps made unconditional. ONNX Runtime then runs exactly the kernels a
CPU with only those instruction sets runs. For AVX2 this is checked: its int8 models give the
same logits, bit for bit, as the unpatched package under valgrind's AVX2-only emulation, on
every held-out crop, the saturating `vpmaddubsw` included (tools/avx2_emulated.py).
ONNX Runtime has no switch for this, and CPUID cannot be masked in this VM. Nothing installed
is modified and the package never imports this; timings with it are ONNX Runtime's code for
that instruction set on this CPU's cores (as the tvm rows of that set are ours), not the
timings of a CPU that lacks AVX-512.

    python tools/ort_isa.py avx2|avx_vnni DEST   # writes DEST/onnxruntime; PYTHONPATH=DEST
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

LIB = "capi/onnxruntime_pybind11_state*.so"
MARK = ".isa"  # in the copy: the instruction set it dispatches to
JE, JMP = 0x74, 0xEB  # je rel8 -> jmp rel8
# (before, after) the `je` to make a `jmp`, as onnxruntime 1.32's MLAS init is compiled:
# cpuid(7, 1); test $0x10,%al (EAX bit 4: AVX-VNNI); je <no AVX-VNNI kernels>
# test $0x10000,%r10d (CPUID 7 EBX bit 16: AVX512F); je <no AVX-512 kernels>;
#   mov %r8,%rax; not %rax; test $0xe0,%al (XCR0: the OS saves the AVX-512 state)
BRANCHES = {"AVX-VNNI": (bytes.fromhex("0fa2a810"), b""),
            "AVX-512": (bytes.fromhex("41f7c200000100"), bytes.fromhex("4c89c048f7d0a8e0"))}
SKIP = {"avx2": ("AVX-VNNI", "AVX-512"), "avx_vnni": ("AVX-512",)}


def installed() -> Path:
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("ort_isa: onnxruntime is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def patch(lib: bytearray, isa: str) -> None:
    """Turn the `je` of each branch that `isa` lacks into `jmp`, in place; each pattern must
    occur exactly once."""
    for name in SKIP[isa]:
        before, after = BRANCHES[name]
        pat = re.escape(before) + bytes([JE]) + b"." + re.escape(after)
        hits = [m.start() + len(before) for m in re.finditer(pat, lib, re.DOTALL)]
        if len(hits) != 1:
            raise SystemExit(f"ort_isa: MLAS's {name} dispatch not recognised in this "
                             f"onnxruntime build ({len(hits)} matches; written for 1.32)")
        lib[hits[0]] = JMP


def make(dest: Path, isa: str = "avx2") -> Path:
    """dest/onnxruntime: the copy that dispatches to `isa` (made once, reused when there).
    Returns dest, the folder to put first on PYTHONPATH."""
    if isa not in SKIP:
        raise SystemExit(f"ort_isa: {isa!r} is not one of {', '.join(SKIP)}")
    dest = Path(dest)
    pkg = dest / "onnxruntime"
    if (pkg / MARK).is_file() and (pkg / MARK).read_text().strip() == isa:
        return dest
    for d in (pkg, dest / "onnxruntime.tmp"):
        if d.exists():
            shutil.rmtree(d)
    tmp = dest / "onnxruntime.tmp"
    shutil.copytree(installed(), tmp, ignore=shutil.ignore_patterns("__pycache__"))
    (so,) = tmp.glob(LIB)
    lib = bytearray(so.read_bytes())
    patch(lib, isa)
    so.write_bytes(bytes(lib))
    (tmp / MARK).write_text(isa + "\n")
    tmp.rename(pkg)
    return dest


def dispatch() -> str | None:
    """The instruction set the imported onnxruntime was made to dispatch to (None: as built)."""
    import onnxruntime
    mark = Path(onnxruntime.__file__).parent / MARK
    return mark.read_text().strip() if mark.is_file() else None


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    print(make(Path(sys.argv[2]), sys.argv[1]))
