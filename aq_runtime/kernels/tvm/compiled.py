"""Compiled TIR kernels of the tvm CPU backend, one per name, from one of three places: kernels
compiled ahead (`aq-compile`, installed here by ahead.py: no compiler needed), the disk cache
(`~/.cache/aq_runtime/tvm`, or $AQ_CACHE_DIR/tvm; the file name holds the kernel's name, the
target and TVM's version), or built for this CPU's LLVM target on first use (about 0.1 s each,
with apache-tvm) and saved to that cache, so a second process only loads them. While
`collecting()`, kernels are recorded (name -> PrimFunc) for aq-compile instead of built."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ... import AqError
from ...optional import installed
from ..tvm_runtime import cache_dir, load_module, save_module, set_threads, tvm_version
from .target import llvm_target, target_key

_mem: dict[str, Callable[..., None]] = {}
_ahead: dict[str, Any] = {}  # the kernels file loaded ahead: its path; whether a kernel it
# lacks was compiled here (said once)
_collect: list[dict[str, Any]] = []
VERSION = 28  # bump when a kernel's code changes: cached files of older code are not loaded


def kernel_path(name: str) -> Path:
    return cache_dir() / f"{name}_v{VERSION}_{target_key()}_tvm{tvm_version()}.so"


def _load_or_build(name: str, make: Callable[[], Any]) -> Callable[..., None]:
    if _ahead:
        if not installed("tvm"):
            raise AqError(f"{_ahead['path']}: has no kernel {name} for this model, and "
                          "apache-tvm is not installed to compile it: run aq-compile again")
        if not _ahead.get("compiled"):
            print(f"note: {_ahead['path']} has no kernel {name} (made for another version of "
                  "this model's plan?): compiling the missing kernels here", file=sys.stderr)
            _ahead["compiled"] = True
    path = kernel_path(name)
    if path.is_file():
        try:
            return load_module(path)["main"]
        except Exception:  # a stale or foreign file: rebuild it
            pass
    set_threads()
    import tvm
    lib = tvm.compile(tvm.IRModule({"main": make()}), target=llvm_target())
    save_module(lib, path)
    return lib["main"]


def _skip(*args: Any) -> None:
    """What a kernel does while collecting: nothing (its output is never read for a result)."""


def kernel(name: str, make: Callable[[], Any]) -> Callable[..., None]:
    """The compiled function `name` (every distinct shape has its own name); `make` returns its
    PrimFunc (global symbol "main") when it has to be built."""
    if _collect:
        if name not in _collect[-1]:
            _collect[-1][name] = make()
        return _skip
    if name not in _mem:
        _mem[name] = _load_or_build(name, make)
    return _mem[name]


@contextmanager
def collecting() -> Iterator[dict[str, Any]]:
    """Within the block, kernel() records each kernel's PrimFunc under its name (the dict
    yielded) and returns a function that does nothing."""
    found: dict[str, Any] = {}
    _collect.append(found)
    try:
        yield found
    finally:
        _collect.pop()


def install_ahead(functions: dict[str, Callable[..., None]], path: str) -> None:
    """Kernels compiled ahead, by name: used before the cache and the compiler."""
    _mem.update(functions)
    _ahead["path"] = path


def ahead_loaded() -> bool:
    return bool(_ahead)
