"""Every CPU backend `==` the reference on all 376 held-out crops, for each low-bit file that
benchmarks/lowbit_lite0.py left in its folder (every low-bit model must be exact on every
backend; CI checks a small slice). Writes results/lowbit_verify.txt: per file, each available
backend's verdict on the int32 logits. Verdicts accumulate in results/lowbit_verify.json,
keyed by file name and model digest: a file verified before (same digest) is not run again
unless `--redo`, and verdicts of files no longer on disk stay on record (with their machine).

    python benchmarks/lowbit_verify.py                    # every .aqz in runs/lowbit_lite0
    python benchmarks/lowbit_verify.py --files a.aqz b.aqz [--redo]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from aq_runtime.bench.machine import describe
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import HELDOUT_PHOTOS, crops_of
from aq_runtime.files import atomic_open
from aq_runtime.format.reader import read_aqz
from aq_runtime.runtime.verify import verify_images

RESULTS = Path(__file__).parent / "results"
KEEP = Path("runs/lowbit_lite0")


def report(done: dict[str, dict], n: int) -> str:
    """The text of every verdict on record, grouped by the machine that ran it."""
    out = [f"Every backend == reference on the {n} held-out crops (int32 logits); "
           f"{len(done)} files, {sum(not d['ok'] for d in done.values())} differ", ""]
    for machine in dict.fromkeys(d["machine"] for d in done.values()):
        out += [f"machine: {machine}", ""]
        for name, d in sorted(done.items()):
            if d["machine"] == machine:
                out += [f"{name} ({d['seconds']:.0f} s, model {d['digest'][:12]}): "
                        f"{'all equal' if d['ok'] else 'DIFFERS'}",
                        *("  " + line for line in d["lines"]), ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", nargs="*", help=f"default: every .aqz in {KEEP}")
    ap.add_argument("--redo", action="store_true", help="verify files already on record again")
    a = ap.parse_args()
    files = [Path(f) for f in a.files] if a.files else sorted(KEEP.glob("*.aqz"))
    if not files:
        raise SystemExit(f"error: no .aqz files in {KEEP}: run benchmarks/lowbit_lite0.py first")
    store = RESULTS / "lowbit_verify.json"
    done = json.loads(store.read_text()) if store.exists() else {}
    x, _ = crops_of(HELDOUT_PHOTOS)
    for f in tqdm(files, desc="files"):
        g = read_aqz(f)
        digest = g.digest()
        if not a.redo and done.get(f.name, {}).get("digest") == digest:
            continue
        t0 = time.time()
        lines, ok = verify_images(g, x)
        done[f.name] = {"digest": digest, "ok": ok, "lines": lines,
                        "seconds": time.time() - t0, "machine": describe()}
        with atomic_open(store, "w") as fh:  # each verdict kept as it comes
            fh.write(json.dumps(done, indent=1))
    text = report(done, len(x))
    write_result(RESULTS / "lowbit_verify.txt", text + "\n")
    raise SystemExit(0 if all(d["ok"] for d in done.values()) else 1)


if __name__ == "__main__":
    main()
