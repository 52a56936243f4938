"""aq-demo: the main job end to end on the built-in default (pretrained EfficientNet-Lite0)."""

from __future__ import annotations

import argparse

from .common import require, run_cli


def main(argv: list[str] | None = None) -> None:
    require("export", "aq-demo")
    ap = argparse.ArgumentParser(prog="aq-demo", description=__doc__)
    ap.add_argument("--out-dir", help="where to keep the .aqz files (default: a temp folder)")
    ap.add_argument("--every", type=int, default=1,
                    help="score every n-th held-out crop (1 = all 376)")
    a = ap.parse_args(argv)

    def go() -> None:
        from ..bench.demo import run_demo
        print(run_demo(a.out_dir, a.every))
    run_cli(go)


if __name__ == "__main__":
    main()
