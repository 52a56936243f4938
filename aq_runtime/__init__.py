"""aq_runtime: mixed-precision integer inference for quantized CNNs (train, export, run exactly)."""

__version__ = "0.1.0"


class AqError(Exception):
    """Every error a user can cause: bad files, bad images, bad options. One-line message."""
