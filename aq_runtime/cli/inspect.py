"""aq-inspect: bits per layer, sizes and the MicroNet cost of a .aqz model."""

from __future__ import annotations

import argparse
import json

from .common import run_cli


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="aq-inspect", description=__doc__)
    ap.add_argument("model")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    a = ap.parse_args(argv)

    def go() -> None:
        from ..format import read_aqz
        from ..format.inspect import format_table, inspect_dict
        g = read_aqz(a.model)
        print(json.dumps(inspect_dict(g, a.model), indent=1) if a.json else format_table(g, a.model))
    run_cli(go)


if __name__ == "__main__":
    main()
