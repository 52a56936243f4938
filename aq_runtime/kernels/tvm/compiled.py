"""Compiled TIR kernels of the tvm CPU backend, one per name: built for this CPU's LLVM target
on first use (about 0.1 s each), kept in memory and on disk (`~/.cache/aq_runtime/tvm`, or
$AQ_CACHE_DIR/tvm; the file name holds the kernel's name, the target and TVM's version), so a
second process only loads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .runtime_lib import cache_dir, load_module, save_module, set_threads, tvm_version
from .target import llvm_target, target_key

_mem: dict[str, Any] = {}
VERSION = 28  # bump when a kernel's code changes: cached files of older code are not loaded


def kernel_path(name: str) -> Path:
    return cache_dir() / f"{name}_v{VERSION}_{target_key()}_tvm{tvm_version()}.so"


def _load_or_build(name: str, make: Callable[[], Any]) -> Any:
    path = kernel_path(name)
    if path.is_file():
        try:
            return load_module(path)
        except Exception:  # a stale or foreign file: rebuild it
            pass
    set_threads()
    import tvm
    lib = tvm.compile(tvm.IRModule({"main": make()}), target=llvm_target())
    save_module(lib, path)
    return lib


def kernel(name: str, make: Callable[[], Any]) -> Callable[..., None]:
    """The compiled function `name` (every distinct shape has its own name); `make` returns its
    PrimFunc (global symbol "main") when it has to be built."""
    if name not in _mem:
        _mem[name] = _load_or_build(name, make)
    return _mem[name]["main"]
