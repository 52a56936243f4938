"""The instruction set the TVM CPU kernels are built for, chosen from the CPU features detected
at run time (never assumed), and its LLVM target. The integer semantics do not change with it
(docs/SEMANTICS.md); only the u8 x s8 dot product of the GEMM microkernel does (dot.py):

- avx512_vnni: `vpdpbusd` on 512-bit vectors (x86-64-v4 + VNNI);
- avx_vnni: the VEX `vpdpbusd` on 256-bit vectors (x86-64-v3 + AVX-VNNI: Alder Lake, Zen 5
  client...);
- avx2: `vpmaddubsw` + `vpmaddwd` on 256-bit vectors (x86-64-v3: Haswell on, Zen 1-3): exact
  because it takes only weight codes of magnitude <= 64 (a pair of u8 x s8 products never
  leaves int16); wider codes go as int16 to `vpmaddwd` alone (ops.digit_rows);
- neon_dot: aarch64 `sdot` on activations with the top bit flipped (the dot product's
  column offsets go into the bias: dot.column_offsets), for ARMv8.2+ CPUs with the dot-product
  extension (Graviton 2+, Ampere, Apple M, Cortex-A76+): kernels compiled on x86 by
  `aq-compile --target aarch64`.

`AQ_TVM_ISA` picks one the CPU supports (the tests run every supported one); the default is the
fastest. `x86-64-v3`/`v4` are LLVM's AVX2/AVX-512 baselines; VNNI is added as a feature, so the
code runs on any CPU with those features whatever name LLVM gives it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from ... import AqError

X86_ISAS = ("avx512_vnni", "avx_vnni", "avx2")  # fastest first
ISAS = (*X86_ISAS, "neon_dot")
NEEDS = {"avx512_vnni": ("avx512f", "avx512bw", "avx512vl", "avx512_vnni"),
         "avx_vnni": ("avx2", "fma", "avx_vnni"),
         "avx2": ("avx2", "fma"),
         "neon_dot": ("asimd", "asimddp")}
HWCAP_ASIMD, HWCAP_ASIMDDP = 1 << 1, 1 << 20  # Linux aarch64 AT_HWCAP bits
TARGETS = {"avx512_vnni": ("x86-64-v4", ["+avx512vnni"]),
           "avx_vnni": ("x86-64-v3", ["+avxvnni"]),
           "avx2": ("x86-64-v3", [])}
AARCH64 = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "generic",
           "mattr": ["+neon", "+dotprod"]}


# the features this package asks about, as /proc/cpuinfo names them -> LLVM's name
LLVM_NAMES = {"avx2": "avx2", "fma": "fma", "avx512f": "avx512f", "avx512bw": "avx512bw",
              "avx512vl": "avx512vl", "avx512_vnni": "avx512vnni", "avx_vnni": "avxvnni",
              "amx_int8": "amx-int8", "asimddp": "dotprod", "i8mm": "i8mm"}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU features this process can execute, named as /proc/cpuinfo names them: LLVM's
    host detection (CPUID and the register state the OS enables, what numba, ONNX Runtime and
    PyTorch also go by), else /proc/cpuinfo's flags (the kernel's view). The two differ under
    an emulator: valgrind runs an AVX2-only CPU (LLVM: haswell) on any x86-64 host while
    /proc/cpuinfo still lists the host's AVX-512. On aarch64 Linux: the kernel's AT_HWCAP bits
    (what the CPU, or qemu's emulated one, offers; /proc/cpuinfo is the host's under qemu)."""
    import platform
    if platform.machine() in ("aarch64", "arm64") and platform.system() == "Linux":
        import ctypes
        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        hw = libc.getauxval(16)  # AT_HWCAP
        return frozenset(f for f, bit in (("asimd", HWCAP_ASIMD), ("asimddp", HWCAP_ASIMDDP))
                         if hw & bit)
    try:
        import llvmlite.binding as llvm
        have = llvm.get_host_cpu_features()
    except Exception:  # LLVM cannot tell on this platform
        have = None
    if have:
        return frozenset(f for f, name in LLVM_NAMES.items() if have.get(name, False))
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):  # x86 / ARM
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def supported_isas() -> list[str]:
    """The instruction sets this CPU runs, fastest first."""
    return [i for i in ISAS if all(f in cpu_flags() for f in NEEDS[i])]


def missing_features() -> list[str]:
    """What the CPU lacks for the slowest kernels (x86: AVX2 + FMA; aarch64: the dot-product
    extension); empty when tvm can run."""
    import platform
    least = "neon_dot" if platform.machine() in ("aarch64", "arm64") else "avx2"
    return [] if supported_isas() else [f for f in NEEDS[least] if f not in cpu_flags()]


_chosen: list[str] = []  # set by use_isa (collecting another target's kernels) and by
# kernels compiled ahead (the process then runs the instruction set they were built for)


@lru_cache(maxsize=1)
def _default_isa() -> str:
    have = supported_isas()
    want = os.environ.get("AQ_TVM_ISA", "").strip()
    if want:
        if want not in have:
            raise AqError(f"AQ_TVM_ISA={want}: not an instruction set this CPU runs "
                          f"({', '.join(have) or 'none of ' + ', '.join(X86_ISAS)})")
        return want
    if not have:
        raise AqError(f"the tvm kernels need AVX2 and FMA, or aarch64's dot product (missing: "
                      f"{', '.join(missing_features())})")
    return have[0]


def isa() -> str:
    """The instruction set of this process's kernels: the one use_isa or kernels compiled
    ahead chose, else $AQ_TVM_ISA, else the fastest supported."""
    return _chosen[-1] if _chosen else _default_isa()


@contextmanager
def use_isa(name: str) -> Iterator[None]:
    """Within the block, isa() is `name` (any of ISAS, whether this CPU runs it or not: for
    preparing another target's kernels, never for running them)."""
    if name not in ISAS:
        raise AqError(f"unknown instruction set {name!r} (one of {', '.join(ISAS)})")
    _chosen.append(name)
    try:
        yield
    finally:
        _chosen.pop()


def run_isa(name: str) -> None:
    """From now on this process runs `name`'s kernels (kernels compiled ahead for it)."""
    if _chosen and _chosen[0] != name:
        raise AqError(f"this process already runs {_chosen[0]} kernels, not {name}")
    if not _chosen:
        _chosen.append(name)


def llvm_target(name: str | None = None) -> dict:
    """Target as a dict (TVM 0.27) for instruction set `name` (default: this process's), for
    the 2..N cores of this machine (num-cores: the parallel loop splits over this many)."""
    name = name or isa()
    if name == "neon_dot":
        return dict(AARCH64, **{"num-cores": os.cpu_count() or 1})
    mcpu, mattr = TARGETS[name]
    return {"kind": "llvm", "mcpu": mcpu, "mattr": list(mattr), "num-cores": os.cpu_count() or 1}


def target_key(name: str | None = None) -> str:
    t = llvm_target(name)
    return "-".join([t.get("mtriple", "x86_64").split("-")[0], t["mcpu"],
                     *(a.strip("+") for a in t["mattr"])])
