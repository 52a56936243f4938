"""Kernels compiled ahead (`aq-compile`): one model's tvm kernels, built once per instruction
set into one shared library each, and all of them into one kernels file, bound to the model
by its digest. A deployment machine loads the part for its CPU with the TVM FFI runtime alone
(apache-tvm-ffi): no compiler, no libtvm_runtime.so (the parallel loops run on pool.c, linked
into each library), nothing compiled on the first prediction.

The kernels file is a zip archive (it holds machine code: load only kernels files you built;
the `.aqz` stays data only):
- `kernels.json`: {"format": "aq-kernels", "version": 1, "model": the model's digest,
  "kernel_version": compiled.VERSION, "tvm": the compiler's version, "targets": {instruction
  set: {"file", "sha256", "bytes", "symbols": {kernel name: symbol}}}};
- one `<instruction set>.so` per target.

Which kernels a model needs is found by walking its plan once per instruction set with
`compiled.collecting()` (kernels recorded, not run) and `choice.dry_run()` (every candidate
kernel prepared); kernel names hold shapes but not the batch size, so one file serves every
batch."""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ... import AqError
from ...ir.graph import Graph
from ...files import atomic_path, write_atomic_bytes
from ..cache import cache_root
from . import compiled
from ..tvm_runtime import cpu_threads, tvm_version
from .target import ISAS, llvm_target, run_isa, supported_isas, use_isa

FORMAT, FORMAT_VERSION = "aq-kernels", 1
MANIFEST = "kernels.json"
MAX_MANIFEST = 16 << 20
MAX_LIBRARY = 512 << 20
# aq-compile's --target names -> instruction sets (target.py)
TARGET_NAMES = {"avx512-vnni": "avx512_vnni", "avx-vnni": "avx_vnni", "avx2": "avx2",
                "aarch64": "neon_dot"}
# the C compiler (and linker) of each instruction set's libraries: $CC for this machine's,
# Debian's cross compiler for aarch64 (gcc-aarch64-linux-gnu)
CC = {"neon_dot": ("AQ_AARCH64_CC", "aarch64-linux-gnu-gcc")}


def resolve_targets(names: list[str]) -> list[str]:
    """--target values -> instruction sets: 'native' is every one this CPU runs."""
    out: list[str] = []
    for n in names:
        if n == "native":
            isas = supported_isas()
            if not isas:
                raise AqError("--target native: this CPU runs none of the tvm kernels' "
                              "instruction sets (they need AVX2 and FMA)")
        elif n in TARGET_NAMES:
            isas = [TARGET_NAMES[n]]
        else:
            raise AqError(f"unknown --target {n!r} (native, {', '.join(TARGET_NAMES)})")
        out += [i for i in isas if i not in out]
    return out


def collect(graph: Graph, isa: str) -> dict[str, Any]:
    """name -> PrimFunc of every kernel the tvm backend prepares for `graph` on `isa`."""
    from ...kernels.executor import execute
    from .. import choice
    from .ops import TvmCpuOps

    c, h, w = graph.tensors[graph.input].shape
    with use_isa(isa), compiled.collecting() as found, choice.dry_run():
        ops = TvmCpuOps(graph)  # made within use_isa: its kernels are `isa`'s
        execute(graph, ops, ops.from_images(np.zeros((1, h, w, c), np.uint8)))
    return found


def _symbols(names: list[str]) -> dict[str, str]:
    """Kernel names -> C symbols (distinct)."""
    out: dict[str, str] = {}
    for i, n in enumerate(sorted(names)):
        out[n] = f"aqk{i}_" + re.sub(r"\W", "_", n)
    return out


def _c_compiler(isa: str) -> str:
    """The C compiler of `isa`'s libraries (CC): it compiles the thread pool, and TVM links
    the library with it."""
    var, default = CC.get(isa, ("CC", "gcc"))
    cc = os.environ.get(var) or default
    if not shutil.which(cc):
        hint = " (Debian: apt-get install gcc-aarch64-linux-gnu)" if isa == "neon_dot" else ""
        raise AqError(f"aq-compile needs a C compiler ({cc}) to link the {isa} kernels{hint}")
    return cc


