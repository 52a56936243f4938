"""Learned rounding (`--rounding learned`): each weight rounds down or up as minimises the
error of its block's output, not its own (AdaRound, Nagel et al. 2020; block reconstruction as
in BRECQ, Li et al. 2021). The float graph is cut into blocks (a residual block, or a chain of
convs sharing a module prefix); block by block, in order, on the calibration images:

- the block's input is the *quantized* model's (earlier blocks already rounded as learned, every
  activation quantized as the integer ops quantize it); its target (`target`) either the float
  model's output there ('model', AdaRound's asymmetric reconstruction: each block also makes
  up for the error that reaches it), or the float block's output on that same quantized input
  ('block': each block fits its own weights' error only), or a blend of the two ('blend', the
  first's weight `blend`). On Lite0's held-out crops (docs/LOWBIT.md, coded weights) 'block'
  is level with the others at 0.5x the bytes of 8 bits (14.34 dB against 14.36 'model' and
  14.49 'blend') and the only one to keep all 108 confident crops, and the best at 0.375x
  (8.32 against 7.75 and 8.23): the error reaching the late blocks is mostly the calibration
  photos' own, and making up for it does not carry over; above 0.5x 'blend' and 'model' are
  0.3-1.1 dB better. `--bits auto --budget B` takes 'block' at B <= 0.5 and 'blend' above;
- each weight code is floor(We/sw) + h(V), h a rectified sigmoid of a free variable V started
  at the weight's fractional part; Adam minimises the block's output error plus a regulariser
  that drives every h to 0 or 1 (its exponent annealed from 20 to 2 after a 20% warm-up);
- then h becomes a hard 0/1 choice: the codes are plain integers at the same scales, each
  within one step of We/sw, checked by integerize (inside the bits' range), so the exported
  model is exactly what the runtime computes and the fake-quant model still matches it.

Cost: `iters` Adam steps per block on batches of 16 images, plus a few passes over all images
(Lite0, 18 blocks, 200 steps, 1024 images: about 10 minutes on 2 cores), reported in the
file's calibration metadata with each block's output error before and after.

The schedule does not converge, and that is measured to be the better choice here: at LR 1e-2
an Adam step moves V by about 0.01, so in 200 steps a weight whose fraction is near 1/2 cannot
reach a hard 0/1 (20-37% of the variables of Lite0's first blocks end undecided and take the
sign of V). Converged (LR 0.1: <= 4% undecided, 6-23% of codes off nearest) the rounding
fits the 8 calibration photos far better (0.5x: last block's error 0.028 -> 0.018) and the
held-out crops worse (11.76 -> 11.12 dB): its gains carry over to other photos up to block 11
and not in the late blocks (docs/LOWBIT.md)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..quant.bits import weight_code_max
from ..quant.cost import input_channel_map
from ..quant.requant import implied_scale
from ..quant.weights import code_bits, expand_groups
from .fakequant import FakeQuantGraph
from .float_exec import apply_node, normalize_input
from ..ir.float_graph import FloatGraph, FloatNode
from .integerize import effective_weights, grouped_weight_codes
from ..ir.graph import Graph
from .options import ROUNDING_TARGETS

ZETA, GAMMA = 1.1, -0.1  # rectified sigmoid stretch (AdaRound)
REG_WEIGHT = 0.01
WARMUP = 0.2
BETA = (20.0, 2.0)
LR = 1e-2  # not converging is the regulariser: see the module docstring
BATCH = 16
EVAL_IMAGES = 64  # the block errors reported: the first images (the user's own)


def pieces(fg: FloatGraph) -> list[list[FloatNode]]:
    """Consecutive node groups with one input tensor each: the graph is cut wherever a single
    tensor carries everything later nodes need; a piece without a conv joins the one before."""
    last_use: dict[str, int] = {}
    for i, n in enumerate(fg.nodes):
        for t in n.inputs:
            last_use[t] = i
    cuts: list[list[FloatNode]] = []
    cur: list[FloatNode] = []
    live = {fg.input}
    for i, n in enumerate(fg.nodes):
        cur.append(n)
        live.add(n.output)
        live = {t for t in live if last_use.get(t, -1) > i or t == fg.output}
        if live <= {n.output}:
            cuts.append(cur)
            cur = []
    if cur:
        cuts.append(cur)
    out: list[list[FloatNode]] = []
    for p in cuts:
        if out and not any(n.op == "conv" for n in p):
            out[-1] = out[-1] + p
        else:
            out.append(p)
    return out


def blocks(fg: FloatGraph) -> list[list[FloatNode]]:
    """The reconstruction units: `pieces`, adjacent ones whose first conv shares a module
    prefix (`_blocks.0.`) joined."""
    def key(p: list[FloatNode]) -> str | None:
        return next((n.name.rpartition(".")[0] for n in p if n.op == "conv"), None)

    out: list[list[FloatNode]] = []
    for p in pieces(fg):
        if out and key(p) is not None and key(p) == key(out[-1]):
            out[-1] = out[-1] + p
        else:
            out.append(p)
    return out


def _rect_sigmoid(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


class _Rounding:
    """One conv's learnable rounding: codes = clamp(floor(We/(sw*m)) + h(V), -qmax, qmax) * m
    on the rows with >= 2 code bits (m: the weight's group multiplier, 1 without groups, kept
    as the nearest rounding chose it); other rows keep their nearest codes."""

    def __init__(self, n: FloatNode, node, s_in: np.ndarray, s_out: np.ndarray,
                 wrange: np.ndarray | float):
        bits = code_bits(node.arrays)
        group = node.attrs.get("weight_group", 0)
        we = effective_weights(n, s_in)
        q, sw, gm, _ = grouped_weight_codes(we, bits, n.bias, wrange, group)
        mult = np.ones_like(we) if gm is None else expand_groups(gm, we.shape[1], group)
        self.mult = torch.from_numpy(mult).float()
        self.shape = n.weight.shape
        self.learn = torch.from_numpy(bits >= 2)
        r = we / (sw[:, None] * mult)
        base = np.floor(r)
        frac = np.clip(r - base, 1e-4, 1 - 1e-4)
        self.base = torch.from_numpy(base).float()
        self.nearest = torch.from_numpy(q).float()
        self.qmax = torch.from_numpy(weight_code_max(bits).astype(np.float32))[:, None]
        self.v = torch.nn.Parameter(torch.from_numpy(
            -np.log((ZETA - GAMMA) / (frac - GAMMA) - 1)).float())
        self.unit = code_unit(n, node, s_in, s_out)

    def codes(self, hard: bool) -> torch.Tensor:
        h = (self.v >= 0).float() if hard else _rect_sigmoid(self.v)
        c = torch.clamp(self.base + h, -self.qmax, self.qmax) * self.mult
        return torch.where(self.learn[:, None], c, self.nearest)

    def weight(self, hard: bool = False) -> torch.Tensor:
        return self.codes(hard).reshape(self.shape) * self.unit

    def regularizer(self, beta: float) -> torch.Tensor:
        h = _rect_sigmoid(self.v)[self.learn]
        return (1 - (2 * h - 1).abs().pow(beta)).sum()


def run_nodes(nodes: list, x: torch.Tensor, fn, want: str | None = None) -> torch.Tensor:
    """Run a block's `nodes` (fn(node, inputs) -> output) on its input `x`; the tensor named
    `want` (default: the last output), or `x` itself when there is nothing to run."""
    if not nodes:
        return x
    env = {nodes[0].inputs[0]: x}
    for n in nodes:
        if want in env:
            break
        env[n.output] = fn(n, [env[t] for t in n.inputs])
    return env[want or nodes[-1].output]


def code_unit(n: FloatNode, node, s_in: np.ndarray, s_out: np.ndarray) -> torch.Tensor:
    """Per weight (broadcast over taps), the real weight one code of IR conv `node` stands
    for: the scale its multiplier implies, unfolded from the input's activation scales."""
    o, cg = n.weight.shape[:2]
    sa = s_in[input_channel_map(o, cg, n.attrs["groups"])][:, :, None, None]
    scale = implied_scale(node.arrays["mult"], node.arrays["shift"], s_out)
    return torch.from_numpy(scale[:, None, None, None] / sa).float()


