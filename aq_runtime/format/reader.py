"""Read and validate a `.aqz` before anything runs: container (stored zip, safe member names,
size caps checked before allocation), graph.json (format, version), every array (declared
dtype/shape, SHA-256, no pickle), then the graph itself (ir.validate). Any violation raises
AqError with one line naming the file and the field."""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .. import AqError
from ..ir.graph import (
    ARRAY_DTYPES,
    OP_ARRAYS,
    TENSOR_DTYPES,
    Graph,
    Node,
    TensorSpec,
)
from ..ir.validate import validate_graph
from ..quant.packing import (
    decode_codes,
    mult_row_bytes,
    packed_size,
    unpack_codes,
    with_multipliers,
)
from .schema import (
    ALLOWED_DTYPES,
    ARRAY_DIR,
    FORMAT_NAME,
    READ_VERSIONS,
    GRAPH_MEMBER,
    MAX_GRAPH_BYTES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_TOTAL_BYTES,
    WEIGHT_POOL,
)


class _Bad(Exception):
    pass


def _safe_name(name: str) -> bool:
    p = PurePosixPath(name)
    return not (name.startswith(("/", "\\")) or "\\" in name or ".." in p.parts
                or (len(name) > 1 and name[1] == ":") or name == "")


def _load_npy(data: bytes, ref: str, spec: dict) -> np.ndarray:
    buf = io.BytesIO(data)
    try:
        major, _ = np.lib.format.read_magic(buf)
        if major == 1:
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        elif major in (2, 3):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise _Bad(f"array {ref}: unsupported .npy version {major}")
    except _Bad:
        raise
    except Exception as e:  # malformed header
        raise _Bad(f"array {ref}: not a valid .npy member ({e})") from None
    if dtype.hasobject:
        raise _Bad(f"array {ref}: holds Python objects (a pickle); refused")
    if str(dtype) != spec["dtype"] or dtype.byteorder not in ("=", "<", "|"):
        raise _Bad(f"array {ref}: dtype {dtype} differs from declared {spec['dtype']}")
    if list(shape) != list(spec["shape"]) or fortran:
        raise _Bad(f"array {ref}: shape {list(shape)} differs from declared {spec['shape']}")
    expected = buf.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if expected != len(data):
        raise _Bad(f"array {ref}: member holds {len(data)} bytes, header says {expected}")
    return np.load(io.BytesIO(data), allow_pickle=False)


def _check_shape(where: str, shp: Any, itemsize: int) -> int:
    if (not isinstance(shp, list) or len(shp) > 4
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < (1 << 31)
                       for d in shp)):
        raise _Bad(f"{where}: invalid {shp!r}")
    size = int(np.prod(shp, dtype=np.int64))
    if size * itemsize > MAX_MEMBER_BYTES:
        raise _Bad(f"{where}: {size * itemsize} bytes exceeds the cap")
    return size


def _check_pool(name: str, spec: Any) -> None:
    if not isinstance(spec, dict) or set(spec) != {"file", "dtype", "length", "sha256"}:
        raise _Bad(f"pools.{name}: entry must have file, dtype, length, sha256")
    if spec["dtype"] not in ALLOWED_DTYPES:
        raise _Bad(f"pools.{name}.dtype: {spec['dtype']!r} not allowed")
    _check_shape(f"pools.{name}.length", [spec["length"]], np.dtype(spec["dtype"]).itemsize)
    if spec["file"] != f"{ARRAY_DIR}{name}.npy":
        raise _Bad(f"pools.{name}.file: must be {ARRAY_DIR}{name}.npy")


def _check_spec(ref: str, spec: Any, pools: dict) -> None:
    if not isinstance(spec, dict) or set(spec) not in ({"pool", "offset", "dtype", "shape"},
                                                         {"dtype", "shape", "fill"}):
        raise _Bad(f"arrays.{ref}: entry must have pool, offset, dtype, shape (or a fill)")
    if spec["dtype"] not in ALLOWED_DTYPES:
        raise _Bad(f"arrays.{ref}.dtype: {spec['dtype']!r} not allowed")
    size = _check_shape(f"arrays.{ref}.shape", spec["shape"], np.dtype(spec["dtype"]).itemsize)
    if "fill" in spec:
        v, dt = spec["fill"], np.dtype(spec["dtype"])
        ok = (isinstance(v, int) and not isinstance(v, bool)
              and np.iinfo(dt).min <= v <= np.iinfo(dt).max) if dt.kind in "iu" else (
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v))
        if not ok:
            raise _Bad(f"arrays.{ref}.fill: {v!r} is not a valid {dt} value")
        return
    pool = pools.get(spec["pool"]) if isinstance(spec["pool"], str) else None
    if pool is None:
        raise _Bad(f"arrays.{ref}.pool: unknown pool {spec['pool']!r}")
    if pool["dtype"] != spec["dtype"]:
        raise _Bad(f"arrays.{ref}.dtype: differs from its pool's {pool['dtype']}")
    off = spec["offset"]
    if not isinstance(off, int) or isinstance(off, bool) or off < 0 or off + size > pool["length"]:
        raise _Bad(f"arrays.{ref}.offset: slice outside pool {spec['pool']!r}")


