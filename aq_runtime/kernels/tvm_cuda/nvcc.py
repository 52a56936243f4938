"""Compiling the CUDA source of a TVM module for the GPU at hand. TVM 0.27 keeps CUDA C in a
compiled module and turns it into machine code when the module is loaded, through the global
callback `tvm_callback_cuda_compile`; this module registers one that runs `nvcc --cubin` for the
device's compute capability and keeps each cubin on disk (keyed by the source and the
architecture), so a second process loads without compiling. It needs only `tvm_ffi` and nvcc."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from ...files import write_atomic_bytes
from ..tvm_runtime import cache_dir


def find_nvcc() -> str | None:
    for cand in (shutil.which("nvcc"), os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"),
                                                    "bin", "nvcc")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


@lru_cache(maxsize=1)
def device_arch() -> str:
    """sm_XY of GPU 0 (through torch), or $AQ_CUDA_ARCH when set."""
    env = os.environ.get("AQ_CUDA_ARCH")
    if env:
        return env
    import torch
    major, minor = torch.cuda.get_device_capability(0)
    return f"sm_{major}{minor}"


def compile_cubin(code: str, arch: str) -> bytes:
    """CUDA C -> cubin for `arch` (sm_XY), cached on disk."""
    key = hashlib.sha256(f"{arch}\n{code}".encode()).hexdigest()[:24]
    path = cache_dir() / "cubin" / f"{key}_{arch}.cubin"
    if path.is_file():
        return path.read_bytes()
    nvcc = find_nvcc()
    if nvcc is None:
        raise RuntimeError("compiling the tvm-cuda kernels needs nvcc (the CUDA toolkit)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "kernels.cu", Path(tmp) / "kernels.cubin"
        src.write_text(code)
        r = subprocess.run([nvcc, "--cubin", f"-arch={arch}", "-O3", "-o", str(out), str(src)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"nvcc failed: {r.stderr.strip()[-2000:]}")
        data = out.read_bytes()
    write_atomic_bytes(path, data)
    return data


@lru_cache(maxsize=1)
def register_compiler() -> None:
    """Make TVM's CUDA runtime compile through `compile_cubin` (replacing TVM's own callback,
    which needs the full compiler package)."""
    import tvm_ffi

    def _compile(code, *_):
        return compile_cubin(str(code), device_arch())

    tvm_ffi.register_global_func("tvm_callback_cuda_compile", _compile, override=True)