def build_library(found: dict[str, Any], isa: str, path: str) -> dict[str, str]:
    """Compile the kernels `found` for `isa` into the shared library `path`, with the thread
    pool linked in; returns name -> symbol."""
    import tvm

    syms = _symbols(list(found))
    mod = tvm.IRModule({s: found[n].with_attr("global_symbol", s) for n, s in syms.items()})
    target = llvm_target(isa)
    target.pop("num-cores", None)  # the deployment machine's core count is not known here
    lib = tvm.compile(mod, target=tvm.target.Target(target))
    pool = path + ".pool.o"
    cc = _c_compiler(isa)
    try:
        subprocess.run([cc, "-c", "-O2", "-fPIC", "-std=c11", "-o", pool,
                        str(Path(__file__).with_name("pool.c"))],
                       check=True, capture_output=True, text=True)
        lib.export_library(path, addons=[pool], options=["-pthread"], cc=cc)
    except subprocess.CalledProcessError as e:
        raise AqError(f"compiling the thread pool failed: {e.stderr.strip()[:200]}") from None
    except Exception as e:  # the linker failed
        raise AqError(f"linking the {isa} kernels failed: {str(e).strip().splitlines()[-1]}"
                      ) from None
    return syms


def compile_kernels(graph: Graph, isas: list[str], out: str | Path,
                    progress: Any = None) -> dict:
    """Write the kernels file `out` for `graph`, one library per instruction set in `isas`;
    returns its manifest. `progress(isa, stage)` is told what is being done."""
    from ...optional import import_optional
    import_optional("tvm", "aq-compile (the TVM compiler)")
    for isa in isas:  # before minutes of work
        _c_compiler(isa)
    targets = {}
    with tempfile.TemporaryDirectory(prefix="aq-compile-") as tmp:
        libs = {}
        for isa in isas:
            if progress:
                progress(isa, "collecting")
            found = collect(graph, isa)
            if progress:
                progress(isa, f"compiling {len(found)} kernels")
            so = os.path.join(tmp, f"{isa}.so")
            syms = build_library(found, isa, so)
            data = Path(so).read_bytes()
            libs[isa] = data
            targets[isa] = {"file": f"{isa}.so", "sha256": hashlib.sha256(data).hexdigest(),
                            "bytes": len(data), "symbols": syms}
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "model": graph.digest(),
                    "kernel_version": compiled.VERSION, "tvm": tvm_version(),
                    "targets": targets}
        with atomic_path(out, suffix=".kernels") as t, zipfile.ZipFile(t, "w") as z:
            z.writestr(MANIFEST, json.dumps(manifest, indent=1))
            for isa, data in libs.items():
                z.writestr(targets[isa]["file"], data, compress_type=zipfile.ZIP_DEFLATED)
    return manifest


def _bad(path: str, why: str) -> AqError:
    return AqError(f"{path}: {why}")


