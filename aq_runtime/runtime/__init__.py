"""Runtime: `Session` runs a `.aqz` on a backend (`backends`: the registry; `fastest`: what
aq-bench measured), prediction over image folders (`predict`), backend agreement (`verify`),
the fidelity of a model against its float model (`fidelity`) and the golden logits (`golden`).
Nothing here imports torch (the tvm-cuda backend does, when loaded)."""

from .session import Session, available_backends

__all__ = ["Session", "available_backends"]
