"""A mutation fuzzer for the .aqz reader: random byte-level edits (flip, truncate, insert,
zero) and structure-aware graph.json edits (delete a key, replace a value by junk). Every case
must load or raise AqError with one line, within a time cap. Used by the CI test (short run)
and benchmarks/fuzz_reader.py (long run)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np

from .. import AqError
from ..format import read_aqz

JUNK = [None, True, -1, 0, 2 ** 31, -2 ** 63, 2 ** 70, 1e308, float("nan"), "", "../x",
        "/etc/passwd", [], {}, [2 ** 31 - 1] * 4, [0], "a0", "weights", "float64", "object"]


def json_paths(doc, prefix=()):
    """Every key/index path into a JSON document (the first 6 items of each list)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from json_paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:6]):
            yield prefix + (i,)
            yield from json_paths(v, prefix + (i,))


def mutate_bytes(raw: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(raw)
    for _ in range(int(rng.integers(1, 9))):
        pos = int(rng.integers(0, max(len(b), 1)))
        kind = int(rng.integers(0, 4))
        if kind == 0 and b:
            b[pos] ^= int(rng.integers(1, 256))
        elif kind == 1:
            del b[max(pos, 1):]
        elif kind == 2:
            b[pos:pos] = rng.bytes(int(rng.integers(1, 17)))
        else:
            b[pos:pos + 8] = b"\0" * len(b[pos:pos + 8])
    return bytes(b)


def mutate_graph(members: list, rng: np.random.Generator) -> bytes:
    doc = json.loads(dict((i.filename, d) for i, d in members)["graph.json"])
    paths = list(json_paths(doc))
    for _ in range(int(rng.integers(1, 4))):
        path = paths[int(rng.integers(0, len(paths)))]
        node = doc
        try:
            for k in path[:-1]:
                node = node[k]
            if rng.random() < 0.3 and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = JUNK[int(rng.integers(0, len(JUNK)))]
        except (KeyError, IndexError, TypeError):
            continue
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info, data in members:
            z.writestr(info, json.dumps(doc).encode() if info.filename == "graph.json" else data)
    return buf.getvalue()


def fuzz_reader(model: str | Path, cases: int, workdir: str | Path, seed: int = 0,
                time_cap: float = 5.0) -> dict:
    """Run `cases` mutated files through read_aqz; raise AssertionError on the first case that
    escapes with another exception, a multi-line message or exceeds the time cap."""
    rng = np.random.default_rng(seed)
    raw = Path(model).read_bytes()
    with zipfile.ZipFile(model) as z:
        members = [(i, z.read(i.filename)) for i in z.infolist()]
    target = Path(workdir) / "fuzz.aqz"
    stats = {"cases": 0, "loaded": 0, "refused": 0, "max_seconds": 0.0}
    for _ in range(cases):
        data = mutate_bytes(raw, rng) if rng.random() < 0.5 else mutate_graph(members, rng)
        target.write_bytes(data)
        t = time.time()
        try:
            read_aqz(target)
            stats["loaded"] += 1
        except AqError as e:
            if "\n" in str(e):
                raise AssertionError(f"multi-line error: {e!r}") from None
            stats["refused"] += 1
        except Exception as e:  # the property under test: nothing else escapes
            bad = Path(workdir) / f"escape-{stats['cases']}.aqz"
            bad.write_bytes(data)
            raise AssertionError(f"{type(e).__name__} escaped the reader ({e}); case saved as {bad}")
        dt = time.time() - t
        stats["max_seconds"] = max(stats["max_seconds"], dt)
        if dt > time_cap:
            raise AssertionError(f"case took {dt:.1f} s (cap {time_cap} s)")
        stats["cases"] += 1
    return stats
