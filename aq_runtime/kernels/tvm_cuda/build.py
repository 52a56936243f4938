"""Compiling a graph for the tvm-cuda backend: one PrimFunc per distinct layer signature
(kernels/tvm_cuda/compute.py), scheduled (schedule.py), compiled into one module for
`cuda` (host code for generic x86-64 `llvm`), or for `llvm` alone (gpu=False: the same loops
on the CPU, used by the tests where there is no GPU). Modules are cached on disk keyed by the
signatures, the target and the TVM version, so a module compiled on a build machine (which needs
apache-tvm's compiler but no GPU) can be copied into $AQ_CACHE_DIR/tvm of a GPU machine that has
only TVM's runtime libraries: `python -m aq_runtime.kernels.tvm_cuda.build model.aqz`."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from ...ir.graph import Graph
from ..tvm_runtime import cache_dir, lib_dir, load_module, save_module, tvm_version
from .compute import out_tile, prim_func, signature
from .schedule import schedule

BUILD_ARCH = "sm_80"  # the CUDA codegen's target; machine code is made at load for the GPU
SCHEDULE_VERSION = 2  # part of the cache key: a changed compute or schedule compiles anew


def plan(graph: Graph) -> tuple[dict[str, str], dict[tuple, str]]:
    """(node name -> function name, signature -> function name)."""
    shapes = {name: t.shape for name, t in graph.tensors.items()}
    by_sig: dict[tuple, str] = {}
    names: dict[str, str] = {}
    for node in graph.nodes:
        sig = signature(node, [shapes[t] for t in node.inputs])
        if sig not in by_sig:
            by_sig[sig] = f"f{len(by_sig)}_{node.op}"
        names[node.name] = by_sig[sig]
    return names, by_sig


def module_path(by_sig: dict[tuple, str], gpu: bool) -> Path:
    text = repr(sorted((name, sig) for sig, name in by_sig.items()))
    key = hashlib.sha256(f"{text}|{gpu}|{BUILD_ARCH}|{SCHEDULE_VERSION}|{tvm_version()}"
                         .encode()).hexdigest()[:20]
    return cache_dir() / f"graph_{'cuda' if gpu else 'llvm'}_{key}.so"


def compile_module(by_sig: dict[tuple, str], gpu: bool) -> Any:
    import tvm
    funcs = {name: schedule(prim_func(sig, name), gpu, out_tile(sig))
             for sig, name in by_sig.items()}
    target = (tvm.target.Target({"kind": "cuda", "arch": BUILD_ARCH}, host={"kind": "llvm"})
              if gpu else tvm.target.Target({"kind": "llvm"}))
    return tvm.compile(tvm.IRModule(funcs), target=target)


def load_or_build(graph: Graph, gpu: bool = True) -> tuple[Any, dict[str, str]]:
    """The graph's compiled module (cache, else compiled and cached) and node -> function."""
    names, by_sig = plan(graph)
    path = module_path(by_sig, gpu)
    if gpu:
        from .nvcc import register_compiler
        register_compiler()
    if path.is_file():
        return load_module(path, cuda=gpu), names
    if not (lib_dir() / "libtvm_compiler.so").is_file():
        raise RuntimeError(f"no compiled tvm-cuda module for this model in {path.parent}, and "
                           "compiling one needs the full apache-tvm package")
    lib = compile_module(by_sig, gpu)
    if save_module(lib, path):
        return load_module(path, cuda=gpu), names
    return lib, names


def prebuild(graph: Graph, archs: tuple[str, ...] = ()) -> Path:
    """Compile the graph's CUDA module into the cache (no GPU needed); returns its path. With
    `archs` (sm_XY), also compile its cubins for those GPUs, so the GPU machine needs no nvcc."""
    _, by_sig = plan(graph)
    path = module_path(by_sig, True)
    if path.is_file() and not archs:
        return path
    lib = compile_module(by_sig, True)
    if not path.is_file() and not save_module(lib, path):
        raise RuntimeError("could not write the module (a C compiler is needed to link it)")
    if archs:
        from .nvcc import compile_cubin
        src = lib.mod.imports[0].inspect_source()
        for arch in archs:
            compile_cubin(src, arch)
    return path


def main(argv: list[str] | None = None) -> int:
    """Compile a model's tvm-cuda module into the cache (no GPU needed)."""
    p = argparse.ArgumentParser(prog="python -m aq_runtime.kernels.tvm_cuda.build",
                                description=main.__doc__)
    p.add_argument("model", help=".aqz file")
    p.add_argument("--arch", nargs="*", default=[],
                   help="also compile cubins for these GPUs (e.g. sm_90), so the GPU machine "
                        "needs no nvcc")
    a = p.parse_args(argv)
    from ... import AqError
    from ...format.reader import read_aqz
    try:
        graph = read_aqz(a.model)
    except AqError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        path = prebuild(graph, tuple(a.arch))
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{path} ({len(plan(graph)[1])} kernels for {len(graph.nodes)} nodes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
