"""Writes the golden files of tests/test_golden_logits.py: three small .aqz models (the digits
CNN, the hand-built ternary/pooling graph, Lite0 at 32 px with random per-channel bits 1..16 and
ternary layers) and the SHA-256 of their int32 logits on fixed images. Run it only when the
integer semantics change on purpose (the files are the contract that every CPU computes the
same integers):

    python tests/make_golden.py
"""

import json
from pathlib import Path

from aq_runtime.runtime.golden import golden_images, logits_hash  # noqa: F401 (the tests' too)

DATA = Path(__file__).parent / "data"
MODELS = ("digits", "small", "lite0_mixed32")


def main() -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from aq_runtime.bench.graphs import lite0_mixed_graph, small_ternary_graph

    from aq_runtime.data.photos import CALIBRATION_PHOTOS, crops_of
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.format import read_aqz, write_aqz
    from aq_runtime.models.digits import digits_data, train_digits_cnn
    from aq_runtime.runtime import Session

    graphs = {"digits": export_graph(train_digits_cnn().to_float_graph(), digits_data()[0][:64],
                                     ExportOptions(bits=4, progress=False)),
              "small": small_ternary_graph()[0],
              "lite0_mixed32": lite0_mixed_graph(crops_of(CALIBRATION_PHOTOS[:1], 32)[0])}
    hashes = {}
    for name in MODELS:
        path = DATA / f"golden_{name}.aqz"
        write_aqz(graphs[name], path)
        g = read_aqz(path)
        hashes[name] = logits_hash(Session(g, "reference").run(
            golden_images(name, g.tensors[g.input].shape)))
    (DATA / "golden_logits.json").write_text(json.dumps(hashes, indent=1) + "\n")
    print(hashes)


if __name__ == "__main__":
    main()
