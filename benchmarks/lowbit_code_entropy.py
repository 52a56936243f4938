"""How many bits the stored weight codes carry: for exported Lite0 files of
benchmarks/lowbit_lite0.py (by default the four budgets with weight groups, nearest rounding),
per conv the average code bits and the empirical entropy of its codes (one symbol table per
layer and code width, as an entropy coder of the weight pool would use), and the total. The
difference is what coding the stored codes (decoded integers unchanged) would free per
weight. Writes results/lowbit_code_entropy.txt; needs the files lowbit_lite0.py leaves in
runs/lowbit_lite0.

    python benchmarks/lowbit_code_entropy.py [--rows "auto 0.5 mse-ch g16" ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from aq_runtime.format import read_aqz
from aq_runtime.quant.packing import stored_codes
from aq_runtime.quant.weights import code_bits, grouped_channels, stored_weight_bits
from lowbit_lite0 import KEEP, row_files

RESULTS = Path(__file__).parent / "results"
ROWS = tuple(f"auto {b} mse-ch g16" for b in (0.375, 0.5, 0.625, 0.75))
MODEL = "efficientnet-lite0"
SHOWN = 200_000  # convs with at least this many weights get their own line


def entropy_bits(x: np.ndarray) -> float:
    """Empirical entropy of the values of `x` in bits per value, times their count."""
    _, c = np.unique(x, return_counts=True)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum() * x.size)


def conv_codes(n) -> tuple[np.ndarray, np.ndarray, float]:
    """(stored codes (O, K), code bits (O,), group multiplier bits in all) of IR conv `n`."""
    q = n.arrays["weight"].reshape(n.arrays["weight"].shape[0], -1)
    cb = code_bits(n.arrays)
    mbits = float(((stored_weight_bits(n.arrays, n.attrs) - cb) * q.shape[1]).sum())
    if "wmult" not in n.arrays:
        return np.asarray(q, np.int64), cb, mbits
    codes = stored_codes(q, n.arrays["wmult"], grouped_channels(n.arrays),
                         n.attrs["weight_group"])
    return codes, cb, mbits


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
            h = sum(entropy_bits(codes[cb == b]) for b in np.unique(cb))
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
    (RESULTS / "lowbit_code_entropy.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
