"""aq-infer: top-k predictions of a .aqz model for image files (a folder, recursively)."""

from __future__ import annotations

import argparse
import os
import sys

from .common import run_cli


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="aq-infer", description=__doc__)
    ap.add_argument("model")
    ap.add_argument("images", help="an image file or a folder (searched recursively)")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--format", choices=["csv", "json", "parquet"], default="csv",
                    help="parquet: --engine ray only")
    ap.add_argument("--output", help="write here (atomically) instead of stdout; --engine ray: "
                                     "the output folder (one file per shard and a manifest)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--kernels", help="a kernels file of this model (aq-compile): the tvm "
                                      "backend runs it, with no compiler")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--limit", type=int, help="only the first N images (sorted by path)")
    ap.add_argument("--recursive", action=argparse.BooleanOptionalAction, default=True,
                    help="descend into sub-folders (default; --no-recursive to stay at the top)")
    ap.add_argument("--exts", help="comma-separated extensions, e.g. .jpg,.png")
    ap.add_argument("--workers", type=int,
                    help="decoding processes (1 = decode in this process; default 2); --engine "
                         "ray: actors, each with a Session (default: the cluster's CPUs less one)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="ray: on a Ray cluster (pip install 'aq-runtime[ray]'), output to a "
                         "folder, resumable")
    ap.add_argument("--ray-address", help="--engine ray: 'auto' or HOST:PORT of a running "
                                          "cluster (default: start a local Ray)")
    ap.add_argument("--shard-size", type=int, default=1000,
                    help="--engine ray: images per output file")
    a = ap.parse_args(argv)

    def go() -> int:
        from .. import AqError
        if a.batch < 1 or (a.workers is not None and a.workers < 1):
            raise AqError("--batch and --workers must be at least 1")
        exts = tuple(e if e.startswith(".") else "." + e
                     for e in a.exts.split(",") if e) if a.exts else None
        if a.engine == "ray":
            return _ray(a, exts)
        for flag, given in (("--ray-address", a.ray_address), ("--format parquet",
                                                                a.format == "parquet")):
            if given:
                raise AqError(f"{flag} applies only with --engine ray")
        from ..runtime.predict import infer_folder
        a.workers = a.workers or min(2, os.cpu_count() or 1)
        res = infer_folder(a.model, a.images, a.top_k, a.format, a.backend,
                           progress=not a.quiet, output=a.output, stream=sys.stdout,
                           limit=a.limit, recursive=a.recursive, exts=exts,
                           workers=a.workers, batch=a.batch, kernels=a.kernels)
        for path, msg in res["skipped"]:
            print(f"skipped: {msg}", file=sys.stderr)
        if not a.quiet:
            print(f"{res['images']} images in {res['seconds']:.1f} s "
                  f"({res['images_per_s']:.1f} images/s), {len(res['skipped'])} skipped",
                  file=sys.stderr)
        return 0
    run_cli(go)


def _ray(a: argparse.Namespace, exts: tuple[str, ...] | None) -> int:
    from .. import AqError
    from ..cluster.ray_infer import infer_ray
    if not a.output:
        raise AqError("--engine ray needs --output FOLDER")
    if a.limit:
        raise AqError("--limit applies only with --engine local")
    m = infer_ray(a.model, a.images, a.output, a.top_k, a.format, a.backend, a.kernels,
                  a.ray_address, a.workers, batch=a.batch, shard_size=a.shard_size,
                  progress=not a.quiet, recursive=a.recursive, exts=exts)
    if not a.quiet:
        rate = f", {m['images_per_s']:.1f} images/s" if m["images_per_s"] else ""
        print(f"{m['rows']} images, {m['error_rows']} error rows, {m['shards']} shards "
              f"({m['resumed_shards']} from an earlier run) in {a.output}{rate}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    main()
