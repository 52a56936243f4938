"""The machine a benchmark ran on, for its table: CPU model and integer-dot-product features."""

from __future__ import annotations

import os
import sys


def describe() -> str:
    """'AMD EPYC (avx2, avx512f, avx512_vnni), 2 cores, python 3.11.9'."""
    from ..kernels.tvm.target import cpu_flags
    from ..kernels.cache import cpu_name
    feats = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp",
                         "i8mm") if f in cpu_flags()]
    return (f"{cpu_name()} ({', '.join(feats) or 'no AVX2'}), {os.cpu_count()} cores, "
            f"python {sys.version.split()[0]}")
