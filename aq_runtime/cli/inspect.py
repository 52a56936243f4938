"""aq-inspect: bits per layer, sizes and the MicroNet cost of a .aqz model."""

from __future__ import annotations

import argparse
import json

from .common import run_cli


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="aq-inspect", description=__doc__)
    ap.add_argument("model")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--bits-json", action="store_true",
                    help="print the model's bits in the aq-export --bits file format")
    ap.add_argument("--cost", action="store_true",
                    help="print the per-layer MicroNet calculation")
    a = ap.parse_args(argv)

    def go() -> None:
        from ..format import read_aqz
        from ..format.inspect import bits_json, cost_table, format_table, inspect_dict
        g = read_aqz(a.model)
        if a.bits_json:
            print(json.dumps(bits_json(g), indent=1))
        elif a.json:
            print(json.dumps(inspect_dict(g, a.model), indent=1))
        elif a.cost:
            print(cost_table(g))
        else:
            print(format_table(g, a.model))
    run_cli(go)


if __name__ == "__main__":
    main()
