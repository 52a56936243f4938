"""aq-infer: top-k predictions of a .aqz model for image files (a folder, recursively)."""

from __future__ import annotations

import argparse
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
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)

    def go() -> int:
        from ..runtime.predict import infer_folder, write_atomic
        text, errors = infer_folder(a.model, a.images, a.top_k, a.format, a.backend,
                                    progress=not a.quiet)
        for path, msg in errors:
            print(f"skipped: {msg}", file=sys.stderr)
        if a.output:
            write_atomic(a.output, text)
        else:
            sys.stdout.write(text)
        return 0
    run_cli(go)


if __name__ == "__main__":
    main()
