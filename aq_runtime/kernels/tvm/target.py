"""The LLVM target of the TVM CPU kernels, built from the CPU features detected at run time
(never assumed): the microkernel needs AVX-512 VNNI (`vpdpbusd`, exact u8 x s8 -> s32 dot
products). `x86-64-v4` is the AVX-512 baseline; VNNI is added as a feature, so the code runs on
any AVX-512 VNNI CPU whatever name LLVM gives it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def missing_features() -> list[str]:
    need = ("avx512f", "avx512bw", "avx512vl", "avx512_vnni")
    return [f for f in need if f not in cpu_flags()]


def llvm_target() -> dict:
    """Target as a dict (TVM 0.27), for the 2..N cores of this machine."""
    import os
    # num-cores: the parallel loop splits over this many workers
    return {"kind": "llvm", "mcpu": "x86-64-v4", "mattr": ["+avx512vnni"],
            "num-cores": os.cpu_count() or 1}


def target_key() -> str:
    t = llvm_target()
    return f"llvm-{t['mcpu']}-{'-'.join(a.strip('+') for a in t['mattr'])}"
