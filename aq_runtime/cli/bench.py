"""aq-bench: latency of every available backend on a .aqz, against PyTorch fp32 and ONNX Runtime
fp32 / int8 (QDQ) of the same float model, measured in the same run."""

from __future__ import annotations

import argparse
import json

from .common import run_cli


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="aq-bench", description=__doc__)
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--backend", nargs="+", help="only these aq backends")
    ap.add_argument("--no-baselines", action="store_true",
                    help="skip PyTorch / ONNX Runtime (they need torch and onnxruntime)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--kernels", help="a kernels file of this model (aq-compile): the tvm "
                                      "backend runs it, with no compiler")
    ap.add_argument("--layers", action="store_true",
                    help="also a per-layer profile (ms, GOPS vs the machine's GEMM peak) of "
                         "each aq backend at the first batch size")
    ap.add_argument("--no-warm-start", action="store_true",
                    help="skip timing a second process's start (compile caches warm)")
    a = ap.parse_args(argv)

    def go() -> None:
        from .. import AqError
        from ..bench.latency import (
            as_json,
            bench,
            format_timings,
            format_warm,
            warm_start,
        )
        from ..format import read_aqz
        from ..runtime.predict import write_atomic
        if a.runs < 1 or min(a.batch) < 1:
            raise AqError("--runs and --batch must be positive")
        from ..bench.machine import describe
        from ..runtime.backends import backend_report, use_kernels
        if a.kernels:  # before the report: tvm is available with them
            use_kernels(a.kernels, read_aqz(a.model), "tvm")
        print(f"machine: {describe()}\n" + "\n".join(backend_report()), flush=True)
        from ..optional import extra_missing
        skipped = None if a.no_baselines else extra_missing("bench", "the baselines")
        if skipped:
            print(f"baselines skipped (PyTorch, ONNX Runtime): {skipped}", flush=True)
        rows = bench(a.model, a.batch, a.runs, not (a.no_baselines or skipped), a.backend)
        warm = {} if a.no_warm_start else {
            r.backend: warm_start(a.model, r.backend, a.kernels if r.backend == "tvm" else None)
            for r in rows
            if r.backend and r.batch == a.batch[0]}
        print(format_timings(rows))
        from ..runtime.fastest import record
        fastest = {}
        for b in a.batch:
            aq = [r for r in rows if r.backend and r.batch == b]
            if aq:
                fastest[b] = min(aq, key=lambda r: r.median_ms).backend
        from ..runtime import available_backends
        measured = {r.backend for r in rows if r.backend}
        if fastest and measured >= set(available_backends()):  # only a full comparison counts
            record(read_aqz(a.model).digest(), fastest)
            print("--backend auto will now pick, for this model on this machine: " + ", ".join(
                f"{n} at batch >= {b}" for b, n in sorted(fastest.items())))
        if warm:
            print(format_warm(warm))
        if a.layers:
            from ..bench.profile import format_profile, gemm_peak_gops, profile
            peak = gemm_peak_gops()
            for name in a.backend or [r.backend for r in rows
                                      if r.backend and r.batch == a.batch[0]]:
                print()
                print(format_profile(profile(a.model, name, a.batch[0], min(a.runs, 20)),
                                     name, peak))
        if a.json:
            write_atomic(a.json, json.dumps(as_json(rows, warm), indent=1))
    run_cli(go)


if __name__ == "__main__":
    main()
