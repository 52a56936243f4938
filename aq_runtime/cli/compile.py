"""aq-compile: a model's tvm kernels compiled ahead, for one or more CPU targets, into one
kernels file bound to the model; machines that load it (`--kernels`) need no compiler."""

from __future__ import annotations

import argparse
import sys

from .common import require, run_cli


def main(argv: list[str] | None = None) -> None:
    require("jit", "aq-compile")
    ap = argparse.ArgumentParser(prog="aq-compile", description=__doc__)
    ap.add_argument("model", help="the .aqz model")
    ap.add_argument("--target", nargs="+", default=["native"],
                    help="native (every instruction set this CPU runs; default), avx2, "
                         "avx-vnni, avx512-vnni, aarch64 (ARMv8.2 dot product; cross-compiled "
                         "with aarch64-linux-gnu-gcc, or $AQ_AARCH64_CC)")
    ap.add_argument("-o", "--output", required=True, help="the kernels file to write")
    a = ap.parse_args(argv)

    def go() -> None:
        from ..format import read_aqz
        from ..kernels.tvm.ahead import compile_kernels, resolve_targets
        graph = read_aqz(a.model)
        isas = resolve_targets(a.target)
        m = compile_kernels(graph, isas, a.output,
                            progress=lambda isa, what: print(f"{isa}: {what}", file=sys.stderr,
                                                             flush=True))
        for isa, t in m["targets"].items():
            print(f"{isa}: {len(t['symbols'])} kernels, {t['bytes']} bytes")
        print(f"wrote {a.output} for model {m['model'][:12]}")
    run_cli(go)


if __name__ == "__main__":
    main()
