"""`aq-infer --engine ray`: predictions for a folder of images on a Ray cluster (Ray Data), with
the single machine's integers and output rows.

- The driver lists the images with the single-machine code (data.images.list_images; a URI,
  s3:// or another file system pyarrow knows, with pyarrow), splits them into shards
  (cluster/shards.py), and skips the shards an earlier run of the same command finished.
- Ray Data reads the files (`read_binary_files`, paths included); a pool of actors
  (`ActorPoolStrategy`), each with one Session, decodes them with the single-machine code
  (data.images.decode_job on the bytes) and runs the model. The model (and a kernels file) go
  through the object store once and are checked by SHA-256 in every actor; Numba's and TVM's
  threads are set to the actor's CPUs.
- Rows come back in input order (`preserve_order`); the driver writes each shard's part file
  atomically once all its rows are in, then the manifest (`_SUCCESS`: the run's model, options
  and listing, rows and error rows, shards, and every worker of this run with its node, CPU,
  CPU features, backend, instruction set and start-up seconds). Ray redoes the work of a lost worker
  or node (actor restarts, task retries); since only the driver writes, and a shard once, every
  image appears exactly once.
- Files that do not decode become error rows, never a failed job.

The integers are the same on every CPU (each node may run other kernels: AQ_TVM_ISA in its
environment), so the output equals the single machine's byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import AqError
from ..data.images import IMAGE_EXTS, list_images
from ..optional import import_optional
from . import shards

OBJECT_STORE_MB = 256  # a local Ray's object store: Ray's default takes 30% of the memory
DEFAULT_SHARD = 1000  # images per output file


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Predictor:
    """One actor of the pool: a Session on this node, fed Ray Data batches of file bytes."""

    def __init__(self, model: list, model_sha: str, kernels: list | None,
                 kernels_sha: str | None, backend: str, top_k: int, cpus: int):
        t0 = time.perf_counter()
        import ray
        os.environ["TVM_NUM_THREADS"] = str(cpus)  # before the kernels' pool starts
        import numba
        numba.set_num_threads(max(1, min(cpus, numba.config.NUMBA_NUM_THREADS)))
        from ..runtime.predict import input_spec
        from ..runtime.session import Session
        import numpy as np
        # the files are needed only until the Session has read the model and installed the
        # kernels (their libraries go to the kernel cache): removed after the first prediction
        with tempfile.TemporaryDirectory(prefix="aq-ray-") as tmp:
            files = {}
            for name, ref, sha in (("model.aqz", model, model_sha),
                                   ("model.kernels", kernels, kernels_sha)):
                if ref is None:
                    continue
                data = ray.get(ref[0])
                if _sha256(data) != sha:
                    raise AqError(f"{name}: the bytes this worker received differ from the "
                                  "driver's")
                files[name] = os.path.join(tmp, name)
                Path(files[name]).write_bytes(data)
            self.session = Session(files["model.aqz"], backend,
                                   kernels=files.get("model.kernels"))
            # one prediction now: kernels compiled or loaded before any data
            self.session.run(np.zeros((1, *self.session.input_shape), np.uint8))
        self.top_k = top_k
        self.spec = input_spec(self.session)
        from ..kernels.tvm.target import cpu_flags, isa
        from ..kernels.cache import cpu_name
        self.node = json.dumps({
            "node": ray.get_runtime_context().get_node_id(), "host": platform.node(),
            "cpu": cpu_name(), "features": sorted(cpu_flags()),
            "backend": self.session.backend_name,
            "isa": isa() if self.session.backend_name == "tvm" else None,
            "start_s": round(time.perf_counter() - t0, 2)}, sort_keys=True)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from ..data.images import decode_job
        from ..runtime.predict import predict_decoded
        resize, crop, c = self.spec
        part = [decode_job((str(p), resize, crop, c), bytes(b))
                for p, b in zip(batch["path"], batch["bytes"])]
        out = predict_decoded(self.session, part, self.top_k)
        return {"path": [str(p) for p in batch["path"]],
                "record": [json.dumps(r) if r else "" for r, _ in out],
                "error": [e[1] if e else "" for _, e in out],
                "node": [self.node] * len(out)}


def _read(path: str | Path) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise AqError(f"{p}: {'not a file' if p.exists() else 'no such file'}")
    return p.read_bytes()


def _ray():
    return import_optional("ray", "aq-infer --engine ray")


def _key(path: str) -> str:
    """A file's name as listed or as Ray returns it (local: absolute, no scheme; a URI's:
    without its scheme) -> one key for both."""
    scheme, sep, rest = path.partition("://")
    if sep and scheme not in ("file", "local"):
        return rest
    return os.path.normpath(os.path.abspath(rest if sep else path))


def list_uri(uri: str, recursive: bool, exts: tuple[str, ...]) -> list[str]:
    """The image files under a URI (s3://..., gs://..., file://...), sorted, as URIs: listed
    with pyarrow's file systems, the ones Ray Data reads them with."""
    import_optional("pyarrow", "image URIs")
    from pyarrow import fs
    try:
        filesystem, root = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(root)
        if info.type == fs.FileType.NotFound:
            raise AqError(f"{uri}: no such file or folder")
        found = [info] if info.type == fs.FileType.File else filesystem.get_file_info(
            fs.FileSelector(root, recursive=recursive))
    except (OSError, ValueError) as e:
        raise AqError(f"{uri}: cannot list it ({str(e).splitlines()[0]})") from None
    scheme = uri.partition("://")[0]
    low = tuple(e.lower() for e in exts)
    return sorted(f"{scheme}://{f.path}" for f in found
                  if f.type == fs.FileType.File and f.path.lower().endswith(low))


def _reachable(address: str) -> None:
    """A HOST:PORT that nothing answers on: one line now (Ray itself retries for minutes)."""
    import socket
    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise AqError(f"cannot reach Ray at {address}: {e.strerror or e}") from None


def _init(ray: Any, address: str | None) -> None:
    if ray.is_initialized():
        return
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                          "configure_logging": False}
    if address:
        _reachable(address)
        kw["address"] = address
    else:  # a local Ray sized for this machine, not Ray's default of 30% of the memory: one
        # CPU per core for the workers, and one more for Ray Data's read tasks (file reads)
        kw.update(num_cpus=(os.cpu_count() or 1) + 1, object_store_memory=OBJECT_STORE_MB << 20)
    try:
        ray.init(**kw)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise AqError(f"cannot start or reach Ray{f' at {address}' if address else ''}: "
                      f"{str(e).splitlines()[0]}") from None


