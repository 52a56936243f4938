"""aq-infer at scale: 10,000 generated JPEGs (crops of the bundled photos, 96..320 px) through
the Lite0 model with decoding in worker processes; reports images/s and peak RSS of the aq-infer
process and its workers. Writes benchmarks/results/infer_at_scale.txt.

    python benchmarks/infer_at_scale.py [n_images]

This parent process stays small (no torch): Linux keeps a process's peak RSS across fork+exec,
so preparing the model here would inflate the child's number. Preparation runs in its own
child process."""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aq_runtime.bench.results import write_result  # no torch, no numpy: keeps RSS honest

PREPARE = """
import sys
from pathlib import Path
from aq_runtime.bench.scale import write_jpegs
from aq_runtime.data.photos import CALIBRATION_PHOTOS, crops_of
from aq_runtime.export.options import ExportOptions
from aq_runtime.export.pipeline import export_graph
from aq_runtime.format import write_aqz
from aq_runtime.models.efficientnet import lite0_float_graph
d, n = Path(sys.argv[1]), int(sys.argv[2])
xc, _ = crops_of(CALIBRATION_PHOTOS)
write_aqz(export_graph(lite0_float_graph(), xc,
                       ExportOptions(bits=8, progress=False)), d / "lite0.aqz")
write_jpegs(d / "images", n)
"""

MEASURE = """
import resource, sys
from aq_runtime.cli.infer import main
try:
    main()
except SystemExit as e:
    code = e.code
r = resource.getrusage
print("RSS", r(resource.RUSAGE_SELF).ru_maxrss, r(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    d = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-c", PREPARE, str(d), str(n)], check=True)
    t = time.time()
    p = subprocess.run([sys.executable, "-c", MEASURE, str(d / "lite0.aqz"), str(d / "images"),
                        "--output", str(d / "preds.csv"), "--workers", "2", "--quiet"],
                       capture_output=True, text=True)
    wall = time.time() - t
    if p.returncode:
        raise SystemExit(p.stderr)
    rss = [ln for ln in p.stderr.splitlines() if ln.startswith("RSS")][0].split()
    main_mib, worker_mib = int(rss[1]) / 1024, int(rss[2]) / 1024
    rows = sum(1 for _ in open(d / "preds.csv")) - 1
    text = (f"aq-infer on {n} generated JPEGs (96..320 px), EfficientNet-Lite0 uniform 8, "
            f"backend auto, 2 decode workers\n{rows} CSV rows, {wall:.0f} s wall including "
            f"start-up, {rows / wall:.1f} images/s\n"
            f"peak RSS: aq-infer process {main_mib:.0f} MiB, largest decode worker "
            f"{worker_mib:.0f} MiB; total at most {main_mib + 2 * worker_mib:.0f} MiB\n")
    write_result(Path(__file__).parent / "results" / "infer_at_scale.txt", text)


if __name__ == "__main__":
    main()
