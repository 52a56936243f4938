"""Write an IR graph as a `.aqz`: weights bit-packed per output channel, every array a .npy
member with its SHA-256 in graph.json, written to a temp file then renamed (atomic)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .. import __version__
from ..export.ir import Graph, canonical
from ..quant.packing import pack_codes
from .schema import ARRAY_DIR, FORMAT_NAME, FORMAT_VERSION, GRAPH_MEMBER


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def graph_to_members(graph: Graph) -> tuple[dict, dict[str, bytes]]:
    """The graph.json document and the array members (name -> .npy bytes)."""
    members: dict[str, bytes] = {}
    arrays: dict[str, dict] = {}

    def put(key: str, a: np.ndarray) -> str:
        ref = f"a{len(arrays):05d}"
        data = _npy_bytes(a)
        fname = f"{ARRAY_DIR}{ref}.npy"
        members[fname] = data
        arrays[ref] = {"file": fname, "dtype": str(a.dtype), "shape": list(a.shape),
                       "sha256": hashlib.sha256(data).hexdigest()}
        return ref

    tensors = []
    for t in graph.tensors.values():
        tensors.append({"name": t.name, "shape": list(t.shape),
                        "scale": put("scale", canonical("scale", t.scale)),
                        "zero_point": put("zero_point", canonical("zero_point", t.zero_point)),
                        "bits": put("bits", canonical("bits", t.bits))})
    nodes = []
    for n in graph.nodes:
        refs = {}
        for key, a in n.arrays.items():
            a = canonical(key, a)
            if key == "weight":
                o = a.shape[0]
                refs["weight_packed"] = put("weight_packed", pack_codes(
                    a.reshape(o, -1), n.arrays["wbits"]))
            else:
                refs[key] = put(key, a)
        nodes.append({"op": n.op, "name": n.name, "inputs": list(n.inputs),
                      "output": n.output, "attrs": n.attrs, "arrays": refs})
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
           "producer": f"aq_runtime {__version__}", "input": graph.input, "output": graph.output,
           "meta": graph.meta, "tensors": tensors, "nodes": nodes, "arrays": arrays}
    return doc, members


def write_aqz(graph: Graph, path: str | Path) -> int:
    """Write `graph` to `path` atomically; returns the file size in bytes."""
    path = Path(path)
    doc, members = graph_to_members(graph)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".aqz", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            z.writestr(GRAPH_MEMBER, json.dumps(doc, indent=1, sort_keys=True))
            for name, data in members.items():
                z.writestr(name, data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path.stat().st_size
