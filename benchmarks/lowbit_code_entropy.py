"""How many bits the stored weight codes carry: for exported Lite0 files of
benchmarks/lowbit_lite0.py (by default the four budgets with weight groups, nearest rounding),
per conv the average code bits and the empirical entropy of its codes (one symbol table per
layer and code width, as an entropy coder of the weight pool would use), and the total. The
difference is what coding the stored codes (decoded integers unchanged) would free per
weight (measured on the packed files; `--weight-coding entropy` now does it, and spends what
it frees on wider codes: rows "coded" of lowbit_lite0.py). Writes
results/lowbit_code_entropy.txt; needs the files lowbit_lite0.py leaves in runs/lowbit_lite0.

    python benchmarks/lowbit_code_entropy.py [--rows "auto 0.5 mse-ch g16" ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from aq_runtime.bench.results import write_result
from aq_runtime.format import read_aqz
from aq_runtime.quant.entropy import code_lengths
from aq_runtime.quant.packing import node_stored_codes
from aq_runtime.quant.weights import stored_weight_bits
from lowbit_lite0 import KEEP, row_files

RESULTS = Path(__file__).parent / "results"
ROWS = tuple(f"auto {b} mse-ch g16" for b in (0.375, 0.5, 0.625, 0.75))
MODEL = "efficientnet-lite0"
SHOWN = 200_000  # convs with at least this many weights get their own line


def conv_codes(n) -> tuple[np.ndarray, np.ndarray, float]:
    """(stored codes (O, K), code bits (O,), group multiplier bits in all) of IR conv `n`."""
    codes, cb = node_stored_codes(n.arrays, n.attrs)
    return codes, cb, float(((stored_weight_bits(n.arrays, n.attrs) - cb) * codes.shape[1]
                             ).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", nargs="+", default=list(ROWS))
    ap.add_argument("--keep", default=KEEP)
    a = ap.parse_args()
    paths = row_files(a.keep, MODEL, a.rows)
    out = []
    for r, p in zip(a.rows, paths):
        g = read_aqz(p)
        tot_n = tot_bits = tot_h = tot_m = 0.0
        lines = []
        for n in g.weight_nodes():
            codes, cb, mbits = conv_codes(n)
            h = sum(float(code_lengths(codes[cb == b].reshape(1, -1)).sum())
                    for b in np.unique(cb))
            bits = float((cb * codes.shape[1]).sum())
            tot_n += codes.size
            tot_bits += bits
            tot_h += h
            tot_m += mbits
            if codes.size >= SHOWN:
                lines.append(f"  {n.name:28s} {codes.size:9d} {bits / codes.size:8.2f} "
                             f"{h / codes.size:8.2f} {(bits - h) / codes.size:8.2f}")
        out.append(f"{r} ({p.name}):\n  {'conv':28s} {'weights':>9s} {'code b':>8s} "
                   f"{'entropy':>8s} {'saved':>8s}\n" + "\n".join(lines) +
                   f"\n  {'all convs':28s} {int(tot_n):9d} {tot_bits / tot_n:8.2f} "
                   f"{tot_h / tot_n:8.2f} {(tot_bits - tot_h) / tot_n:8.2f}"
                   f"   (+ {tot_m / tot_n:.2f} bits per weight of group multipliers, not coded)")
    text = ("Lite0 low-bit exports: code bits per weight as stored vs the entropy of the codes "
            "(one table per conv and code width)\n\n" + "\n\n".join(out) + "\n")
    write_result(RESULTS / "lowbit_code_entropy.txt", text)


if __name__ == "__main__":
    main()
