"""Every CPU backend `==` the reference on all 376 held-out crops, for each low-bit file that
benchmarks/lowbit_lite0.py left in its folder (issue: every low-bit model, exact on every
backend; CI checks a small slice). Writes results/lowbit_verify.txt: per file, each available
backend's verdict on the int32 logits.

    python benchmarks/lowbit_verify.py                    # every .aqz in runs/lowbit_lite0
    python benchmarks/lowbit_verify.py --files a.aqz b.aqz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tqdm import tqdm

from aq_runtime.bench.machine import describe
from aq_runtime.data.photos import HELDOUT_PHOTOS, crops_of
from aq_runtime.format.reader import read_aqz
from aq_runtime.runtime.verify import verify_images

RESULTS = Path(__file__).parent / "results"
KEEP = Path("runs/lowbit_lite0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", nargs="*", help=f"default: every .aqz in {KEEP}")
    a = ap.parse_args()
    files = [Path(f) for f in a.files] if a.files else sorted(KEEP.glob("*.aqz"))
    if not files:
        raise SystemExit(f"error: no .aqz files in {KEEP}: run benchmarks/lowbit_lite0.py first")
    x, _ = crops_of(HELDOUT_PHOTOS)
    out = [f"Every backend == reference on the {len(x)} held-out crops (int32 logits)",
           f"machine: {describe()}", ""]
    bad = 0
    for f in tqdm(files, desc="files"):
        t0 = time.time()
        lines, ok = verify_images(read_aqz(f), x)
        bad += not ok
        out += [f"{f.name} ({time.time() - t0:.0f} s): {'all equal' if ok else 'DIFFERS'}",
                *("  " + line for line in lines), ""]
    text = "\n".join(out)
    (RESULTS / "lowbit_verify.txt").write_text(text)
    print(text)
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
