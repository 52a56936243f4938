"""`--act-bits auto`: activation bits below 8 where they cost little, priced by the MicroNet
score (AQ's seeds average 5.07 activation bits).

1. Per activation tensor, the logit noise of quantizing that tensor alone at PROBES bits (its
   export range, nearest rounding, the float model everywhere else) is measured on calibration
   images, replaying only the nodes downstream of it, and interpolated log-linearly to every
   width 2..8; the noise it adds is that minus its noise at 8 bits.
2. Each width's price is the MicroNet score it saves (quant/cost.py: the multiplies that read
   the tensor count max(weight bits, activation bits) / 16, its clamp bounds count its bits),
   computed on the integer graph the weight plan gives.
3. A Lagrangian search (the one `--bits auto` uses) lowers the widths that save the most score
   per unit of noise, only widths that narrow multiplies (where the weights are 8 bits wide a
   narrower activation saves nothing but clamp bounds, and keeps its 8), while the added noise
   stays within `share` times the logit noise of the weight plan itself (the nearest-rounded
   integer graph at 8-bit activations). The chosen set is measured as a whole on the same
   images, and the allowance bisected down until it fits: `share` 0.1 is at most 10% more
   noise (0.4 dB) on the planning images; on other photos it can cost more (docs/BENCHMARKS.md).
Table inputs (8-bit codes index them), max-pool outputs (they share their input's parameters),
the network input and the logits keep their widths."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from ..quant import act_params_from_range
from ..quant.cost import REF_OPS, REF_PARAMS, layer_costs
from .auto_bits import lagrangian_choice
from .bias_correction import sample
from .calibrate import Ranges
from .fakequant import FakeQuantGraph, fake_quantize
from .float_exec import apply_node, run_float_graph
from ..ir.float_graph import FloatGraph
from .integerize import act_range, lut_inputs
from ..ir.graph import Graph

CANDIDATES = np.arange(2, 9)
PROBES = (2, 3, 4, 6, 8)
DEFAULT_SHARE = 0.1
SEARCH = 6


def candidate_tensors(fg: FloatGraph) -> list[str]:
    """Tensors whose width the planner may lower, in graph order."""
    luts = lut_inputs(fg)
    pooled = {n.inputs[0] for n in fg.nodes if n.op == "maxpool"}
    return [n.output for n in fg.nodes
            if n.output != fg.output and n.op != "maxpool" and n.output not in luts
            and n.output not in pooled]


def fake_act(y: torch.Tensor, lo: np.ndarray, hi: np.ndarray, bits: int) -> torch.Tensor:
    """`y` (N, C, H, W) rounded to `bits`-bit codes of the range [lo, hi] per channel, in
    real units, as the integer op leaves it."""
    s, z = act_params_from_range(lo, hi, np.full(lo.shape, bits))
    s_t = torch.from_numpy(s).to(y.dtype).view(1, -1, 1, 1)
    z_t = torch.from_numpy(z.astype(np.float64)).to(y.dtype).view(1, -1, 1, 1)
    return fake_quantize(y, s_t, z_t, torch.zeros_like(z_t),
                         torch.full_like(z_t, (1 << bits) - 1))


class _Replay:
    """The float graph's tensors on a few images, kept, to replay only what lies downstream
    of one changed tensor."""

    def __init__(self, fg: FloatGraph, images: np.ndarray):
        self.fg = fg
        self.params = {n.name: (torch.from_numpy(n.weight).float(), torch.from_numpy(n.bias).float())
                       for n in fg.conv_nodes()}
        env: dict[str, torch.Tensor] = {}

        def keep(name: str, t: torch.Tensor) -> None:
            env[name] = torch.cat([env[name], t]) if name in env else t

        self.ref = torch.from_numpy(run_float_graph(fg, images, hook=keep))
        self.env = env
        self.producer = {n.output: i for i, n in enumerate(fg.nodes)}

    @torch.no_grad()
    def noise(self, t: str, value: torch.Tensor) -> float:
        """Mean squared logit error with tensor `t` replaced by `value`."""
        env = dict(self.env)
        env[t] = value
        dirty = {t}
        for n in self.fg.nodes[self.producer[t] + 1:]:
            if dirty.intersection(n.inputs):
                env[n.output] = apply_node(n, [env[i] for i in n.inputs],
                                           *self.params.get(n.name, (None, None)))
                dirty.add(n.output)
        y = env[self.fg.output].reshape(len(self.ref), -1).double()
        return float(((y - self.ref) ** 2).mean())


def _interp(probes: dict[int, float]) -> np.ndarray:
    bs = np.array(sorted(probes))
    logs = np.log(np.maximum([probes[b] for b in bs], 1e-30))
    return np.exp(np.interp(CANDIDATES, bs, logs))


def _score_of(graph: Graph, t: str) -> tuple[np.ndarray, np.ndarray]:
    """(MicroNet score, ops) of the nodes that produce or read `t`, per candidate width of
    `t`."""
    nodes = [n for n in graph.nodes if n.output == t or t in n.inputs]
    spec = graph.tensors[t]
    score, ops = np.zeros(len(CANDIDATES)), np.zeros(len(CANDIDATES))
    for i, b in enumerate(CANDIDATES):
        tensors = dict(graph.tensors)
        tensors[t] = replace(spec, bits=np.full(spec.bits.shape, b, np.int64))
        rows = layer_costs(SimpleNamespace(nodes=nodes, tensors=tensors))
        ops[i] = sum(r.ops for r in rows)
        score[i] = sum(r.params for r in rows) / REF_PARAMS + ops[i] / REF_OPS
    return score, ops


def auto_act_bits(fg: FloatGraph, graph: Graph, images: np.ndarray, ranges: Ranges,
                  build: Callable[[dict[str, np.ndarray]], Graph], share: float = DEFAULT_SHARE,
                  n_images: int = 16, progress: bool = True
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(activation bits per tensor (C,), report) for float graph `fg` whose weight plan is
    integerized as `graph` (8-bit activations), calibrated `ranges`: widths 2..8 minimising
    the MicroNet score while the logit noise they add stays within `share` times the noise
    `graph` has on the same images. `build(abits)` integerizes the plan with those widths:
    the chosen set is measured as a whole, and the allowance bisected down (SEARCH steps) when
    the sum of single-tensor noises understates it."""
    x = sample(images, n_images)
    rp = _Replay(fg, x)

    def noise_of(g: Graph) -> float:
        return float(((torch.from_numpy(FakeQuantGraph(g)(x)) - rp.ref) ** 2).mean())

    base = noise_of(graph)
    nodes = {n.output: n for n in fg.nodes}
    names = candidate_tensors(fg)
    added, cost, ops = [], [], []
    for t in tqdm(names, desc="activation sensitivity", disable=not progress):
        lo, hi = act_range(nodes[t], *ranges[t])
        meas = {b: rp.noise(t, fake_act(rp.env[t], lo, hi, b)) for b in PROBES}
        curve = _interp(meas)
        extra = np.maximum(curve - curve[-1], 0.0)
        added.append(np.maximum.accumulate(extra[::-1])[::-1])  # never less noise for fewer bits
        sc, op = _score_of(graph, t)
        cost.append(sc)
        ops.append(op)
    added_a, cost_a = np.stack(added), np.stack(cost)
    ops_a = np.stack(ops)
    ok = (ops_a < ops_a[:, -1:]) | (CANDIDATES == 8)[None, :]
    rows = np.arange(len(names))
    target = share * base

    def plan(allow: float) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
        idx = lagrangian_choice(cost_a, added_a, ok, allow)
        abits = {t: np.full(graph.tensors[t].bits.shape, int(CANDIDATES[i]), np.int64)
                 for t, i in zip(names, idx)}
        return idx, abits, noise_of(build(abits)) - base

    best = plan(target)
    if best[2] > target:  # the single-tensor noises understate the whole: search below
        lo_a, hi_a = 0.0, target
        best = (np.full(len(names), len(CANDIDATES) - 1),
                {t: np.full(graph.tensors[t].bits.shape, 8, np.int64) for t in names}, 0.0)
        for _ in tqdm(range(SEARCH), desc="activation widths", disable=not progress):
            trial = plan((lo_a + hi_a) / 2)
            if trial[2] <= target:
                best, lo_a = trial, (lo_a + hi_a) / 2
            else:
                hi_a = (lo_a + hi_a) / 2
    idx, abits, measured = best
    before = float(cost_a[:, -1].sum())
    report = {"share": share, "images": int(len(x)), "probes": list(PROBES),
              "base_noise": base, "predicted_added_noise": float(added_a[rows, idx].sum()),
              "added_noise": measured,
              "score_saved": before - float(cost_a[rows, idx].sum()),
              "bits": {t: int(CANDIDATES[i]) for t, i in zip(names, idx)}}
    return abits, report
