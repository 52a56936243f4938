"""aq-verify: run every available backend on images and report any int32 logit that differs
from the reference backend's."""

from __future__ import annotations

import argparse

from .common import run_cli


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="aq-verify", description=__doc__)
    ap.add_argument("model")
    ap.add_argument("images")
    ap.add_argument("--kernels", help="a kernels file of this model (aq-compile): the tvm "
                                      "backend runs it, with no compiler")
    a = ap.parse_args(argv)

    def go() -> int:
        from ..runtime.verify import verify_folder
        report, ok = verify_folder(a.model, a.images, a.kernels)
        print(report)
        return 0 if ok else 1
    run_cli(go)


if __name__ == "__main__":
    main()
