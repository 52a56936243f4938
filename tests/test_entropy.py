"""The adaptive rANS coder of weight codes (quant/entropy.py): exact round trips near the
entropy, the model's tables, corrupt streams refused, and a coded file's damage reported in one
line."""

import json
import zipfile

import numpy as np
import pytest

from aq_runtime import AqError
from aq_runtime.format import read_aqz, write_aqz
from aq_runtime.quant.entropy import (
    PROB_BITS,
    REFRESH_FIRST,
    REFRESH_MAX,
    code_lengths,
    decode_rows,
    encode_rows,
    model_table,
    rans_decode,
    rans_encode,
)


@pytest.mark.parametrize("n,k", [(0, 4), (1, 2), (3, 1), (5000, 3), (200_000, 256),
                                 (20_000, 4096)])
def test_rans_round_trip_is_exact_and_near_the_entropy(n, k):
    rng = np.random.default_rng(n)
    sym = np.clip(np.round(rng.laplace(k / 2, k / 10 + 0.3, n)), 0, k - 1).astype(np.int64)
    data = rans_encode(sym, k)
    assert np.array_equal(rans_decode(data, k, n), sym)
    counts = np.bincount(sym, minlength=k)
    p = counts[counts > 0] / max(n, 1)
    ideal = -(counts[counts > 0] * np.log2(p)).sum() / 8
    learning = (k / 2) * np.log2(max(n, 2)) / 8  # what an adaptive model pays to learn
    assert len(data) <= ideal * 1.005 + learning + 8


def test_rans_refuses_damage():
    rng = np.random.default_rng(1)
    sym = rng.integers(0, 5, 3000)
    data = rans_encode(sym, 5)
    for bad in (data[:-1], np.r_[data, 7].astype(np.uint8), data[:3]):
        with pytest.raises(ValueError, match="corrupt or truncated"):
            rans_decode(bad, 5, len(sym))
    with pytest.raises(ValueError, match="outside"):
        rans_encode(np.r_[sym, 9], 5)
    with pytest.raises(ValueError, match="symbols, expected"):
        rans_decode(data, 0, len(sym))


def test_model_table_keeps_every_symbol_and_sums_to_2_16():
    f = model_table(np.r_[10 ** 9, np.ones(255, dtype=np.int64)])  # one dominates 255 rare
    assert f.sum() == 1 << PROB_BITS and f.min() == 1 and f[0] == (1 << PROB_BITS) - 255
    f = model_table(np.array([1, 3, 3, 1]))  # 1 + c * 65532 // 8, the rest to the first 3
    assert f.tolist() == [8192, 24575 + 2, 24575, 8192] and f.sum() == 1 << PROB_BITS
    with pytest.raises(ValueError, match="start at 1"):
        model_table(np.array([0, 2]))


