"""A small CNN for scikit-learn's 8x8 digits (1 channel, codes 0..16 scaled to uint8 0..240),
with a fixed train/test split and a short deterministic training run."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..ir.float_graph import FloatGraph, FloatNode, fold_bn

DIGITS_SCALE = 15  # sklearn digits are 0..16; pixels = value * 15 as uint8


def digits_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test); x as uint8 N x 8 x 8 x 1, split 80/20 with a seed."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images * DIGITS_SCALE).astype(np.uint8)[..., None]
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    return x[idx[:cut]], y[idx[:cut]], x[idx[cut:]], y[idx[cut:]]


class DigitsCNN(nn.Module):
    MEAN, STD = [0.0], [240.0]

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32)
        self.conv3, self.bn3 = nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(x.mean(dim=(2, 3)))

    def to_float_graph(self) -> FloatGraph:
        nodes, x = [], "input"
        for i, (conv, bn) in enumerate([(self.conv1, self.bn1), (self.conv2, self.bn2),
                                        (self.conv3, self.bn3)], 1):
            w, b, stats = fold_bn(conv.weight.detach().double().numpy(), None,
                                  *(t.detach().double().numpy() for t in
                                    (bn.weight, bn.bias, bn.running_mean, bn.running_var)),
                                  bn.eps)
            s, p = conv.stride[0], conv.padding[0]
            nodes.append(FloatNode("conv", f"conv{i}", [x], f"conv{i}", dict(
                stride=[s, s], pad=[p, p, p, p], groups=1, act="relu"), w, b, stats))
            x = f"conv{i}"
        nodes.append(FloatNode("gap", "pool", [x], "pool"))
        nodes.append(FloatNode("conv", "fc", ["pool"], "fc", dict(
            stride=[1, 1], pad=[0, 0, 0, 0], groups=1, act="none"),
            self.fc.weight.detach().double().numpy()[:, :, None, None],
            self.fc.bias.detach().double().numpy()))
        return FloatGraph("digits-cnn", "input", "fc", (1, 8, 8), self.MEAN, self.STD, nodes,
                          [str(i) for i in range(10)])


def to_float_input(x_uint8: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 N x H x W x C pixels -> normalized float32 NCHW tensor."""
    x = torch.from_numpy(np.ascontiguousarray(x_uint8)).permute(0, 3, 1, 2).float()
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (x - m) / s


def train_digits_cnn(epochs: int = 40, seed: int = 0) -> DigitsCNN:
    """Train the digits CNN deterministically on the fixed split (a few seconds). One thread,
    so that the float model (and everything calibrated from it) is the same on every machine
    and under any OMP_NUM_THREADS."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _train(epochs: int, seed: int) -> DigitsCNN:
    torch.manual_seed(seed)
    xtr, ytr, _, _ = digits_data(seed)
    m = DigitsCNN()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    xt = to_float_input(xtr, m.MEAN, m.STD)
    yt = torch.from_numpy(ytr)
    g = torch.Generator().manual_seed(seed)
    m.train()
    for _ in range(epochs):
        perm = torch.randperm(len(yt), generator=g)
        for i in range(0, len(yt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(m(xt[idx]), yt[idx]).backward()
            opt.step()
    return m.eval()
