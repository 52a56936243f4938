"""Human-readable views of an IR graph: per-layer table (shape, weight/activation bits
min/mean/max, bytes), totals, MicroNet cost. Used by aq-inspect, aq-export and the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..ir.graph import Graph
from ..quant.bits import mean_bits
from ..quant.cost import micronet_score
from ..quant.packing import node_weight_bytes
from ..quant.weights import code_bits, stored_weight_bits


def weight_bytes(graph: Graph) -> int:
    return sum(node_weight_bytes(n.arrays, n.attrs) for n in graph.weight_nodes())


def n_weights(graph: Graph) -> int:
    """How many weights the convs hold."""
    return sum(int(n.arrays["weight"].size) for n in graph.weight_nodes())


def average_weight_bits(graph: Graph) -> float:
    """Bits per weight over the model as packed (code bits, group multipliers' bits
    included; entropy-coded files store fewer: weight_bytes)."""
    return mean_bits((stored_weight_bits(n.arrays, n.attrs),
                      int(np.prod(n.arrays["weight"].shape[1:]))) for n in graph.weight_nodes())


def average_act_bits(graph: Graph) -> float:
    """Bits per activation value over the tensors the integer ops requantize (not the uint8
    input, the int32 logits, or a maxpool's copy of its input's codes), each channel weighted
    by its pixels (quant.bits.mean_bits): what training reports for the same model."""
    copies = {n.output for n in graph.nodes if n.op == "maxpool"}
    return mean_bits((t.bits, t.shape[1] * t.shape[2]) for name, t in graph.tensors.items()
                     if name not in (graph.input, graph.output) and name not in copies)


def layer_rows(graph: Graph) -> list[dict]:
    rows = []
    for n in graph.nodes:
        out = graph.tensors[n.output]
        r = {"name": n.name, "op": n.op, "out_shape": list(out.shape),
             "act_bits": [int(out.bits.min()), float(out.bits.mean()), int(out.bits.max())]}
        if n.op == "conv":
            wb = code_bits(n.arrays)
            r.update(weight_shape=list(n.arrays["weight"].shape), mode=n.attrs.get("mode"),
                     weight_bits=[int(wb.min()), float(wb.mean()), int(wb.max())],
                     weight_bytes=node_weight_bytes(n.arrays, n.attrs))
            if "weight_group" in n.attrs:
                r["weight_group"] = n.attrs["weight_group"]
        rows.append(r)
    return rows


def bits_json(graph: Graph) -> dict:
    """The bits of a model in the `--bits FILE.json` format (per-channel lists where channels
    differ), so `aq-inspect --bits-json` output re-exports the same bits. Ternary thresholds are
    not stored in a model; ternary layers appear with weight 2."""
    def compact(a: np.ndarray):
        return int(a[0]) if np.all(a == a[0]) else [int(v) for v in a]

    layers: dict = {}
    for n in graph.nodes:
        e = {}
        if n.op == "conv":
            e["weight"] = compact(code_bits(n.arrays))
        if n.output != graph.output:
            e["act"] = compact(graph.tensors[n.output].bits)
        layers[n.name] = e
    return {"layers": layers}


def inspect_dict(graph: Graph, path: str | Path | None = None) -> dict:
    cost = micronet_score(graph)
    rows = layer_rows(graph)
    d = {"model": graph.meta.get("model"), "layers": rows,
         "weight_bytes": sum(r.get("weight_bytes", 0) for r in rows),  # weight_bytes(graph)
         "avg_weight_bits": average_weight_bits(graph),
         "avg_act_bits": average_act_bits(graph), "micronet": {k: cost[k] for k in
                                                                ("params", "ops", "score")},
         "micronet_layers": cost["layers"]}
    for k in ("calibration", "auto_bits", "auto_act_bits"):
        if k in graph.meta:
            d[k] = graph.meta[k]
    if path is not None:
        d["file_bytes"] = Path(path).stat().st_size
    return d


def format_table(graph: Graph, path: str | Path | None = None) -> str:
    d = inspect_dict(graph, path)
    lines = [f"{'layer':34} {'op':5} {'weight shape':18} {'w bits min/mean/max':20} "
             f"{'a bits min/mean/max':20} {'bytes':>9}"]
    for r in d["layers"]:
        wb = r.get("weight_bits")
        ab = r["act_bits"]
        lines.append(f"{r['name'][:34]:34} {r['op']:5} {str(r.get('weight_shape', '')):18} "
                     f"{(f'{wb[0]}/{wb[1]:.2f}/{wb[2]}' if wb else ''):20} "
                     f"{f'{ab[0]}/{ab[1]:.2f}/{ab[2]}':20} {r.get('weight_bytes', ''):>9}")
    lines.append(summarize(graph, path, d))
    return "\n".join(lines)


def cost_table(graph: Graph) -> str:
    """The MicroNet calculation, a row per layer (see aq_runtime.quant.cost for the rules)."""
    from ..quant.cost import REF_OPS, REF_PARAMS
    c = micronet_score(graph)
    lines = [f"{'layer':34} {'op':5} {'w bits':>6} {'a bits':>6} {'params':>12} {'ops':>14}"]
    for r in c["layers"]:
        lines.append(f"{r['name'][:34]:34} {r['op']:5} {r['weight_bits_mean']:>6.2f} "
                     f"{r['act_bits_mean']:>6.2f} {r['params']:>12.1f} {r['ops']:>14.1f}")
    lines.append(f"total params {c['params']:.1f} / {REF_PARAMS:.3g} + ops {c['ops']:.1f} / "
                 f"{REF_OPS:.4g} = score {c['score']:.5f}")
    return "\n".join(lines)


def summarize(graph: Graph, path: str | Path | None = None, d: dict | None = None) -> str:
    """The file's totals and how it was made, in a few lines (`d`: its inspect_dict, if
    already built)."""
    d = inspect_dict(graph, path) if d is None else d
    m = d["micronet"]
    coded = any(n.attrs.get("weight_coding", "packed") != "packed"
                for n in graph.weight_nodes())
    stored = (f" ({8 * d['weight_bytes'] / max(n_weights(graph), 1):.2f} bits per weight as "
              "coded)" if coded else "")
    s = (f"{d['model']}: weights {d['weight_bytes']} bytes{stored}, avg weight bits "
         f"{d['avg_weight_bits']:.2f}, avg act bits {d['avg_act_bits']:.2f}, MicroNet params "
         f"{m['params']:.0f} ops {m['ops']:.4g} score {m['score']:.4f}")
    if path is not None:
        s += f", file {d['file_bytes']} bytes ({path})"
    c = d.get("calibration")
    if isinstance(c, dict):
        bc = c.get("bias_correction")
        s += (f"\ncalibration: {c.get('method')} ranges ({c.get('granularity')}) on "
              f"{c.get('images')} images")
        if c.get("synthetic"):
            s += f" ({c['synthetic']} synthesized from the model's BatchNorm statistics)"
        if bc is not None:
            s += f", bias correction {'on' if bc else 'off'}"
        if c.get("clipping", "max") != "max":
            s += f", weight clipping {c['clipping']}"
        if c.get("weight_groups"):
            s += f", weight groups of {c['weight_groups']} (a multiplier 1..8 each)"
        if c.get("weight_coding", "packed") != "packed":
            s += f", weight codes {c['weight_coding']}-coded"
        rounding = c.get("rounding")
        info = c.get(f"{rounding}_rounding")
        if isinstance(info, dict):
            steps = (f"{info.get('blocks')} blocks x {info.get('iters')} steps, "
                     if "iters" in info else "")
            if c.get("rounding_target") == "block":
                steps = "each block's own error, " + steps
            elif c.get("rounding_target") == "blend":
                steps = (f"{c.get('rounding_blend')} x the float model's output + the rest "
                         "each block's own, " + steps)
            s += (f", {rounding} rounding ({steps}{info.get('images')} images, "
                  f"{info.get('seconds')} s)")
        elif rounding:
            s += f", {rounding} rounding"
    b = d.get("auto_bits")
    if isinstance(b, dict) and "budget_bytes" in b:
        per = b.get("allocation", b.get("granularity"))  # older files: 'granularity'
        limit = (f"{b['budget']:g}x uniform 8's weight bytes ({b['budget_bytes']})"
                 if "budget" in b else f"{b['budget_bytes']} weight bytes")
        s += f"\nweight widths auto: one per {per}, within {limit}"
    a = d.get("auto_act_bits")
    if isinstance(a, dict) and a.get("base_noise"):
        s += (f"\nactivation widths auto: MicroNet score -{a.get('score_saved', 0):.4f} for "
              f"{100 * a.get('added_noise', 0) / a['base_noise']:+.1f}% logit noise on "
              f"{a.get('images')} calibration images (allowed {100 * a.get('share', 0):.0f}%)")
    return s
