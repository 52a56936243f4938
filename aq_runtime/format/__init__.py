"""The `.aqz` file (DESIGN §4, docs/FORMAT.md): a stored zip of graph.json and .npy arrays,
bit-packed weights, SHA-256 per array, atomic write, strict validation on read. No pickle."""

from .reader import read_aqz
from .schema import FORMAT_NAME, FORMAT_VERSION
from .writer import write_aqz

__all__ = ["write_aqz", "read_aqz", "FORMAT_NAME", "FORMAT_VERSION"]