def test_rows_code_per_width_and_price_by_histogram():
    rng = np.random.default_rng(2)
    bits = np.array([3, 8, 3, 5, 8])
    u = np.stack([rng.integers(0, 1 << b, 40) // (1 + (b > 4)) for b in bits])
    data, heads = encode_rows(u, bits)
    assert [h[0] for h in heads] == [3, 5, 8]
    assert np.array_equal(decode_rows(data, heads, bits, 40), u)
    with pytest.raises(ValueError, match="weight_streams"):
        decode_rows(data, heads[:2], bits, 40)
    wide = np.array([12, 2])  # 12-bit channels are coded too; 13 bits and more are not
    uw = np.stack([rng.integers(0, 4096, 40), rng.integers(0, 4, 40)])
    dw, hw = encode_rows(uw, wide)
    assert np.array_equal(decode_rows(dw, hw, wide, 40), uw)
    with pytest.raises(ValueError, match="outside 2..12"):
        encode_rows(uw, np.array([13, 2]))
    lengths = code_lengths(np.array([[0, 0, 0, 1], [0, 0, 0, 1]]))
    assert np.allclose(lengths, 3 * np.log2(8 / 6) + np.log2(8 / 2))


def test_coded_file_damage_is_one_line(digits_graph, tmp_path):
    for n in digits_graph.weight_nodes():
        n.attrs["weight_coding"] = "entropy"
    try:
        p = tmp_path / "coded.aqz"
        write_aqz(digits_graph, p)
        assert np.array_equal(read_aqz(p).nodes[0].arrays["weight"],
                              digits_graph.nodes[0].arrays["weight"])
        with zipfile.ZipFile(p) as z:
            members = {i.filename: (z.read(i.filename), i.compress_type) for i in z.infolist()}
        doc = json.loads(members["graph.json"][0])
        node = next(n for n in doc["nodes"] if "weight_streams" in n["attrs"])
        node["attrs"]["weight_streams"][0][3] += 1  # a stream's length no longer adds up
        bad = tmp_path / "bad.aqz"
        with zipfile.ZipFile(bad, "w") as z:
            for name, (data, comp) in members.items():
                z.writestr(name, json.dumps(doc) if name == "graph.json" else data, comp)
        with pytest.raises(AqError, match=r"weight_coded: weight_streams") as e:
            read_aqz(bad)
        assert "\n" not in str(e.value)
        node["arrays"]["weight_freq"] = node["arrays"]["weight_coded"]  # the static format
        with zipfile.ZipFile(bad, "w") as z:
            for name, (data, comp) in members.items():
                z.writestr(name, json.dumps(doc) if name == "graph.json" else data, comp)
        with pytest.raises(AqError, match=r"weight_freq: .* not read any more"):
            read_aqz(bad)
        del node["arrays"]["weight_freq"]
        del node["arrays"]["weight_coded"]  # stream headers without a stream
        with zipfile.ZipFile(bad, "w") as z:
            for name, (data, comp) in members.items():
                z.writestr(name, json.dumps(doc) if name == "graph.json" else data, comp)
        with pytest.raises(AqError, match=r"weight_streams: given without"):
            read_aqz(bad)
    finally:
        for n in digits_graph.weight_nodes():
            n.attrs.pop("weight_coding")


def test_auto_prices_coded_bytes_and_fits_the_budget(digits_fg, tmp_path):
    """--weight-coding entropy: the plan buys wider codes for the same budget, and the file's
    coded weight bytes are what the planner fitted under the budget, to the byte."""
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.format.inspect import weight_bytes
    from aq_runtime.models.digits import digits_data
    from aq_runtime.quant.weights import code_bits
    from aq_runtime.runtime import Session, available_backends

    x = digits_data()[0][:128]
    base = ExportOptions(bits="auto", budget=0.5, allocation="channel", clipping="mse",
                         rounding="nearest", rounding_target="model", weight_groups=8,
                         progress=False)
    plans = {c: export_graph(digits_fg, x, base.with_(weight_coding=c))
             for c in ("packed", "entropy")}

    def mean_code_bits(g):
        n = [(code_bits(v.arrays), np.prod(v.arrays["weight"].shape[1:]))
             for v in g.weight_nodes()]
        return sum((b * k).sum() for b, k in n) / sum(len(b) * k for b, k in n)

    assert mean_code_bits(plans["entropy"]) > mean_code_bits(plans["packed"]) + 0.2
    for c, g in plans.items():
        rep = g.meta["auto_bits"]
        write_aqz(g, tmp_path / f"{c}.aqz")
        back = read_aqz(tmp_path / f"{c}.aqz")
        assert weight_bytes(back) == rep["weight_bytes"] <= rep["budget_bytes"], c
    ref = Session(back, "reference").run(x[:16])  # the coded file, decoded, on every backend
    for b in available_backends():
        assert (Session(back, b).run(x[:16]) == ref).all(), b
    assert plans["entropy"].meta["calibration"]["weight_coding"] == "entropy"
    within_budget_falls_back_to_nearest(plans["entropy"])
    # with coding, some channels keep their full range (cheaper coded than a clipped width)
    assert plans["entropy"].meta["auto_bits"]["full_range_channels"] > 0
    assert plans["packed"].meta["auto_bits"]["full_range_channels"] == 0


def test_format_md_decoder_reads_the_stream():
    """docs/FORMAT.md's decoding steps, written out in plain Python, read what we write."""
    rng = np.random.default_rng(3)
    n_sym = 6
    sym = (rng.integers(0, n_sym, 3000) * rng.integers(0, 2, 3000)).tolist()
    data = [int(v) for v in rans_encode(np.array(sym), n_sym)]

    def table(cnt):
        f = [1 + c * (2 ** 16 - n_sym) // sum(cnt) for c in cnt]
        f[cnt.index(max(cnt))] += 2 ** 16 - sum(f)
        return f, [sum(f[:i]) for i in range(n_sym)]

    cnt = [1] * n_sym
    f, cum = table(cnt)
    x = data[0] | data[1] << 8 | data[2] << 16 | data[3] << 24
    p, out, refresh = 4, [], [2 ** j for j in range(4, 11)] + list(range(2048, 3000, 1024))
    for t in range(len(sym)):
        if t in refresh:
            f, cum = table(cnt)
        r = x & (2 ** 16 - 1)
        s = next(i for i in range(n_sym) if cum[i] <= r < cum[i] + f[i])
        x = f[s] * (x >> 16) + r - cum[s]
        while x < 2 ** 23:
            x = (x << 8) | data[p]
            p += 1
        out.append(s)
        cnt[s] += 2
    assert out == sym and x == 2 ** 23 and p == len(data)
    assert (REFRESH_FIRST, REFRESH_MAX) == (16, 1024)  # as FORMAT.md states them


def within_budget_falls_back_to_nearest(g):
    """Learned codes that code longer than the budget allows go back to nearest, layer by
    layer, the costliest first; within budget they stay."""
    import copy

    from aq_runtime.export.pipeline import within_budget
    from aq_runtime.format.inspect import weight_bytes
    from aq_runtime.quant.bits import weight_code_max
    from aq_runtime.quant.weights import code_bits, expand_groups, grouped_channels

    rng = np.random.default_rng(4)
    learned, codes = copy.deepcopy(g), {}
    for n in learned.weight_nodes():  # "learned" codes: nearest ones moved by +-1 in range
        a, at = n.arrays, n.attrs
        w = a["weight"].astype(np.int64).reshape(len(a["wbits"]), -1)
        m = (expand_groups(a["wmult"].astype(np.int64), w.shape[1], at["weight_group"])
             if "wmult" in a else 1)
        m = np.where(grouped_channels(a)[:, None], m, 1) if "wmult" in a else m
        qmax = weight_code_max(code_bits(a))[:, None]
        w2 = np.clip(w // m + rng.integers(-1, 2, w.shape), -qmax, qmax) * m
        a["weight"] = w2.reshape(a["weight"].shape).astype(np.int16)
        codes[n.name] = w2
    assert weight_bytes(learned) > weight_bytes(g)
    budget = (weight_bytes(learned) + weight_bytes(g)) // 2  # halfway: some layers go back
    kept, back = within_budget(g, learned, codes, budget, "entropy")
    assert back and len(back) < len(codes)
    for n in learned.weight_nodes():
        n.arrays["weight"] = kept[n.name].reshape(n.arrays["weight"].shape).astype(np.int16)
        near = next(m for m in g.weight_nodes() if m.name == n.name).arrays["weight"]
        assert np.array_equal(n.arrays["weight"], near) == (n.name in back)
    assert weight_bytes(learned) <= budget
    assert within_budget(g, learned, kept, 10 ** 9, "entropy")[1] == []