def read_manifest(path: str | Path, data: bytes | None = None
                  ) -> tuple[dict, zipfile.ZipFile]:
    """The validated manifest of kernels file `path` and the open archive. `data`: the file's
    bytes, already read (then `path` only names it in errors)."""
    p = str(path)
    if data is None and not os.path.isfile(p):
        raise _bad(p, "no such file")
    try:
        z = zipfile.ZipFile(p if data is None else io.BytesIO(data))
        info = z.getinfo(MANIFEST)
        if info.file_size > MAX_MANIFEST:
            raise _bad(p, f"{MANIFEST} too large")
        m = json.loads(z.read(MANIFEST))
    except AqError:
        raise
    except KeyError:
        raise _bad(p, f"not a kernels file (no {MANIFEST})") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zipfile.LargeZipFile) as e:
        raise _bad(p, f"not a kernels file, or truncated ({str(e).splitlines()[0]})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise _bad(p, "not a kernels file (format)")
    if m.get("version") != FORMAT_VERSION:
        raise _bad(p, f"kernels file version {m.get('version')!r}, this aq_runtime reads "
                      f"{FORMAT_VERSION}: run aq-compile again")
    if m.get("kernel_version") != compiled.VERSION:
        raise _bad(p, "compiled from other kernel code than this aq_runtime's: run aq-compile "
                      "again")
    targets = m.get("targets")
    ok = isinstance(targets, dict) and targets and all(
        isa in ISAS and isinstance(t, dict) and isinstance(t.get("file"), str)
        and isinstance(t.get("sha256"), str) and isinstance(t.get("bytes"), int)
        and isinstance(t.get("symbols"), dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in t["symbols"].items())
        for isa, t in targets.items())
    if not ok or not isinstance(m.get("model"), str):
        raise _bad(p, "not a kernels file (manifest fields)")
    return m, z


def pick_target(m: dict) -> str | None:
    """The instruction set of the file's kernels this CPU runs best ($AQ_TVM_ISA first if
    set); None if it runs none of them."""
    have = supported_isas()
    want = os.environ.get("AQ_TVM_ISA", "").strip()
    for isa in ([want] if want else []) + have:
        if isa in m["targets"] and isa in have:
            return isa
    return None


# the context pointers of a TVM library -> the pool.c function each is pointed at
POOL = {"__TVMBackendParallelLaunch": "aq_parallel_launch",
        "__TVMBackendParallelBarrier": "aq_parallel_barrier",
        "__TVMBackendAllocWorkspace": "aq_alloc_workspace",
        "__TVMBackendFreeWorkspace": "aq_free_workspace"}
_pool: dict[str, int] = {}  # pointer -> address in the first library loaded: one pool a process


def _attach_pool(path: str) -> None:
    """Point library `path`'s context pointers at the process's pool (started, from this
    library, on first use: one thread per core unless TVM_NUM_THREADS says otherwise)."""
    so = ctypes.CDLL(path)  # the library tvm_ffi loaded: the same handle
    if not _pool:
        so.aq_pool_start(int(os.environ.get("TVM_NUM_THREADS") or cpu_threads()))
        _pool.update({p: ctypes.cast(getattr(so, f), ctypes.c_void_p).value
                      for p, f in POOL.items()})
    for pointer, address in _pool.items():
        try:
            ctypes.c_void_p.in_dll(so, pointer).value = address
        except ValueError:  # this library's kernels never call it
            pass


def load_kernels(path: str | Path, graph: Graph) -> str:
    """Install the kernels of file `path` for this CPU into the tvm backend; returns their
    instruction set. One-line AqError for a file of another model, a truncated or altered
    file, or one with no target this CPU runs."""
    p = str(path)
    m, z = read_manifest(p)
    with z:
        if m["model"] != graph.digest():
            raise _bad(p, "kernels of another model (compiled for model "
                          f"{m['model'][:12]}, this one is {graph.digest()[:12]})")
        isa = pick_target(m)
        if isa is None:
            raise _bad(p, f"no kernels this CPU runs (the file has {', '.join(m['targets'])}; "
                          f"this CPU runs {', '.join(supported_isas()) or 'none'})")
        t = m["targets"][isa]
        try:
            if max(t["bytes"], z.getinfo(t["file"]).file_size) > MAX_LIBRARY:
                raise _bad(p, f"{t['file']}: too large")
            data = z.read(t["file"])
        except KeyError:
            raise _bad(p, f"{t['file']}: missing") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise _bad(p, f"{t['file']}: unreadable ({str(e).splitlines()[0]})") from None
    if len(data) != t["bytes"] or hashlib.sha256(data).hexdigest() != t["sha256"]:
        raise _bad(p, f"{t['file']}: checksum mismatch (altered or truncated)")
    lib = cache_root() / "kernels" / f"{t['sha256']}.so"  # content-addressed: same bytes
    if not lib.is_file():
        lib.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_bytes(lib, data)
    run_isa(isa)
    import tvm_ffi
    mod = tvm_ffi.load_module(str(lib))
    _attach_pool(str(lib))
    compiled.install_ahead({name: mod[sym] for name, sym in t["symbols"].items()}, p)
    return isa
