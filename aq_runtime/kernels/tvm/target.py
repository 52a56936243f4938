"""The instruction set the TVM CPU kernels are built for, chosen from the CPU features detected
at run time (never assumed), and its LLVM target. The integer semantics do not change with it
(DESIGN §3); only the u8 x s8 dot product of the GEMM microkernel does (dot.py):

- avx512_vnni: `vpdpbusd` on 512-bit vectors (x86-64-v4 + VNNI);
- avx_vnni: the VEX `vpdpbusd` on 256-bit vectors (x86-64-v3 + AVX-VNNI: Alder Lake, Zen 5
  client...);
- avx2: `vpmaddubsw` + `vpmaddwd` on 256-bit vectors (x86-64-v3: Haswell on, Zen 1-3): exact
  because it takes only weight codes of magnitude <= 64 (a pair of u8 x s8 products never
  leaves int16); wider codes go as int16 to `vpmaddwd` alone (ops.digit_rows);
- neon_dot: aarch64 `sdot` (compiled and inspected in the tests; never run here, no ARM
  machine: not offered at run time).

`AQ_TVM_ISA` picks one the CPU supports (the tests run every supported one); the default is the
fastest. `x86-64-v3`/`v4` are LLVM's AVX2/AVX-512 baselines; VNNI is added as a feature, so the
code runs on any CPU with those features whatever name LLVM gives it."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ... import AqError

X86_ISAS = ("avx512_vnni", "avx_vnni", "avx2")  # fastest first
NEEDS = {"avx512_vnni": ("avx512f", "avx512bw", "avx512vl", "avx512_vnni"),
         "avx_vnni": ("avx2", "fma", "avx_vnni"),
         "avx2": ("avx2", "fma")}
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
    /proc/cpuinfo still lists the host's AVX-512."""
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
    """The x86 instruction sets this CPU runs, fastest first."""
    return [i for i in X86_ISAS if all(f in cpu_flags() for f in NEEDS[i])]


def missing_features() -> list[str]:
    """What the CPU lacks for the slowest kernels (AVX2 + FMA); empty when tvm can run."""
    return [] if supported_isas() else [f for f in NEEDS["avx2"] if f not in cpu_flags()]


@lru_cache(maxsize=1)
def isa() -> str:
    """The instruction set of this process's kernels: $AQ_TVM_ISA or the fastest supported."""
    have = supported_isas()
    want = os.environ.get("AQ_TVM_ISA", "").strip()
    if want:
        if want not in have:
            raise AqError(f"AQ_TVM_ISA={want}: not an instruction set this CPU runs "
                          f"({', '.join(have) or 'none of ' + ', '.join(X86_ISAS)})")
        return want
    if not have:
        raise AqError(f"the tvm kernels need AVX2 and FMA (missing: {', '.join(missing_features())})")
    return have[0]


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
