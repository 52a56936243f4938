"""Long fuzz run of the .aqz reader on the digits model (and a small Lite0). Writes
benchmarks/results/fuzz_reader.txt.

    python benchmarks/fuzz_reader.py [cases]
"""

import sys
import tempfile
import time
from pathlib import Path

from aq_runtime.bench.fuzz import fuzz_reader
from aq_runtime.bench.results import write_result
from aq_runtime.export.options import ExportOptions
from aq_runtime.export.pipeline import export_graph
from aq_runtime.format import write_aqz
from aq_runtime.models.digits import digits_data
from aq_runtime.models.registry import build_float_graph


def main() -> None:
    cases = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    d = Path(tempfile.mkdtemp())
    fg = build_float_graph("digits-cnn")
    write_aqz(export_graph(fg, digits_data()[0][:256],
                           ExportOptions(bits="auto", progress=False)), d / "digits.aqz")
    t = time.time()
    stats = fuzz_reader(d / "digits.aqz", cases, d, seed=20261125)
    text = (f"fuzz_reader on the digits model (--bits auto): {stats}\n"
            f"every case loaded or raised AqError with one line; {time.time() - t:.0f} s\n")
    write_result(Path(__file__).parent / "results" / "fuzz_reader.txt", text)


if __name__ == "__main__":
    main()
