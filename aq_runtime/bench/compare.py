"""Fidelity comparison of several exports of one float model on held-out images (the four numbers of
runtime/fidelity.py): per model its file size, bits, MicroNet score, the four fidelity numbers and
integer-vs-fake-quant agreement; optionally ONNX Runtime static int8 calibrated on the same
images."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..format import read_aqz, write_aqz
from ..format.inspect import average_act_bits, average_weight_bits
from ..quant.cost import micronet_score
from ..runtime import Session
from ..runtime.fidelity import LEGEND, Fidelity, argmax_lowest, fidelity

# The textbook export (per-tensor min/max ranges, nearest rounding: ONNX Runtime's method), the
# default uniform 8 bits (mixed-granularity ranges, bias correction) and `--bits auto`.
TEXTBOOK = {"bias_correction": False, "granularity": "tensor"}
EXPORTS = (("textbook 8", 8, TEXTBOOK), ("uniform 8", 8, {}), ("auto", "auto", {}))


@dataclass
class Row:
    name: str
    file_bytes: int
    weight_bits: float
    act_bits: float
    score: float | None
    fid: Fidelity | None
    fq_agreement: float | None
    graph: object = None
    seconds: float | None = None  # export time


def iter_rows(fg, calib: np.ndarray, heldout: np.ndarray, out_dir: str | Path,
              bits_list=EXPORTS, module=None, progress: bool = True,
              backend: str = "auto", ort_configs: tuple[str, ...] = ("s8",)
              ) -> Iterator[tuple[Row, np.ndarray]]:
    """(row, float logits of `heldout`) for float, then each (name, bits, export options) of
    `bits_list` as it finishes, then ONNX Runtime int8 when `module` (the torch model) is
    given, in each of `ort_configs` (ort_baseline.ORT_CONFIGS): its default "ORT int8 QDQ" (int8
    weights: exact on VNNI CPUs, saturating without) as it runs on this CPU, and the same model
    run as DequantizeLinear + float ops ("... float-sim", the same on every CPU).
    Integer logits come from `backend` (every backend is tested equal to the reference)."""
    from ..export.pipeline import export_graph
    from ..export.calibrate import at_granularity, calibrate
    from ..export.float_exec import run_float_graph
    from ..export.options import ExportOptions

    out = Path(out_dir)
    raw = calibrate(fg, calib)
    f = run_float_graph(fg, heldout)
    fp32_bytes = sum(n.weight.size + n.bias.size for n in fg.conv_nodes()) * 4
    yield Row("float (fp32)", fp32_bytes, 32.0, 32.0, None, None, None), f
    for name, bits, options in bits_list:
        o = ExportOptions(bits=bits, progress=progress, **options)
        ranges = at_granularity(fg, raw, o.granularity)
        t0 = time.time()
        g = export_graph(fg, calib, o, ranges=ranges)
        seconds = time.time() - t0
        yield score_row(name, g, row_path(out, fg.name, name), f, heldout, seconds,
                        backend, progress), f
    if module is not None:
        from .ort_baseline import ort_int8, ort_logits
        fp32 = None
        for config in ort_configs:
            fp32, int8 = ort_int8(module, fg, calib, str(out), config, fp32)
            name = "ORT int8 QDQ" + ("" if config == "s8" else f" {config}")
            size = Path(int8).stat().st_size
            yield Row(name, size, 8.0, 8.0, None,
                      fidelity(f, ort_logits(int8, fg, heldout)), None), f
            if config == "s8":
                yield Row(f"{name} float-sim", size, 8.0, 8.0, None,
                          fidelity(f, ort_logits(int8, fg, heldout, optimize=False)), None), f


def row_path(out_dir: str | Path, model: str, name: str) -> Path:
    """Where `iter_rows` writes the .aqz of row `name`."""
    return Path(out_dir) / f"{model}_{name.replace(' ', '_')}.aqz"


def score_row(name: str, g, path: str | Path, float_logits: np.ndarray, heldout: np.ndarray,
              seconds: float | None = None, backend: str = "auto", progress: bool = True
              ) -> Row:
    """Write integer graph `g` to `path` and score the file as read back, on `heldout`
    (`float_logits`: the float model's logits of it): bytes, bits, score, fidelity, int=fq."""
    from ..export.fakequant import FakeQuantGraph

    size = write_aqz(g, path)
    s = Session(read_aqz(path), backend)
    q = np.concatenate([s.run(heldout[i:i + 16]) for i in tqdm(
        range(0, len(heldout), 16), desc=f"integer {name}", disable=not progress)])
    fq = FakeQuantGraph(g)(heldout)
    return Row(name, size, average_weight_bits(g), average_act_bits(g),
               micronet_score(g)["score"], fidelity(float_logits, q, g.meta["logit_scale"]),
               float((argmax_lowest(fq) == argmax_lowest(q)).mean()), g, seconds)


def compare_models(fg, calib: np.ndarray, heldout: np.ndarray, out_dir: str | Path,
                   bits_list=EXPORTS, module=None, progress: bool = True,
                   backend: str = "auto", ort_configs: tuple[str, ...] = ("s8",)
                   ) -> tuple[list[Row], np.ndarray]:
    """All of `iter_rows`: the rows and the float logits of `heldout`."""
    pairs = list(iter_rows(fg, calib, heldout, out_dir, bits_list, module, progress, backend,
                           ort_configs))
    return [r for r, _ in pairs], pairs[0][1]


def format_rows(rows: list[Row], with_seconds: bool = False) -> str:
    """The fidelity table; `with_seconds` adds each export's time."""
    w = max(15, max(len(r.name) for r in rows))
    lines = [f"{'model':{w}} {'file bytes':>11} {'w bits':>6} {'a bits':>6} {'MicroNet':>9} "
             f"{'top-1':>6} {'top-5':>6} {'conf.':>6} {'SQNR dB':>8} {'int=fq':>7}"
             + (f" {'export s':>8}" if with_seconds else "")]
    for r in rows:
        head = f"{r.name:{w}} {r.file_bytes:>11} {r.weight_bits:>6.2f} {r.act_bits:>6.2f} "
        if r.fid is None:
            lines.append(head + f"{'':>9} {'(reference)':>29}")
            continue
        score = f"{r.score:>9.4f}" if r.score is not None else f"{'':>9}"
        fq = f"{r.fq_agreement:>7.1%}" if r.fq_agreement is not None else f"{'':>7}"
        secs = (f" {r.seconds:>8.0f}" if r.seconds is not None else f" {'':>8}") \
            if with_seconds else ""
        lines.append(head + f"{score} {r.fid.top1_agreement:>6.1%} {r.fid.top5_containment:>6.1%} "
                     f"{r.fid.confident_agreement:>6.1%} {r.fid.sqnr_db:>8.2f} {fq}{secs}")
    n_conf = next((r.fid.n_confident for r in rows if r.fid), 0)
    lines += ["", f"{LEGEND} ({n_conf} crops); int=fq: integer vs its "
              "fake-quant model; textbook 8: uniform 8 bits with per-tensor min/max ranges and "
              "nearest rounding, ONNX Runtime's static int8 method (no mixed ranges, no bias "
              "correction)"]
    return "\n".join(lines)
