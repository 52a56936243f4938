"""Evaluation of a quantized model: the **integer** accuracy (the model integerized exactly as
`aq-export` writes it, run by the runtime) with the fake-quant accuracy beside it, their gap,
the MicroNet metric, #params, #ops, average bits; `quant_info.json` (bits of every channel) and
a PNG of the per-layer average weight and activation bits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..export.float_exec import run_float_graph
from ..ir.float_graph import FloatGraph
from ..ir.graph import Graph
from ..format.inspect import average_act_bits, average_weight_bits
from ..quant.cost import micronet_score
from .checkpoint import write_json
from .qgraph import QuantGraph


@torch.no_grad()
def fake_quant_logits(model: QuantGraph, images: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    outs = [model(torch.from_numpy(np.ascontiguousarray(images[i:i + batch]))).double().numpy()
            for i in range(0, len(images), batch)]
    return np.concatenate(outs) if outs else np.zeros((0, 0))


def average_bits(g: Graph) -> tuple[float, float]:
    """(average weight bits, average activation bits) of `g`, as aq-inspect counts them
    (format.inspect: bits per value, quant.bits.mean_bits)."""
    return average_weight_bits(g), average_act_bits(g)


def evaluate(model: QuantGraph, teacher: FloatGraph, images: np.ndarray,
             labels: np.ndarray | None, backend: str = "auto", graph: Graph | None = None
             ) -> tuple[dict[str, Any], Graph]:
    """Integer and fake-quant quality on held-out images, plus the cost of the integer graph
    (`graph`: the model already integerized, as this returns it)."""
    from ..runtime.fidelity import argmax_lowest, fidelity
    from ..runtime import Session

    g = model.integerize() if graph is None else graph
    il = Session(g, backend).run(images).astype(np.int64)
    fq = fake_quant_logits(model, images)
    fl = run_float_graph(teacher, images)
    ip, qp, fp = argmax_lowest(il), argmax_lowest(fq), argmax_lowest(fl)
    cost = micronet_score(g)
    wb, ab = average_bits(g)
    res: dict[str, Any] = {"images": int(len(images))}
    if labels is not None:
        res.update(int_acc=float((ip == labels).mean()), fq_acc=float((qp == labels).mean()),
                   float_acc=float((fp == labels).mean()))
    fid = fidelity(fl, il, g.meta["logit_scale"])
    res.update(int_agree_float=fid.top1_agreement, fq_agree_float=float((qp == fp).mean()),
               int_top5_float=fid.top5_containment, int_sqnr_db=fid.sqnr_db,
               int_vs_fq_agree=float((ip == qp).mean()),
               metric=cost["score"], params=cost["params"], ops=cost["ops"],
               avg_weight_bits=wb, avg_act_bits=ab)
    return res, g


def quant_info(g: Graph) -> dict[str, Any]:
    """Bits of every channel: per conv, weight bits of each output channel and the activation
    bits of each channel of the tensor it produces; per other node, its output's bits."""
    layers = {}
    for n in g.nodes:
        t = g.tensors[n.output]
        e: dict[str, Any] = {"op": n.op, "act_bits": t.bits.astype(int).tolist()}
        if n.op == "conv":
            e["weight_bits"] = n.arrays["wbits"].astype(int).tolist()
            e["mode"] = n.attrs.get("mode", "int")
            if e["mode"] == "ternary":  # the MIT MicroNet entry's count: n/16 + 2 (Wp, Wn)
                e["ttq_storage_mit_rule"] = n.arrays["weight"].size / 16 + 2
        layers[n.name] = e
    wb, ab = average_bits(g)
    cost = micronet_score(g)
    return {"model": g.meta.get("model"), "avg_weight_bits": wb, "avg_act_bits": ab,
            "metric": cost["score"], "params": cost["params"], "ops": cost["ops"],
            "layers": layers}


def plot_bits(g: Graph, path: str | Path, title: str = "") -> None:
    """Bar chart per conv layer: mean weight bits (dark) and mean output activation bits
    (light), like the AQ entry's bit-distribution figures. Pillow only."""
    from PIL import Image, ImageDraw

    convs = list(g.weight_nodes())
    wb = [float(n.arrays["wbits"].mean()) for n in convs]
    ab = [float(np.minimum(g.tensors[n.output].bits, 8).mean()) for n in convs]
    bar, gap, h, top, left = 8, 6, 260, 30, 40
    width = left + len(convs) * (2 * bar + gap) + 20
    im = Image.new("RGB", (max(width, 320), h + top + 40), "white")
    d = ImageDraw.Draw(im)
    ymax = max(8.0, max(wb + ab + [1.0]))
    y0 = top + h
    for b in range(0, int(ymax) + 1, 2):
        y = y0 - b / ymax * h
        d.line([(left - 4, y), (im.width - 10, y)], fill=(225, 225, 225))
        d.text((4, y - 6), f"{b:>2}", fill="black")
    for i, (w, a) in enumerate(zip(wb, ab)):
        x = left + i * (2 * bar + gap)
        d.rectangle([x, y0 - w / ymax * h, x + bar - 1, y0], fill=(31, 90, 160))
        d.rectangle([x + bar, y0 - a / ymax * h, x + 2 * bar - 1, y0], fill=(240, 150, 40))
    d.text((left, 6), title or "bits per layer", fill="black")
    d.text((left, y0 + 8), "dark: mean weight bits   light: mean activation bits (output)  "
           "x: conv layers in order", fill="black")
    tmp = Path(path).with_suffix(".tmp.png")
    im.save(tmp)
    tmp.replace(path)


def write_reports(g: Graph, folder: str | Path, title: str = "") -> None:
    folder = Path(folder)
    write_json(folder / "quant_info.json", quant_info(g))
    plot_bits(g, folder / "bits.png", title)


def format_eval(res: dict[str, Any]) -> str:
    lines = []
    if "int_acc" in res:
        lines.append(f"accuracy: integer {100 * res['int_acc']:.2f}%   fake-quant "
                     f"{100 * res['fq_acc']:.2f}%   gap {100 * (res['fq_acc'] - res['int_acc']):+.2f}"
                     f"   (float {100 * res['float_acc']:.2f}%, {res['images']} images)")
    lines.append(f"agreement with float top-1: integer {100 * res['int_agree_float']:.2f}%   "
                 f"fake-quant {100 * res['fq_agree_float']:.2f}%   integer top-5 "
                 f"{100 * res['int_top5_float']:.2f}%   SQNR {res['int_sqnr_db']:.2f} dB")
    lines.append(f"integer vs fake-quant top-1 agreement: {100 * res['int_vs_fq_agree']:.2f}%")
    lines.append(f"metric {res['metric']:.6f}   #params {res['params']:.1f}   #ops "
                 f"{res['ops']:.1f}   avg bits: weights {res['avg_weight_bits']:.3f}, "
                 f"activations {res['avg_act_bits']:.3f}")
    return "\n".join(lines)
