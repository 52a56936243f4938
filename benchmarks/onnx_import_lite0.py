"""EfficientNet-Lite0 through ONNX as users bring it: the `efficientnet_lite_pytorch` package's
model with the project's pretrained weights, exported by torch.onnx (TorchScript exporter with
dynamic batch, the dynamo exporter; both fold BatchNorm into the convs in float32 by default,
and the TorchScript export with BN kept), imported by `aq-export`'s ONNX door and exported at
uniform 8 bits and `--bits auto`, beside the built-in model. Each row: the four fidelity numbers
(runtime/fidelity.py) on the held-out crops against the float graph it came from; and how many
integers of the uniform-8 export differ from the built-in model's (same calibration crops).
Writes benchmarks/results/onnx_import_lite0.txt.

    python benchmarks/onnx_import_lite0.py        # about 15 minutes on 2 cores
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np

from aq_runtime.bench.compare import Row, format_rows, iter_rows
from aq_runtime.bench.machine import describe
from aq_runtime.bench.onnx_models import package_efficientnet, to_onnx
from aq_runtime.bench.results import write_result
from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
from aq_runtime.interop.onnx_in import float_graph_from_onnx
from aq_runtime.models.efficientnet import lite0_float_graph

VARIANTS = (("torchscript dyn.", "torchscript", True, False),
            ("dynamo", "dynamo", False, False),
            ("torchscript BN kept", "torchscript", True, True))
EXPORTS = (("8", 8, {}), ("auto", "auto", {}))


def _differing(g, ref) -> tuple[int, int]:
    d = t = 0
    for a, b in zip(g.nodes, ref.nodes):
        for k in a.arrays:
            d += int(np.sum(a.arrays[k] != b.arrays[k]))
            t += a.arrays[k].size
    return d, t


def main() -> None:
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp())
    xc, _ = crops_of(CALIBRATION_PHOTOS)
    xh, _ = crops_of(HELDOUT_PHOTOS)
    module = package_efficientnet("efficientnet-lite0", 224, pretrained=True)
    graphs = {"built-in": lite0_float_graph()}
    for name, exporter, dynamic, keep_bn in VARIANTS:
        f = tmp / f"{name.replace(' ', '_')}.onnx"
        with contextlib.redirect_stdout(io.StringIO()):
            to_onnx(module, (3, 224, 224), f, exporter, dynamic, keep_bn)
        graphs[name] = float_graph_from_onnx(f, [127.0], [128.0])
    rows: list[Row] = []
    ints: dict[str, object] = {}
    for src, fg in graphs.items():
        d = tmp / src.replace(" ", "_").replace(".", "")
        d.mkdir()
        for r, _ in iter_rows(fg, xc, xh, d, EXPORTS):
            if r.fid is None and src != "built-in":
                continue
            r.name = f"{src}: {r.name}"
            rows.append(r)
            if r.name.endswith(": 8"):
                ints[src] = r.graph
            print(r.name, f"{r.fid.sqnr_db:.2f} dB" if r.fid else "", flush=True)
    diffs = []
    for src in graphs:
        if src != "built-in":
            d, t = _differing(ints[src], ints["built-in"])
            diffs.append(f"{src}: {d} of {t} integers differ from the built-in model's "
                         f"({d / t:.4%})")
    text = (f"EfficientNet-Lite0 imported from torch.onnx exports (package efficientnet_lite_pytorch"
            f", pretrained weights), opset 17 (TorchScript) / 18 (dynamo);\ncalibration "
            f"{len(xc)} crops of {', '.join(CALIBRATION_PHOTOS)}; scored on {len(xh)} held-out "
            f"crops of {', '.join(HELDOUT_PHOTOS)}\nagainst each row's own float graph "
            f"(the imported one); machine: {describe()}\n\n" + format_rows(rows)
            + "\n\nuniform 8 bits, integers vs the built-in model's (same calibration crops):\n"
            + "\n".join(diffs) + f"\n\n({time.time() - t0:.0f} s)\n")
    write_result(Path(__file__).parent / "results" / "onnx_import_lite0.txt", text)


if __name__ == "__main__":
    main()