def infer_ray(model: str | Path, images: str | Path, output: str | Path, top_k: int = 5,
              fmt: str = "csv", backend: str = "auto", kernels: str | Path | None = None,
              address: str | None = None, workers: int | None = None, cpus_per_worker: int = 1,
              batch: int = 16, shard_size: int = DEFAULT_SHARD, progress: bool = True,
              recursive: bool = True, exts: tuple[str, ...] | None = None,
              resources: dict[str, float] | None = None,
              on_shard: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Predictions for every image under `images` (a folder, or a URI Ray Data reads:
    s3://bucket/prefix...) into the folder `output` (one file per shard of `shard_size`
    images, and the manifest `_SUCCESS`), computed on Ray: the local machine's (started, and
    stopped again) or the cluster at `address` ('auto' or host:port). `workers` actors of
    `cpus_per_worker` CPUs each (default: the cluster's CPUs less one, for the read tasks; a
    local Ray has one CPU per core plus one for them), each needing `resources` (custom Ray
    resources) too. Rerun after an interruption: finished shards are kept. `on_shard(k)` is
    called after shard k is written. Returns the manifest."""
    from ..format.reader import read_aqz
    from ..kernels.tvm.ahead import read_manifest

    if fmt not in shards.FORMATS:
        raise AqError(f"unknown format {fmt!r} ({', '.join(shards.FORMATS)})")
    if top_k < 1 or batch < 1 or shard_size < 1 or cpus_per_worker < 1 or (
            workers is not None and workers < 1):
        raise AqError("--top-k, --batch, --shard-size, --workers and the worker CPUs must be "
                      "at least 1")
    ray = _ray()
    model_bytes = _read(model)
    graph = read_aqz(model, model_bytes)  # validated here, before any work: workers get these
    kernels_bytes = None
    if kernels is not None:
        kernels_bytes = _read(kernels)
        m, z = read_manifest(kernels, kernels_bytes)
        z.close()
        if m["model"] != graph.digest():
            raise AqError(f"{kernels}: kernels of another model")
    listed = list_uri(str(images), recursive, exts or IMAGE_EXTS) if "://" in str(images) \
        else list_images(images, recursive, exts or IMAGE_EXTS)
    if not listed:
        raise AqError(f"{images}: no image files found")
    spec = {"model": graph.digest(), "kernels": _sha256(kernels_bytes) if kernels_bytes else None,
            "top_k": top_k, "output_format": fmt, "backend": backend}
    plan = shards.Plan(tuple(str(p) for p in listed), shard_size, spec)
    out = Path(output)
    todo, rows, errors = shards.start(out, plan)
    if not todo and (out / shards.MANIFEST).exists():  # finished before: keep its manifest
        return shards.read_meta(out / shards.MANIFEST)
    resumed = plan.shards - len(todo)
    workers_seen: set[str] = set()
    n_images = sum(len(plan.shard(k)) for k in todo)
    t0 = time.perf_counter()
    if todo:
        started_here = not ray.is_initialized()
        _init(ray, address)
        try:
            n, e, workers_seen = _run(ray, plan, todo, out, model_bytes, kernels_bytes, backend,
                                      top_k, workers, cpus_per_worker, batch, progress,
                                      resources, on_shard)
        finally:
            if started_here:
                ray.shutdown()
        rows, errors = rows + n, errors + e
    dt = time.perf_counter() - t0
    return shards.finish(out, plan, {
        "rows": rows, "error_rows": errors, "shards": plan.shards, "resumed_shards": resumed,
        "engine": "ray", "ray": getattr(ray, "__version__", "?"),
        "workers": [json.loads(w) for w in sorted(workers_seen)], "images_this_run": n_images,
        "seconds": dt, "images_per_s": n_images / dt if dt > 0 else None})


def _run(ray: Any, plan: shards.Plan, todo: list[int], out: Path, model_bytes: bytes,
         kernels_bytes: bytes | None, backend: str, top_k: int, workers: int | None,
         cpus: int, batch: int, progress: bool, resources: dict[str, float] | None,
         on_shard: Callable[[int], None] | None) -> tuple[int, int, set[str]]:
    from tqdm import tqdm
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    total = int(ray.cluster_resources().get("CPU", 1))
    if workers is None:
        workers = max(1, (total - 1) // cpus)
    if workers * cpus > total - 1 and not resources:  # Ray Data would wait forever for reads
        raise AqError(f"{workers} workers of {cpus} CPUs leave none of the cluster's {total} "
                      "CPUs for Ray Data's read tasks: use fewer --workers")
    paths = [p for k in todo for p in plan.shard(k)]
    original = {_key(p): p for p in paths}
    ds = ray.data.read_binary_files([p if "://" in p else _key(p) for p in paths],
                                    include_paths=True)
    ds = ds.map_batches(
        _Predictor, batch_size=batch, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus,
        resources=resources or None,
        fn_constructor_kwargs=dict(
            model=[ray.put(model_bytes)], model_sha=_sha256(model_bytes),
            kernels=[ray.put(kernels_bytes)] if kernels_bytes else None,
            kernels_sha=_sha256(kernels_bytes) if kernels_bytes else None,
            backend=backend, top_k=top_k, cpus=cpus))
    pending = iter(todo)
    k = next(pending)
    want = list(plan.shard(k))
    got: dict[str, tuple[dict | None, str | None]] = {}
    n_rows = n_err = 0
    nodes: set[str] = set()
    bar = tqdm(total=len(paths), desc="infer (ray)", unit="img", disable=not progress)
    for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for p, rec, err, node in zip(b["path"], b["record"], b["error"], b["node"]):
            path = original.get(_key(str(p)))
            if path is None:
                raise AqError(f"Ray returned a file that was not asked for: {p}")
            # named as listed (a relative folder stays relative), not as Ray read it
            got[path] = ({**json.loads(rec), "path": path}, None) if rec else (
                None, str(err).replace(str(p), path, 1))
            nodes.add(str(node))
            n_err += not rec
        bar.update(len(b["path"]))
        bar.set_postfix(errors=n_err)
        while k is not None and all(p in got for p in want):
            recs = [got[p][0] for p in want if got[p][0] is not None]
            errs = [(p, got[p][1]) for p in want if got[p][0] is None]
            shards.write_part(out, plan, k, recs, errs)
            if on_shard:
                on_shard(k)
            n_rows += len(recs)
            for p in want:
                del got[p]
            k = next(pending, None)
            want = list(plan.shard(k)) if k is not None else []
    bar.close()
    if k is not None:
        raise AqError(f"Ray returned {len(paths) - len(got)} of {len(paths)} images; shard {k} "
                      "incomplete (rerun to resume)")
    return n_rows, n_err, nodes
