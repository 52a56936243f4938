"""TVM's runtime, shared by both TVM backends (tvm/, tvm_cuda/): where compiled modules live
on disk (`~/.cache/aq_runtime/tvm`, or $AQ_CACHE_DIR/tvm), how they are saved (atomically) and
loaded, and the threads TVM's pool gets. Loading needs TVM's FFI and runtime libraries only
(`libtvm_runtime.so`, plus `libtvm_runtime_cuda.so` for CUDA modules): `import tvm`, which
loads LLVM and the compiler (~2 s, 260 MB), is needed only to compile, so a deployment machine
can run modules compiled elsewhere."""

from __future__ import annotations

import ctypes
import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..files import atomic_path
from ..optional import installed


def cache_dir() -> Path:
    """$AQ_CACHE_DIR, else ~/.cache/aq_runtime (XDG_CACHE_HOME respected), + /tvm."""
    from .cache import cache_root
    return cache_root() / "tvm"


@lru_cache(maxsize=1)
def tvm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("apache-tvm")
    except PackageNotFoundError:
        return "unknown"


def lib_dir() -> Path:
    spec = importlib.util.find_spec("tvm")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("apache-tvm is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "lib"


def has_lib(name: str) -> bool:
    """Whether apache-tvm's library `name` is installed (checked without importing tvm)."""
    return installed("tvm") and (lib_dir() / name).is_file()


def cpu_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads() -> None:
    """Before TVM's thread pool exists: one thread per core unless the user chose."""
    os.environ.setdefault("TVM_NUM_THREADS", str(cpu_threads()))


@lru_cache(maxsize=2)
def load_runtime(cuda: bool = False) -> None:
    """Load libtvm_runtime (and its CUDA part) globally: compiled modules call into them.
    TVM's thread pool gets one thread per core unless TVM_NUM_THREADS says otherwise: left to
    itself it guesses half the cores (hyper-threads) and a parallel launch then costs ~6 us
    instead of ~1 us (measured on the 2-core machine)."""
    set_threads()
    import tvm_ffi  # noqa: F401  (loads libtvm_ffi first)
    ctypes.CDLL(str(lib_dir() / "libtvm_runtime.so"), mode=ctypes.RTLD_GLOBAL)
    if cuda:
        _load_cudart()
        ctypes.CDLL(str(lib_dir() / "libtvm_runtime_cuda.so"), mode=ctypes.RTLD_GLOBAL)


def _load_cudart() -> None:
    """TVM's CUDA runtime links libcudart.so.13: take the system's, else the CUDA toolkit's,
    else the copy that PyTorch's CUDA wheels ship (site-packages/nvidia/.../lib)."""
    import glob
    import sys
    name = "libcudart.so.13"
    places = [name]
    home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    places += [os.path.join(home, d, name) for d in ("lib64", "lib")]
    for sp in sys.path:
        places += sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib", name)))
        places += sorted(glob.glob(os.path.join(sp, "nvidia", "cu*", "lib", name)))
    for place in places:
        try:
            ctypes.CDLL(place, mode=ctypes.RTLD_GLOBAL)
            return
        except OSError:
            continue


def load_module(path: Path, cuda: bool = False) -> Any:
    import tvm_ffi
    load_runtime(cuda)
    return tvm_ffi.load_module(str(path))


def save_module(lib: Any, path: Path) -> bool:
    """Export a compiled module to `path` atomically (temp file + rename). The cache is an
    optimization: without a C toolchain to link the .so it is skipped (returns False)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".so") as tmp:
            lib.export_library(tmp)
        return True
    except Exception:
        return False
