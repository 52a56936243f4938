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
    ap.add_argument("--format", choices=["csv", "json"], default="csv")
    ap.add_argument("--output", help="write here (atomically) instead of stdout")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--kernels", help="a kernels file of this model (aq-compile): the tvm "
                                      "backend runs it, with no compiler")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--limit", type=int, help="only the first N images (sorted by path)")
    ap.add_argument("--recursive", action=argparse.BooleanOptionalAction, default=True,
                    help="descend into sub-folders (default; --no-recursive to stay at the top)")
    ap.add_argument("--exts", help="comma-separated extensions, e.g. .jpg,.png")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="decoding processes (1 = decode in this process)")
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args(argv)

    def go() -> int:
        from .. import AqError
        from ..runtime.predict import infer_folder
        if a.batch < 1 or a.workers < 1:
            raise AqError("--batch and --workers must be at least 1")
        exts = tuple(e if e.startswith(".") else "." + e
                     for e in a.exts.split(",") if e) if a.exts else None
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


if __name__ == "__main__":
    main()
