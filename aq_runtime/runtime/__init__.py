"""Runtime: `Session` runs a `.aqz` on a backend; the reference backend (numpy int64) defines
the answer. Never imports torch."""

from .session import Session, available_backends

__all__ = ["Session", "available_backends"]
