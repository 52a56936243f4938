"""Write an IR graph as a `.aqz`: weights bit-packed per output channel (or entropy-coded, on
convs marked `weight_coding: entropy` where that is smaller: quant/packing.py), arrays
gathered into a few 1-D .npy pools (one per storage dtype; the weights stored uncompressed so
they can be memory-mapped, the small per-channel parameters and graph.json LZMA-compressed), each pool
with its SHA-256 in graph.json; written to a temp file then renamed (atomic). Upper clamp
bounds of activation codes are stored as their gap below the code maximum (`hi_gap`), which
is 0 almost everywhere and then costs nothing."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .. import __version__
from ..ir.graph import Graph, canonical
from ..quant.packing import coded_if_smaller, node_stored_codes, pack_codes, pack_multipliers
from ..quant.weights import grouped_channels
from ..files import atomic_open
from .schema import (
    ARRAY_DIR,
    FORMAT_NAME,
    FORMAT_VERSION,
    GRAPH_MEMBER,
    STORAGE_ORDER,
    WEIGHT_POOL,
)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def storage_form(a: np.ndarray) -> np.ndarray:
    """Integer arrays are stored in the smallest dtype that holds their values exactly."""
    if a.dtype.kind not in "iu" or a.size == 0:
        return a
    lo, hi = int(a.min()), int(a.max())
    for dt in STORAGE_ORDER:
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return a.astype(dt) if np.dtype(dt).itemsize < a.dtype.itemsize else a
    return a


def graph_to_members(graph: Graph) -> tuple[dict, dict[str, tuple[bytes, int]]]:
    """The graph.json document and the pool members (name -> (.npy bytes, zip compression))."""
    pools: dict[str, list[np.ndarray]] = {}
    sizes: dict[str, int] = {}
    arrays: dict[str, dict] = {}

    def put(a: np.ndarray, pool: str | None = None) -> str:
        ref = f"a{len(arrays)}"
        if a.size > 1 and np.all(a == a.flat[0]):  # a constant: no pool entry, value inline
            arrays[ref] = {"dtype": str(a.dtype), "shape": list(a.shape), "fill": a.flat[0].item()}
            return ref
        a = storage_form(a)
        name = pool or f"params_{a.dtype}"
        pools.setdefault(name, []).append(a.reshape(-1))
        arrays[ref] = {"pool": name, "offset": sizes.get(name, 0), "dtype": str(a.dtype),
                       "shape": list(a.shape)}
        sizes[name] = sizes.get(name, 0) + a.size
        return ref

    tensors = [{"name": t.name, "shape": list(t.shape),
                "scale": put(canonical("scale", t.scale)),
                "zero_point": put(canonical("zero_point", t.zero_point)),
                "bits": put(canonical("bits", t.bits))} for t in graph.tensors.values()]
    nodes = []
    for n in graph.nodes:
        refs = {}
        out_bits = graph.tensors[n.output].bits.astype(np.int64)
        attrs = dict(n.attrs)
        for key, a in n.arrays.items():
            a = canonical(key, a)
            if key == "hi" and out_bits.max() <= 8:
                refs["hi_gap"] = put(((np.int64(1) << out_bits) - 1 - a).astype(np.int32))
            elif key == "weight":  # the stored codes, packed or coded; multipliers packed
                codes = node_stored_codes(n.arrays, n.attrs)
                coded = (coded_if_smaller(*codes)
                         if n.attrs.get("weight_coding") == "entropy" else None)
                if coded is None:  # packed: not marked, or coding would not be smaller
                    refs["weight_packed"] = put(pack_codes(*codes), WEIGHT_POOL)
                else:
                    refs["weight_coded"] = put(coded[0], WEIGHT_POOL)
                    attrs["weight_streams"] = coded[1]
                if "wmult" in n.arrays:
                    refs["wmult_packed"] = put(pack_multipliers(n.arrays["wmult"],
                                                                grouped_channels(n.arrays)),
                                               WEIGHT_POOL)
            elif key == "wmult":
                continue  # packed with the weights
            else:
                refs[key] = put(a)
        nodes.append({"op": n.op, "name": n.name, "inputs": list(n.inputs),
                      "output": n.output, "attrs": attrs, "arrays": refs})
    members, pool_doc = {}, {}
    for name, parts in pools.items():
        data = _npy_bytes(np.concatenate(parts))
        fname = f"{ARRAY_DIR}{name}.npy"
        members[fname] = (data, zipfile.ZIP_STORED if name == WEIGHT_POOL else zipfile.ZIP_LZMA)
        pool_doc[name] = {"file": fname, "dtype": str(parts[0].dtype), "length": sizes[name],
                          "sha256": hashlib.sha256(data).hexdigest()}
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
           "producer": f"aq_runtime {__version__}", "input": graph.input, "output": graph.output,
           "meta": graph.meta, "tensors": tensors, "nodes": nodes, "arrays": arrays,
           "pools": pool_doc}
    return doc, members


def write_aqz(graph: Graph, path: str | Path) -> int:
    """Write `graph` to `path` atomically; returns the file size in bytes."""
    path = Path(path)
    doc, members = graph_to_members(graph)
    with atomic_open(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr(GRAPH_MEMBER, json.dumps(doc, separators=(",", ":"), sort_keys=True),
                   compress_type=zipfile.ZIP_LZMA)
        for name, (data, comp) in members.items():
            z.writestr(name, data, compress_type=comp)
    return path.stat().st_size
