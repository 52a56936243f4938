"""The trainable fake-quant model: a float graph (BN folded) whose weights, per-channel range
scales r (`w_range`, `a_range`: the AQ paper's alpha) and per-channel precisions p
(`w_precision`, `a_precision`: its beta) are torch parameters, quantized with the exporter's
formulas (docs/SEMANTICS.md) so that `export_parts()` hands integerization exactly what was trained:

- weights: effective weights We = W * s_a[c] (input scales folded in), per output channel
  S = r * T / qmax, T = max|We[o]| (mean|We[o]| at 1 bit), qmax = 2^(b-1) - 1, codes
  clamp(round(We / S)), b = round(p * n); TTQ layers: {-Wn, 0, +Wp} with trained Wp, Wn;
- activations (every tensor a node produces, i.e. every conv and depthwise-conv input):
  per channel range r * [lo0, hi0] from calibration, ReLU/ReLU6 as clamp bounds,
  S = span / (2^b - 1), zero point round(-lo / S); table (swish) inputs fixed at 8 bits;
- bias: round(B / S_w) (clamped to `bias_bits` below 32).
Rounding is half up with straight-through gradients (training.ste). The cost is
`quant.cost`'s own per-op functions applied to the live bit-widths, so it is differentiable
and equals the MicroNet score of the exported graph."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import AqError
from ..export.calibrate import Ranges
from ..export.float_exec import apply_node, torch_act
from ..ir.float_graph import NONLINEAR, FloatGraph, FloatNode, node_act
from ..export.integerize import BIAS_CODE_LIMIT, lut_inputs, tensor_shapes
from ..quant.bits import ACT_BITS_MAX, LOGIT_BITS, WEIGHT_BITS_MAX
from ..quant.cost import conv_cost, elementwise_cost, input_channel_map
from .ste import bits_ste, round_ste, sign_ste, ternary_ste

STRATEGIES = ("aq", "uniform", "ttq", "progressive")


# checkpoints written before the parameters were renamed call them by the paper's letters
_OLD_NAMES = {"w_alpha.": "w_range.", "a_alpha.": "a_range.", "w_beta.": "w_precision.",
              "a_beta.": "a_precision."}


def renamed_parameters(state: dict[str, Any]) -> dict[str, Any]:
    """A QuantGraph state dict with the older parameter names mapped to the current ones."""
    def new(k: str) -> str:
        for old, cur in _OLD_NAMES.items():
            if k.startswith(old):
                return cur + k[len(old):]
        return k
    return {new(k): v for k, v in state.items()}


@dataclass
class QuantSetup:
    """How the model is quantized (saved in checkpoints as JSON)."""
    strategy: str = "aq"
    weight_bits: int = 8  # n of the weights: b = round(beta * n), beta starts at 1
    act_bits: int = 8  # n of the activations
    min_bits: int = 1
    max_bits: int = 8  # weights; activations stop at min(max_bits, 8)
    bias_bits: int = 32
    ttq_threshold: float = 0.05
    ttq_skip_depthwise: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(name: str) -> str:
    return name.replace(".", "__")


def _is_depthwise(n: FloatNode) -> bool:
    return n.attrs["groups"] > 1 and n.weight.shape[1] == 1


def _trained(orig: np.ndarray, p: torch.Tensor) -> np.ndarray:
    """float64 original + (float32 parameter - float32 original): exact when untouched."""
    delta = p.detach().double().numpy() - np.asarray(orig, np.float64).astype(np.float32)
    return np.asarray(orig, np.float64) + delta


class QuantGraph(nn.Module):
    """images (uint8 N x H x W x C tensor) -> float32 logits, quantized as exported."""

    def __init__(self, fg: FloatGraph, ranges: Ranges, setup: QuantSetup,
                 init_wbits: dict[str, np.ndarray] | None = None,
                 init_abits: dict[str, np.ndarray] | None = None):
        super().__init__()
        if setup.strategy not in STRATEGIES:
            raise AqError(f"unknown strategy {setup.strategy!r} ({', '.join(STRATEGIES)})")
        self.fg, self.setup = fg, setup
        self.shapes = tensor_shapes(fg)
        self.luts = lut_inputs(fg)
        self.w, self.b = nn.ParameterDict(), nn.ParameterDict()
        self.w_range, self.w_precision = nn.ParameterDict(), nn.ParameterDict()
        self.a_range, self.a_precision = nn.ParameterDict(), nn.ParameterDict()
        self.wp, self.wn = nn.ParameterDict(), nn.ParameterDict()
        self.ternary: set[str] = set()
        f32 = torch.float32
        x_in = np.asarray(fg.pixel_std, np.float64)
        self.register_buffer("s_in", torch.tensor(1.0 / x_in, dtype=f32))
        self.register_buffer("z_in", torch.tensor(np.floor(np.asarray(fg.pixel_mean) + 0.5),
                                                  dtype=f32))
        for n in fg.conv_nodes():
            k = _key(n.name)
            o = n.weight.shape[0]
            self.w[k] = nn.Parameter(torch.tensor(n.weight, dtype=f32))
            self.b[k] = nn.Parameter(torch.tensor(n.bias, dtype=f32))
            self.register_buffer(f"ch_{k}", torch.from_numpy(input_channel_map(
                o, n.weight.shape[1], n.attrs["groups"])))
            if setup.strategy == "ttq" and not (setup.ttq_skip_depthwise and _is_depthwise(n)):
                self.ternary.add(n.name)
                self.wp[k], self.wn[k] = (nn.Parameter(torch.tensor(v, dtype=f32))
                                          for v in self._ternary_init(n))
            wb0 = np.asarray((init_wbits or {}).get(n.name, np.full(o, setup.weight_bits)))
            self.register_buffer(f"wmax_{k}", torch.tensor(
                min(WEIGHT_BITS_MAX, max(setup.max_bits, int(np.max(wb0))))))
            self.w_range[k] = nn.Parameter(torch.ones(o))
            self.w_precision[k] = nn.Parameter(torch.tensor(wb0 / setup.weight_bits, dtype=f32))
        self.quantized = [n.output for n in fg.nodes
                          if n.output != fg.output and n.op != "maxpool"]
        for t in self.quantized:
            c = self.shapes[t][0]
            lo, hi = ranges[t]
            k = _key(t)
            f64 = torch.float64  # calibrated ranges kept exact: an untrained model exports as PTQ
            self.register_buffer(f"lo0_{k}", torch.tensor(np.broadcast_to(lo, (c,)), dtype=f64))
            self.register_buffer(f"hi0_{k}", torch.tensor(np.broadcast_to(hi, (c,)), dtype=f64))
            self.a_range[k] = nn.Parameter(torch.ones(c))
            ab0 = np.asarray((init_abits or {}).get(t, np.full(c, setup.act_bits)))
            self.a_precision[k] = nn.Parameter(
                torch.tensor(np.broadcast_to(ab0, (c,)) / setup.act_bits, dtype=f32))
        lo, hi = ranges[fg.output]
        c = self.shapes[fg.output][0]
        self.register_buffer("logit_lo", torch.tensor(np.broadcast_to(lo, (c,)), dtype=torch.float64))
        self.register_buffer("logit_hi", torch.tensor(np.broadcast_to(hi, (c,)), dtype=torch.float64))

    def w_max(self, name: str) -> int:
        return int(getattr(self, f"wmax_{_key(name)}"))

    def _ternary_init(self, n: FloatNode) -> tuple[float, float]:
        """Mean magnitude of the positive / negative parts, relative to max|w[o]|."""
        w = n.weight.reshape(n.weight.shape[0], -1)
        w = w / np.maximum(np.abs(w).max(axis=1, keepdims=True), 1e-30)
        t = self.setup.ttq_threshold
        pos, neg = w[w > t], w[w < -t]
        return (float(pos.mean()) if pos.size else 1.0, float(-neg.mean()) if neg.size else 1.0)

    # ---- parameter groups -------------------------------------------------------------
    def bit_parameters(self) -> list[nn.Parameter]:
        return list(self.w_precision.values()) + list(self.a_precision.values())

    def range_parameters(self) -> list[nn.Parameter]:
        return list(self.w_range.values()) + list(self.a_range.values())

    def other_parameters(self) -> list[nn.Parameter]:
        """Weights, biases and TTQ scales: neither bits nor ranges."""
        skip = {id(p) for p in self.bit_parameters() + self.range_parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    def clamp_bits_(self) -> None:
        """Keep beta where round(beta * n) stays in the allowed bits (projected step)."""
        s = self.setup
        with torch.no_grad():
            for n in self.fg.conv_nodes():
                self.w_precision[_key(n.name)].clamp_((s.min_bits - 0.49) / s.weight_bits,
                                                 (self.w_max(n.name) + 0.49) / s.weight_bits)
            hi = min(s.max_bits, ACT_BITS_MAX)
            for p in self.a_precision.values():
                p.clamp_((s.min_bits - 0.49) / s.act_bits, (hi + 0.49) / s.act_bits)

    # ---- bit-widths ---------------------------------------------------------------------
    def weight_bits(self, name: str) -> torch.Tensor:
        if name in self.ternary:
            return torch.full((self.w[_key(name)].shape[0],), 2.0)
        return bits_ste(self.w_precision[_key(name)], self.setup.weight_bits, self.setup.min_bits,
                        self.w_max(name))

    def act_bits(self, t: str) -> torch.Tensor:
        c = self.shapes[t][0]
        if t in self.luts:
            return torch.full((c,), 8.0)
        return bits_ste(self.a_precision[_key(t)], self.setup.act_bits, self.setup.min_bits,
                        min(self.setup.max_bits, ACT_BITS_MAX))

    def tensor_bits(self) -> dict[str, torch.Tensor]:
        fg = self.fg
        bits = {fg.input: torch.full((fg.input_shape[0],), 8.0)}
        for n in fg.nodes:
            c = self.shapes[n.output][0]
            if n.output == fg.output:
                bits[n.output] = torch.full((c,), float(LOGIT_BITS))
            elif n.op == "maxpool":
                bits[n.output] = bits[n.inputs[0]]
            else:
                bits[n.output] = self.act_bits(n.output)
        return bits

    # ---- quantizers ---------------------------------------------------------------------
    def act_quant(self, n: FloatNode, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fake-quantize node n's output y (pre-activation for convs): (x_hat, scale (C,))."""
        k = _key(n.output)
        alpha = self.a_range[k]
        lo = alpha * getattr(self, f"lo0_{k}").float()
        hi = alpha * getattr(self, f"hi0_{k}").float()
        act = node_act(n)
        if act in ("relu", "relu6") or n.op in ("sigmoid", "hsigmoid"):
            lo = torch.zeros_like(lo)
        if act == "relu6":
            hi = torch.minimum(hi, torch.full_like(hi, 6.0))
        if n.op in ("sigmoid", "hsigmoid"):
            hi = torch.minimum(hi, torch.ones_like(hi))
        lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
        levels = 2.0 ** self.act_bits(n.output) - 1
        span = hi - lo
        s = torch.where(span > 0, span / levels, 1.0 / levels)
        z = torch.clamp(round_ste(-lo / s), torch.zeros_like(levels), levels)
        clo, chi = torch.zeros_like(levels), levels
        if act in ("relu", "relu6"):
            clo = torch.maximum(clo, z)
        if act == "relu6":
            chi = torch.minimum(chi, z + round_ste(6.0 / s))
        v = (1, -1, 1, 1)
        q = torch.clamp(round_ste(y / s.view(v)) + z.view(v), clo.view(v), chi.view(v))
        return s.view(v) * (q - z.view(v)), s

    def weight_quant(self, n: FloatNode, s_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(fake-quant float weights W_hat = We_hat / s_a, fake-quant bias)."""
        k = _key(n.name)
        w, b = self.w[k], self.b[k]
        o = w.shape[0]
        sa = s_a[getattr(self, f"ch_{k}")][:, :, None, None]
        we = w * sa
        if n.name in self.ternary:
            we_hat = ternary_ste(we, self.wp[k], self.wn[k], self.setup.ttq_threshold)
            bias_scale = self.wp[k] * we.detach().abs().reshape(o, -1).max(1).values
        else:
            bits = self.weight_bits(n.name)
            we2 = we.reshape(o, -1)
            one = bits <= 1
            qmax = torch.where(one, torch.ones_like(bits), 2.0 ** (bits - 1) - 1)
            t = torch.where(one, we2.detach().abs().mean(1), we2.detach().abs().max(1).values)
            sw = torch.maximum(self.w_range[k] * t / qmax, b.detach().abs() / BIAS_CODE_LIMIT)
            sw = torch.where(sw > 0, sw, torch.ones_like(sw))
            r = we2 / sw[:, None]
            codes = torch.where(one[:, None], sign_ste(r),
                                torch.clamp(round_ste(r), -qmax[:, None], qmax[:, None]))
            we_hat = (sw[:, None] * codes).reshape(w.shape)
            bias_scale = sw
        bq = round_ste(b / bias_scale)
        if self.setup.bias_bits < 32:
            lim = float((1 << (self.setup.bias_bits - 1)) - 1)
            bq = torch.clamp(bq, -lim, lim)
        return we_hat / sa, bq * bias_scale

    # ---- forward ----------------------------------------------------------------------------
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32)
        return self.s_in.view(1, -1, 1, 1) * (x - self.z_in.view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.run(images)[0]

    def run(self, images: torch.Tensor, keep: tuple[str, ...] = ()
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(logits (N, classes), the tensors named in `keep` as the model computes them)."""
        fg = self.fg
        env = {fg.input: self.normalize(images)}
        scales = {fg.input: self.s_in}
        for n in fg.nodes:
            ins = [env[t] for t in n.inputs]
            if n.op == "conv":
                w, b = self.weight_quant(n, scales[n.inputs[0]])
                t, bo, l, r = n.attrs["pad"]
                x = F.pad(ins[0], (l, r, t, bo)) if (t or bo or l or r) else ins[0]
                y = F.conv2d(x, w, b, stride=n.attrs["stride"], groups=n.attrs["groups"])
                if n.output == fg.output:
                    y = torch_act(y, node_act(n))
            else:
                y = apply_node(n, ins)
            if n.output == fg.output or n.op == "maxpool":
                env[n.output] = y
                scales[n.output] = scales[n.inputs[0]] if n.op == "maxpool" else None
                continue
            env[n.output], scales[n.output] = self.act_quant(n, y)
        out = env[fg.output]
        return out.reshape(out.shape[0], -1), {t: env[t] for t in keep}

    # ---- cost -------------------------------------------------------------------------------
    def cost(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(params, ops) of the MicroNet rules at the current bits (float64, differentiable)."""
        bits = {k: v.double() for k, v in self.tensor_bits().items()}
        params = torch.zeros((), dtype=torch.float64)
        ops = torch.zeros((), dtype=torch.float64)
        for n in self.fg.nodes:
            c, h, w = self.shapes[n.output]
            ob, ib = bits[n.output], bits[n.inputs[0]]
            if n.op == "conv":
                wb = self.weight_bits(n.name).double()
                pairs = ib[getattr(self, f"ch_{_key(n.name)}")]
                kh, kw = n.weight.shape[2:]
                p, q = conv_cost(wb, pairs, ob, kh * kw, h * w, n.name in self.ternary)
            else:
                op = "lut" if n.op in NONLINEAR else n.op
                kernel = int(np.prod(n.attrs["kernel"])) if op in ("maxpool", "avgpool") else 1
                _, hi, wi = self.shapes[n.inputs[0]]
                p, q = elementwise_cost(op, ob, c, h * w, float(ib.detach().max()), hi * wi, kernel,
                                        c * 256 if op == "lut" else 0)
            params = params + p
            ops = ops + q
        return params, ops

    # ---- export -------------------------------------------------------------------------------
    @torch.no_grad()
    def int_bits(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        wbits = {n.name: self.weight_bits(n.name).round().long().numpy()
                 for n in self.fg.conv_nodes() if n.name not in self.ternary}
        abits = {t: self.act_bits(t).round().long().numpy() for t in self.quantized}
        return wbits, abits

    @torch.no_grad()
    def export_parts(self) -> dict[str, Any]:
        """Everything `integerize` needs: the trained float graph, ranges, bits, TTQ scales and
        weight range factors. Weights and biases are the float64 originals plus what training
        changed (float32 parameter minus the float32 original), so an untrained model exports
        exactly as the post-training exporter does."""
        fg = copy.copy(self.fg)
        fg.nodes = []
        for n in self.fg.nodes:
            n2 = copy.copy(n)
            if n.op == "conv":
                k = _key(n.name)
                n2.weight = _trained(n.weight, self.w[k])
                n2.bias = _trained(n.bias, self.b[k])
            fg.nodes.append(n2)
        ranges = {fg.output: (self.logit_lo.numpy().copy(), self.logit_hi.numpy().copy())}
        for t in self.quantized:
            k = _key(t)
            a = self.a_range[k].detach().double()
            ranges[t] = ((a * getattr(self, f"lo0_{k}").double()).numpy(),
                         (a * getattr(self, f"hi0_{k}").double()).numpy())
        wbits, abits = self.int_bits()
        ternary, wrange = {}, {}
        for n in self.fg.conv_nodes():
            k = _key(n.name)
            o = n.weight.shape[0]
            if n.name in self.ternary:
                ternary[n.name] = {"threshold": self.setup.ttq_threshold,
                                   "wp": np.full(o, float(self.wp[k])),
                                   "wn": np.full(o, float(self.wn[k]))}  # x max|We[o]|
            else:
                wrange[n.name] = self.w_range[k].detach().double().numpy().copy()
        return dict(fg=fg, ranges=ranges, wbits=wbits, abits=abits, ternary=ternary,
                    wrange=wrange, bias_bits=self.setup.bias_bits)

    def integerize(self, meta: dict | None = None):
        """The integer graph of the current parameters (AqError if the exporter refuses)."""
        from ..export.integerize import integerize
        p = self.export_parts()
        return integerize(p["fg"], p["ranges"], p["wbits"], p["abits"], p["ternary"],
                          meta=meta, wrange=p["wrange"], bias_bits=p["bias_bits"])