def _stored_codes(f: str, refs: dict, attrs: dict, cb: np.ndarray, k: int, get: Any
                  ) -> np.ndarray:
    """A conv's stored codes (O, K): bit-packed (`weight_packed`) or entropy-coded
    (`weight_coded`, attrs.weight_streams; then attrs.weight_streams is
    dropped: the writer derives it again from the weights)."""
    if "weight_freq" in refs:
        raise _Bad(f"{f}.arrays.weight_freq: coding with stored frequency tables (an earlier "
                   "development format) is not read any more; export the model again")
    if "weight_coded" not in refs:
        if "weight_streams" in attrs:
            raise _Bad(f"{f}.attrs.weight_streams: given without arrays.weight_coded")
        packed = get(refs.get("weight_packed"), f"{f}.arrays.weight_packed", "weight_packed")
        if packed.ndim != 1 or packed.shape[0] != packed_size(k, cb):
            raise _Bad(f"{f}.arrays.weight_packed: {packed.size} bytes, expected "
                       f"{packed_size(k, cb)} from the channel bits")
        return unpack_codes(packed, cb, k)
    if "weight_packed" in refs or attrs.get("weight_coding") != "entropy":
        raise _Bad(f"{f}.arrays.weight_coded: needs attrs.weight_coding 'entropy' and no "
                   "weight_packed")
    if len(cb) * k * 8 > MAX_MEMBER_BYTES:
        raise _Bad(f"{f}.arrays.weight_coded: {len(cb)} x {k} weights exceed the size cap")
    data = get(refs["weight_coded"], f"{f}.arrays.weight_coded", "weight_coded")
    if data.ndim != 1:
        raise _Bad(f"{f}.arrays.weight_coded: the streams must be 1-D")
    try:
        return decode_codes(data, attrs.pop("weight_streams", None), cb, k)
    except ValueError as e:
        raise _Bad(f"{f}.arrays.weight_coded: {e}") from None


