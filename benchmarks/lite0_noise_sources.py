"""Where EfficientNet-Lite0's quantization noise comes from at uniform 8 bits, as logit SQNR on
the held-out crops: only the weights quantized (as exported, with and without bias correction;
activations float), only the activations rounded to their codes (weights float), both, and
every tensor alone. Writes benchmarks/results/lite0_noise_sources.txt.

    python benchmarks/lite0_noise_sources.py
"""

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from aq_runtime.runtime.fidelity import sqnr_db
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
from aq_runtime.export.options import ExportOptions
from aq_runtime.export.api import calibrate_ranges, export_graph
from aq_runtime.export.dequant import dequantized_conv
from aq_runtime.export.float_exec import run_float_graph
from aq_runtime.models.efficientnet import lite0_float_graph
from aq_runtime.export.fakequant import FakeQuantGraph

EVERY = 3  # the per-tensor sweep scores every third held-out crop


def main() -> None:
    t0 = time.time()
    fg = lite0_float_graph()
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    xh, _ = crops_of(HELDOUT_PHOTOS)
    f = run_float_graph(fg, xh)
    ranges = calibrate_ranges(fg, xc)
    graphs = {bc: export_graph(fg, xc,
                               ExportOptions(bits=8, progress=False, bias_correction=bc), ranges=ranges)
              for bc in (False, True)}
    g = graphs[True]
    fq = FakeQuantGraph(g)
    producer = {n.output: n for n in g.nodes if n.output != g.output}

    def rounding(names):
        def hook(name, t):
            if name in names:
                t.copy_(fq.quantize_output(t, producer[name]))
        return hook

    def weights_of(graph):
        p = {n.name: dequantized_conv(graph, n) for n in graph.weight_nodes()}
        return {k: w for k, (w, _) in p.items()}, {k: b for k, (_, b) in p.items()}

    lines = [f"EfficientNet-Lite0, uniform 8 bits; logit SQNR against float on {len(xh)} held-out "
             "crops", ""]
    for bc, label in ((False, "weights only, no bias correction"),
                      (True, "weights only, bias-corrected")):
        w, b = weights_of(graphs[bc])
        lines.append(f"{label:44} {sqnr_db(f, run_float_graph(fg, xh, weights=w, biases=b)):6.2f} dB")
    acts = run_float_graph(fg, xh, hook=rounding(set(producer)))
    lines.append(f"{'activations only (8-bit codes)':44} {sqnr_db(f, acts):6.2f} dB")
    lines.append(f"{'both (float simulation of the export)':44} {sqnr_db(f, fq(xh)):6.2f} dB")
    xs, fs = xh[::EVERY], f[::EVERY]
    alone = [(sqnr_db(fs, run_float_graph(fg, xs, hook=rounding({t}))), t)
             for t in tqdm(producer, desc="tensors")]
    lines += ["", f"each activation tensor alone rounded to its 8-bit codes ({len(xs)} crops), "
              "worst first:"]
    lines += [f"  {t:40} {db:6.2f} dB" for db, t in sorted(alone)[:15]]
    lines.append(f"  ... {len(alone)} tensors; median {np.median([d for d, _ in alone]):.2f} dB")
    text = "\n".join(lines) + f"\n\n({time.time() - t0:.0f} s)\n"
    write_result(Path(__file__).parent / "results" / "lite0_noise_sources.txt", text)


if __name__ == "__main__":
    main()
