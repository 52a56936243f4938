"""The `.aqz` file (docs/FORMAT.md): a zip of graph.json and a few 1-D .npy pools (the weight
pool, bit-packed or entropy-coded codes, stored uncompressed; the small parameter pools
LZMA-compressed), one SHA-256 per pool, atomic write, strict validation on read, inspection.
No pickle."""

from .reader import read_aqz
from .schema import FORMAT_NAME, FORMAT_VERSION
from .writer import write_aqz

__all__ = ["write_aqz", "read_aqz", "FORMAT_NAME", "FORMAT_VERSION"]