def _parse(z: zipfile.ZipFile) -> Graph:
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _Bad(f"{len(infos)} members exceed the cap of {MAX_MEMBERS}")
    names: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        if not _safe_name(info.filename):
            raise _Bad(f"member name {info.filename!r} is absolute or climbs out with '..'")
        if info.filename in names:
            raise _Bad(f"member {info.filename!r} appears twice")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA):
            raise _Bad(f"member {info.filename!r} uses an unsupported compression")
        if info.file_size > MAX_MEMBER_BYTES:
            raise _Bad(f"member {info.filename!r} is larger than the cap")
        total += info.file_size
        names[info.filename] = info
    if total > MAX_TOTAL_BYTES:
        raise _Bad("archive content exceeds the size cap")
    if GRAPH_MEMBER not in names:
        raise _Bad(f"no {GRAPH_MEMBER} member (not an .aqz model)")
    if names[GRAPH_MEMBER].file_size > MAX_GRAPH_BYTES:
        raise _Bad(f"{GRAPH_MEMBER} is larger than the cap")
    try:
        doc = json.loads(z.read(GRAPH_MEMBER).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _Bad(f"{GRAPH_MEMBER}: not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise _Bad(f"{GRAPH_MEMBER}.format: expected {FORMAT_NAME!r}")
    if type(doc.get("version")) is not int or doc["version"] not in READ_VERSIONS:
        raise _Bad(f"{GRAPH_MEMBER}.version: {doc.get('version')!r} is not supported "
                   f"(this reader reads versions {', '.join(map(str, READ_VERSIONS))})")
    for key, typ in (("arrays", dict), ("pools", dict), ("tensors", list), ("nodes", list),
                     ("meta", dict), ("input", str), ("output", str)):
        if not isinstance(doc.get(key), typ):
            raise _Bad(f"{GRAPH_MEMBER}.{key}: missing or not a {typ.__name__}")
    declared = {GRAPH_MEMBER}
    for name, spec in doc["pools"].items():
        _check_pool(name, spec)
        if spec["file"] not in names:
            raise _Bad(f"pools.{name}: member {spec['file']!r} is missing")
        if name == WEIGHT_POOL and names[spec["file"]].compress_type != zipfile.ZIP_STORED:
            raise _Bad(f"pools.{name}: the weight pool must be stored uncompressed")
        declared.add(spec["file"])
    for ref, spec in doc["arrays"].items():
        _check_spec(ref, spec, doc["pools"])
    extra = sorted(set(names) - declared)
    if extra:
        raise _Bad(f"unexpected member {extra[0]!r}")
    pools: dict[str, np.ndarray] = {}
    cache: dict[str, np.ndarray] = {}

    def pool(name: str) -> np.ndarray:
        if name not in pools:
            spec = doc["pools"][name]
            data = z.read(spec["file"])
            if hashlib.sha256(data).hexdigest() != spec["sha256"]:
                raise _Bad(f"pools.{name} ({spec['file']}): SHA-256 mismatch (corrupted)")
            pools[name] = _load_npy(data, f"pools.{name}",
                                    {"dtype": spec["dtype"], "shape": [spec["length"]]})
        return pools[name]

    def get(ref: Any, field: str, key: str) -> np.ndarray:
        if not isinstance(ref, str) or ref not in doc["arrays"]:
            raise _Bad(f"{field}: unresolved array reference {ref!r}")
        spec = doc["arrays"][ref]
        if ref not in cache:
            if "fill" in spec:
                cache[ref] = np.full(spec["shape"], spec["fill"], dtype=spec["dtype"])
            else:
                size = int(np.prod(spec["shape"], dtype=np.int64))
                cache[ref] = pool(spec["pool"])[spec["offset"]:spec["offset"] + size].reshape(
                    spec["shape"])
        a = cache[ref]
        want = np.dtype(ARRAY_DTYPES.get(key) or TENSOR_DTYPES.get(key) or "uint8")
        if a.dtype != want:
            if a.dtype.kind not in "iu" or want.kind not in "iu" or not np.can_cast(a.dtype, want):
                raise _Bad(f"{field}: stored as {a.dtype}, which does not fit {want}")
            a = a.astype(want)
        if "fill" in spec and a.size and a.flat[0] != spec["fill"]:
            raise _Bad(f"{field}: fill value {spec['fill']!r} does not fit {want}")
        return a

    tensors: dict[str, TensorSpec] = {}
    for i, t in enumerate(doc["tensors"]):
        f = f"tensors[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise _Bad(f"{f}.name: missing")
        shp = t.get("shape")
        if (not isinstance(shp, list) or len(shp) != 3
                or not all(isinstance(d, int) and 1 <= d < (1 << 20) for d in shp)):
            raise _Bad(f"{f}.shape: invalid {shp!r}")
        tensors[t["name"]] = TensorSpec(
            t["name"], tuple(shp), get(t.get("scale"), f"{f}.scale", "scale"),
            get(t.get("zero_point"), f"{f}.zero_point", "zero_point"),
            get(t.get("bits"), f"{f}.bits", "bits"))
    nodes = []
    for i, n in enumerate(doc["nodes"]):
        f = f"nodes[{i}]"
        if not isinstance(n, dict):
            raise _Bad(f"{f}: not an object")
        op = n.get("op")
        if op not in OP_ARRAYS:
            raise _Bad(f"{f}.op: unknown op {op!r}")
        if not isinstance(n.get("inputs"), list) or not all(isinstance(x, str) for x in n["inputs"]):
            raise _Bad(f"{f}.inputs: must be a list of tensor names")
        if not isinstance(n.get("output"), str) or not isinstance(n.get("name"), str):
            raise _Bad(f"{f}: name and output must be strings")
        attrs = n.get("attrs", {})
        refs = n.get("arrays")
        if not isinstance(attrs, dict) or not isinstance(refs, dict):
            raise _Bad(f"{f}: attrs and arrays must be objects")
        arrays: dict[str, np.ndarray] = {}
        for key, ref in refs.items():
            if key in ("weight_packed", "wmult_packed", "weight_coded", "weight_freq"):
                continue
            if key == "hi_gap":  # hi stored as its gap below the output code maximum
                out = tensors.get(n["output"])
                if out is None or "hi" in refs or out.bits.max() > 8:
                    raise _Bad(f"{f}.arrays.hi_gap: needs an output tensor of <= 8 bits, no hi")
                gap = get(ref, f"{f}.arrays.hi_gap", "lo").astype(np.int64)
                if gap.shape != out.bits.shape:
                    raise _Bad(f"{f}.arrays.hi_gap: shape {gap.shape}, expected {out.bits.shape}")
                arrays["hi"] = ((np.int64(1) << out.bits.astype(np.int64)) - 1 - gap).astype(np.int32)
                continue
            if key not in ARRAY_DTYPES:
                raise _Bad(f"{f}.arrays.{key}: unknown array")
            arrays[key] = get(ref, f"{f}.arrays.{key}", key)
        if op == "conv":
            ws = attrs.get("weight_shape")
            if (not isinstance(ws, list) or len(ws) != 4
                    or not all(isinstance(d, int) and 1 <= d < (1 << 16) for d in ws)):
                raise _Bad(f"{f}.attrs.weight_shape: invalid {ws!r}")
            wbits = arrays.get("wbits")
            if wbits is None or wbits.shape != (ws[0],):
                raise _Bad(f"{f}.arrays.wbits: missing or not ({ws[0]},)")
            if wbits.min() < 1 or wbits.max() > 16:
                raise _Bad(f"{f}.arrays.wbits: bits outside 1..16")
            k = ws[1] * ws[2] * ws[3]
            grouped = "weight_group" in attrs
            cb = arrays.get("wcbits") if grouped else wbits
            if cb is None or cb.shape != wbits.shape or cb.min() < 1 or np.any(cb > wbits):
                raise _Bad(f"{f}.arrays.wcbits: missing, not ({ws[0]},), or above wbits")
            codes = _stored_codes(f, refs, attrs, cb, k, get)
            if grouped:
                group = attrs["weight_group"]
                if not isinstance(group, int) or not 2 <= group <= k // 2:
                    raise _Bad(f"{f}.attrs.weight_group: invalid {group!r}")
                mp = get(refs.get("wmult_packed"), f"{f}.arrays.wmult_packed", "weight_packed")
                on = cb != wbits  # quant.weights.grouped_channels, before `arrays` is whole
                want = int(mult_row_bytes(k, on, group).sum())
                if mp.ndim != 1 or mp.shape[0] != want:
                    raise _Bad(f"{f}.arrays.wmult_packed: {mp.size} bytes, expected {want}")
                q, mult = with_multipliers(codes, mp, on, k, group)
                arrays["weight"], arrays["wmult"] = q.reshape(ws), mult.astype(np.uint8)
            else:
                arrays["weight"] = codes.reshape(ws)
        nodes.append(Node(op, n["name"], list(n["inputs"]), n["output"], attrs, arrays))
    graph = Graph(doc["input"], doc["output"], tensors, nodes, doc["meta"])
    try:
        validate_graph(graph)
    except ValueError as e:
        raise _Bad(str(e)) from None
    return graph


def read_aqz(path: str | Path, data: bytes | None = None) -> Graph:
    """Read, verify and validate a `.aqz` file; raises AqError (one line) on any problem.
    `data`: the file's bytes, already read (then `path` only names it in errors)."""
    p = Path(path)
    if data is None:
        if not p.exists():
            raise AqError(f"{p}: no such file")
        if not p.is_file():
            raise AqError(f"{p}: not a file")
    if (len(data) if data is not None else p.stat().st_size) == 0:
        raise AqError(f"{p}: empty file (0 bytes), not an .aqz model")
    try:
        with zipfile.ZipFile(p if data is None else io.BytesIO(data)) as z:
            return _parse(z)
    except _Bad as e:
        raise AqError(f"{p}: {e}") from None
    except zipfile.BadZipFile as e:
        raise AqError(f"{p}: not a valid zip archive, or truncated ({e})") from None
    except (NotImplementedError, RuntimeError) as e:  # zipfile: unsupported version, encryption
        raise AqError(f"{p}: unsupported zip feature ({e})") from None
    except (EOFError, zlib.error, lzma.LZMAError, OSError, ValueError, KeyError, TypeError,
            OverflowError) as e:
        raise AqError(f"{p}: corrupt or truncated archive ({e.__class__.__name__}: {e})") from None
