"""Fuzzing the .aqz reader: byte-level and structure-aware mutations of a valid file. The reader
must either load the model or raise AqError (one line); never another exception, never a hang,
never an allocation from a declared size that the file does not hold. CI runs a short pass;
benchmarks/fuzz_reader.py runs a long one."""

import io
import json
import time
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aq_runtime import AqError
from aq_runtime.bench.fuzz import json_paths
from aq_runtime.format import read_aqz

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.function_scoped_fixture])
CASE_SECONDS = 60.0  # a hang, not a speed: the fuzz benchmark times cases (0.2 s at most)


def _members(path):
    with zipfile.ZipFile(path) as z:
        return [(i, z.read(i.filename)) for i in z.infolist()]


def _zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info, data in members:
            z.writestr(info, data)
    return buf.getvalue()


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                 st.floats(allow_nan=True), st.text(max_size=20),
                 st.lists(st.integers(-5, 2 ** 40), max_size=5), st.just({}),
                 st.just("../../etc/passwd"), st.just([2 ** 31 - 1] * 4))


def _check(path, data):
    path.write_bytes(data)
    t = time.time()
    try:
        read_aqz(path)
    except AqError as e:
        msg = str(e)
        assert "\n" not in msg and str(path) in msg
    assert time.time() - t < CASE_SECONDS


@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_byte_mutations(digits_aqz, tmp_path, data):
    raw = bytearray(digits_aqz.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        pos = data.draw(st.integers(0, len(raw) - 1))
        if kind == "flip":
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif kind == "truncate":
            del raw[pos:]
            if not raw:
                raw.append(0)
        elif kind == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            raw[pos:pos + 8] = b"\0" * len(raw[pos:pos + 8])
    _check(tmp_path / "m.aqz", bytes(raw))


@settings(max_examples=120, **SETTINGS)
@given(data=st.data())
def test_graph_json_mutations(digits_aqz, tmp_path, data):
    members = _members(digits_aqz)
    doc = json.loads(dict((i.filename, d) for i, d in members)["graph.json"])
    paths = list(json_paths(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        node = doc
        try:
            for k in path[:-1]:
                node = node[k]
            if data.draw(st.booleans()) and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = data.draw(JUNK)
        except (KeyError, IndexError, TypeError):
            continue
    out = [(i, json.dumps(doc).encode() if i.filename == "graph.json" else d) for i, d in members]
    _check(tmp_path / "m.aqz", _zip(out))


def test_declared_giant_array_is_refused_before_allocation(digits_aqz, tmp_path):
    members = _members(digits_aqz)
    doc = json.loads(dict((i.filename, d) for i, d in members)["graph.json"])
    ref = doc["tensors"][1]["scale"]
    doc["arrays"][ref] = {"dtype": "float64", "shape": [1 << 30, 1 << 30], "fill": 1.0}
    out = [(i, json.dumps(doc).encode() if i.filename == "graph.json" else d) for i, d in members]
    p = tmp_path / "giant.aqz"
    p.write_bytes(_zip(out))
    with pytest.raises(AqError, match="cap"):
        read_aqz(p)
    pool = next(iter(doc["pools"]))
    doc = json.loads(dict((i.filename, d) for i, d in members)["graph.json"])
    doc["pools"][pool]["length"] = 1 << 40
    out = [(i, json.dumps(doc).encode() if i.filename == "graph.json" else d) for i, d in members]
    p.write_bytes(_zip(out))
    with pytest.raises(AqError):
        read_aqz(p)


def test_zip_bomb_member_refused(digits_aqz, tmp_path):
    members = _members(digits_aqz)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info, data in members:
            if info.filename == "graph.json":
                doc = json.loads(data)
                doc["meta"]["pad"] = "x" * (80 << 20)  # 80 MiB of JSON, deflates to ~80 KiB
                z.writestr("graph.json", json.dumps(doc), compress_type=zipfile.ZIP_DEFLATED)
            else:
                z.writestr(info, data)
    p = tmp_path / "bomb.aqz"
    p.write_bytes(buf.getvalue())
    assert p.stat().st_size < 1 << 20
    with pytest.raises(AqError, match="cap"):
        read_aqz(p)


def test_mutation_fuzzer_short_run(digits_aqz, tmp_path):
    from aq_runtime.bench.fuzz import fuzz_reader
    stats = fuzz_reader(digits_aqz, 400, tmp_path, seed=1)
    print(f"\nfuzz: {stats}")
    assert stats["cases"] == 400 and stats["refused"] > 300


def test_regressions_found_by_the_long_fuzz_run():
    from pathlib import Path
    for p in sorted((Path(__file__).parent / "data").glob("fuzz_*.aqz")):
        with pytest.raises(AqError):
            read_aqz(p)
