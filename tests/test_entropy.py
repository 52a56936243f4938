"""The rANS coder of weight codes (quant/entropy.py): exact round trips, tables that sum to
2^PROB_BITS, corrupt streams refused, and a coded file's damage reported in one line."""

import json
import zipfile

import numpy as np
import pytest

from aq_runtime import AqError
from aq_runtime.format import read_aqz, write_aqz
from aq_runtime.quant.entropy import (
    PROB_BITS,
    code_lengths,
    decode_rows,
    encode_rows,
    quantized_frequencies,
    rans_decode,
    rans_encode,
)


@pytest.mark.parametrize("n,k", [(0, 4), (1, 2), (5000, 3), (200_000, 256)])
def test_rans_round_trip_is_exact_and_near_the_entropy(n, k):
    rng = np.random.default_rng(n)
    sym = np.clip(np.round(rng.laplace(k / 2, k / 10 + 0.3, n)), 0, k - 1).astype(np.int64)
    counts = np.bincount(sym, minlength=k)
    f = quantized_frequencies(counts) if n else np.r_[1 << PROB_BITS, np.zeros(k - 1, int)]
    assert f.sum() == 1 << PROB_BITS and (n == 0 or np.array_equal(f > 0, counts > 0))
    data = rans_encode(sym, f)
    assert np.array_equal(rans_decode(data, f, n), sym)
    p = counts[counts > 0] / max(n, 1)
    ideal = -(counts[counts > 0] * np.log2(p)).sum() / 8
    assert len(data) <= ideal * 1.01 + 8


def test_rans_refuses_damage():
    rng = np.random.default_rng(1)
    sym = rng.integers(0, 5, 3000)
    f = quantized_frequencies(np.bincount(sym))
    data = rans_encode(sym, f)
    for bad in (data[:-1], np.r_[data, 7].astype(np.uint8), data[:3]):
        with pytest.raises(ValueError, match="corrupt or truncated"):
            rans_decode(bad, f, len(sym))
    with pytest.raises(ValueError, match="sum to"):
        rans_decode(data, f + 1, len(sym))
    with pytest.raises(ValueError, match="without a frequency"):
        rans_encode(np.r_[sym, 9], f)


def test_frequencies_keep_every_seen_symbol():
    counts = np.r_[10 ** 9, np.ones(255, dtype=np.int64)]  # one symbol dominates 255 rare ones
    f = quantized_frequencies(counts)
    assert f.sum() == 1 << PROB_BITS and f.min() == 1 and f[0] == (1 << PROB_BITS) - 255


def test_rows_code_per_width_and_price_by_histogram():
    rng = np.random.default_rng(2)
    bits = np.array([3, 8, 3, 5, 8])
    u = np.stack([rng.integers(0, 1 << b, 40) // (1 + (b > 4)) for b in bits])
    data, freqs, heads = encode_rows(u, bits)
    assert [h[0] for h in heads] == [3, 5, 8]
    assert np.array_equal(decode_rows(data, freqs, heads, bits, 40), u)
    with pytest.raises(ValueError, match="weight_streams"):
        decode_rows(data, freqs, heads[:2], bits, 40)
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
    from aq_runtime.export.api import export_graph
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.format.inspect import weight_bytes
    from aq_runtime.models.digits import digits_data
    from aq_runtime.quant.weights import code_bits
    from aq_runtime.runtime import Session, available_backends

    x = digits_data()[0][:128]
    base = ExportOptions(bits="auto", budget=0.5, allocation="channel", clipping="mse",
                         weight_groups=8, progress=False)
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
    sym = rng.integers(0, 6, 700) * rng.integers(0, 2, 700)
    f = quantized_frequencies(np.bincount(sym))
    data = [int(v) for v in rans_encode(sym, f)]
    cum = np.concatenate([[0], np.cumsum(f)])
    x = data[0] | data[1] << 8 | data[2] << 16 | data[3] << 24
    p, out = 4, []
    for _ in range(len(sym)):
        r = x & ((1 << 14) - 1)
        s = next(i for i in range(len(f)) if cum[i] <= r < cum[i] + f[i])
        x = int(f[s]) * (x >> 14) + r - int(cum[s])
        while x < 1 << 23:
            x = (x << 8) | data[p]
            p += 1
        out.append(s)
    assert out == sym.tolist() and x == 1 << 23 and p == len(data)


def within_budget_falls_back_to_nearest(g):
    """Learned codes that code longer than the budget allows go back to nearest, layer by
    layer, the costliest first; within budget they stay."""
    import copy

    from aq_runtime.export.api import within_budget
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