def learn_rounding(float_fg: FloatGraph, fg: FloatGraph, graph: Graph, images: np.ndarray,
                   iters: int = 200, wrange: dict[str, np.ndarray] | None = None,
                   progress: bool = True, batch: int = BATCH, seed: int = 0,
                   target: str = "model", blend: float = 0.5
                   ) -> tuple[dict[str, np.ndarray], dict]:
    """(learned codes (O, K) int64 per conv, report) for `graph`, the nearest-rounded
    integerization of `fg` (the float model `float_fg`, biases possibly corrected) with
    weight ranges `wrange`; `images` uint8 NHWC calibration images. Each block reproduces
    `float_fg`'s (the float model's, not its bias-corrected copy's) block: `target` 'model',
    its output on the float model's input (the block also makes up for the error that reaches
    it), or 'block', its output on the block's own quantized input (its own weights' error
    only), or 'blend', `blend` x the first + (1 - `blend`) x the second. The report's errors
    are against that target."""
    if target not in ROUNDING_TARGETS:
        raise ValueError(f"learn_rounding: target {target!r}")
    a = {"model": 1.0, "block": 0.0}.get(target, blend)  # the float model's output's weight
    t0 = time.time()
    wrange = wrange or {}
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    fq = FakeQuantGraph(graph)
    ir = {n.name: n for n in graph.nodes}
    ternary = {n.name for n in graph.weight_nodes() if n.attrs.get("mode") == "ternary"}
    with torch.no_grad():  # the float model's input (only a target with a > 0 follows it)
        xf = torch.cat([normalize_input(images[i:i + 64], fg)
                        for i in range(0, len(images), 64)]) if a > 0 else None
        xq = torch.cat([fq.input_values(images[i:i + 64]) for i in range(0, len(images), 64)])
    codes: dict[str, np.ndarray] = {}
    report: list[dict[str, Any]] = []
    parts = blocks(fg)
    bar = tqdm(parts, desc="learned rounding", disable=not progress)
    float_nodes = {n.name: n for n in float_fg.nodes}
    for part in bar:
        irs = [ir[n.name] for n in part]
        targets = [float_nodes[n.name] for n in part]
        wb = {n.name: (torch.from_numpy(n.weight).float(), torch.from_numpy(n.bias).float())
              for n in targets if n.op == "conv"}

        def float_block(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([run_nodes(targets, x[i:i + 64], lambda n, ins: apply_node(
                n, ins, *wb.get(n.name, (None, None)))) for i in range(0, len(x), 64)])

        with torch.no_grad():  # the float block on the float model's / its own input
            yf = float_block(xf) if a > 0 else None
            y = yf if a == 1 else float_block(xq)
            if 0 < a < 1:
                y = a * yf + (1 - a) * y
        learn = {n.name: _Rounding(n, ir[n.name], graph.tensors[n.inputs[0]].scale,
                                   graph.tensors[n.output].scale, wrange.get(n.name, 1.0))
                 for n in part if n.op == "conv" and n.name not in ternary}

        def forward(x: torch.Tensor, hard: bool) -> torch.Tensor:
            def fn(n, ins):
                r = learn.get(n.name)
                p = (r.weight(hard), fq.params[n.name][1]) if r else None
                return fq.node(n, ins, p, ste=not hard)
            return run_nodes(irs, x, fn)

        def error(hard: bool) -> float:
            """Relative squared error of the block's output on (up to) EVAL_IMAGES images."""
            with torch.no_grad():
                x, t = xq[:EVAL_IMAGES], y[:EVAL_IMAGES]
                return float(((forward(x, hard) - t) ** 2).sum() / max(float((t ** 2).sum()),
                                                                       1e-30))

        before = error(True)
        if learn:
            opt = torch.optim.Adam([r.v for r in learn.values()], lr=LR)
            for it in range(iters):
                idx = torch.from_numpy(gen.choice(len(xq), min(batch, len(xq)), replace=False))
                out = forward(xq[idx], hard=False)
                rec = ((out - y[idx]) ** 2).sum(1).mean()
                done = it / iters
                if done < WARMUP:
                    reg = torch.zeros(())
                else:
                    t = (done - WARMUP) / (1 - WARMUP)
                    beta = BETA[1] + 0.5 * (BETA[0] - BETA[1]) * (1 + math.cos(t * math.pi))
                    reg = REG_WEIGHT * sum(r.regularizer(beta) for r in learn.values())
                opt.zero_grad()
                (rec + reg).backward()
                opt.step()
            for name, r in learn.items():
                codes[name] = r.codes(hard=True).detach().numpy().astype(np.int64)
        after = error(True)
        report.append({"block": part[0].name, "error_before": round(before, 6),
                       "error_after": round(after, 6)})
        bar.set_postfix_str(f"rel. error {before:.4f} -> {after:.4f}")
        with torch.no_grad():
            xq = torch.cat([forward(xq[i:i + 64], hard=True) for i in range(0, len(xq), 64)])
        xf = yf  # the float model's input to the next block (None: not needed)
    info = {"iters": iters, "batch": batch, "blocks": len(parts), "images": int(len(images)),
            "seconds": round(time.time() - t0, 1), "per_block": report}
    return codes, info
