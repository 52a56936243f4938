"""Low-bit export: per-channel `auto` bits under the byte budget, MSE weight clipping, learned
rounding (block reconstruction) and augmented calibration images. The learned model is exact
on every CPU backend (`==` the reference), its codes stay within one step of the weights, and
it reproduces the float model better than nearest rounding on the images it learned from."""

import numpy as np
import pytest

from aq_runtime import AqError
from aq_runtime.runtime import Session, available_backends

SIZE = 64


@pytest.fixture(scope="module")
def lite0_small():
    from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
    from aq_runtime.export.pipeline import calibrate_ranges
    from aq_runtime.models.registry import build_float_graph
    fg = build_float_graph("efficientnet-lite0", SIZE)
    xc = crops_of(CALIBRATION_PHOTOS[:3], SIZE)[0][::2]
    xh = crops_of(HELDOUT_PHOTOS[:2], SIZE)[0][::4]
    return fg, xc, xh, calibrate_ranges(fg, xc)


@pytest.fixture(scope="module")
def lowbit(lite0_small):
    """auto at 0.5x uniform 8's weight bytes, per channel, MSE clipping: nearest and learned."""
    from aq_runtime.export.pipeline import export_graph, plan_bits
    from aq_runtime.export.options import ExportOptions
    fg, xc, _, ranges = lite0_small
    base = ExportOptions(bits="auto", budget=0.5, allocation="channel", clipping="mse",
                         rounding="nearest", rounding_target="model", weight_coding="packed",
                         progress=False)
    plan = plan_bits(fg, xc, ranges, base)  # rounding does not change the plan: made once
    near = export_graph(fg, xc, base, ranges=ranges, plan=plan)
    learned = export_graph(fg, xc, base.with_(rounding="learned", rounding_iters=30,
                                              rounding_images=160), ranges=ranges, plan=plan)
    return near, learned


def test_blocks_cover_the_graph_once(lite0_small):
    from aq_runtime.export.learned_rounding import blocks
    fg = lite0_small[0]
    parts = blocks(fg)
    assert [n.name for p in parts for n in p] == [n.name for n in fg.nodes]
    firsts = [p[0].name for p in parts]
    assert firsts[:3] == ["_conv_stem", "_blocks.0._depthwise_conv", "_blocks.1._expand_conv"]
    assert [n.name for n in parts[-1]] == ["_conv_head", "_avg_pooling", "_fc"]
    for p in parts:  # one input from outside each block
        inside = {n.output for n in p}
        outside = {t for n in p for t in n.inputs if t not in inside}
        assert len(outside) == 1


def test_auto_is_per_channel_and_within_budget(lowbit):
    from aq_runtime.format.inspect import average_weight_bits
    near, learned = lowbit
    rep = near.meta["auto_bits"]
    assert rep["weight_bytes"] <= rep["budget_bytes"]
    assert average_weight_bits(near) <= 4.1
    varied = [n for n in near.weight_nodes() if len(set(n.arrays["wbits"].tolist())) > 1]
    assert varied, "per-channel allocation gave every channel of every layer the same bits"
    assert rep["allocation"] == "channel"
    for a, b in zip(near.weight_nodes(), learned.weight_nodes()):  # same plan, same scales
        assert (a.arrays["wbits"] == b.arrays["wbits"]).all()
        assert (a.arrays["mult"] == b.arrays["mult"]).all()


def test_mse_clipping_never_worse_than_max():
    from aq_runtime.export.clipping import mse_alpha
    from aq_runtime.export.integerize import weight_codes
    rng = np.random.default_rng(0)
    we = rng.standard_t(3, size=(16, 200))  # heavy tails: clipping pays
    bits = np.array([2, 3, 4, 5] * 4)
    bias = np.zeros(16)
    alpha = mse_alpha(we, bits, bias)

    def err(a):
        q, s = weight_codes(we, bits, bias, a)
        return ((we - q * s[:, None]) ** 2).sum(1)
    assert (err(alpha) <= err(1.0) + 1e-12).all() and (alpha < 1).sum() >= 8


def test_mse_clipping_search_is_the_exporters_quantizer():
    """The fused search (numba, one pass per channel) chooses what evaluating every alpha of
    the grid with the exporter's own quantizer chooses, floors from large biases included."""
    from aq_runtime.export.clipping import ALPHAS, GROUPED_ALPHAS, mse_alpha
    from aq_runtime.export.integerize import BIAS_CODE_LIMIT, weight_codes
    from aq_runtime.quant.weights import grouped_rows
    rng = np.random.default_rng(1)
    we = rng.standard_t(3, size=(64, 144)) * rng.uniform(0.01, 3, (64, 1))
    bias = rng.normal(0, 1, 64)
    bias[:6] = np.abs(we[:6]).max(1) * BIAS_CODE_LIMIT / 3  # these scales at their floor
    for group in (0, 16):
        bits = rng.integers(1, 9, 64)
        rows = grouped_rows(bits, we.shape[1], group)
        best = np.full(64, np.inf)
        want = np.ones(64)
        for sel, grid, g in ((~rows, ALPHAS, 0), (rows, GROUPED_ALPHAS, group)):
            for a in grid[::-1]:
                q, s = weight_codes(we[sel], bits[sel], bias[sel], a, g)
                err = ((we[sel] - q * s[:, None]) ** 2).sum(1)
                better = err < best[sel] * (1 - 1e-12)
                best[sel] = np.where(better, err, best[sel])
                want[sel] = np.where(better, a, want[sel])
        want = np.where(bits <= 1, 1.0, want)
        got = mse_alpha(we, bits, bias, group)
        assert (got == want).all() and (want < 1).sum() >= 20, group


def test_learned_rounding_is_exact_and_recorded(lowbit, lite0_small):
    _, _, xh, _ = lite0_small
    _, learned = lowbit
    info = learned.meta["calibration"]["learned_rounding"]
    assert info["iters"] == 30 and info["blocks"] == len(info["per_block"]) == 18
    assert info["images"] == 160
    assert learned.meta["calibration"]["rounding"] == "learned"
    ref = Session(learned, "reference").run(xh[:3])
    for b in available_backends():
        assert (Session(learned, b).run(xh[:3]) == ref).all(), b


def test_learned_codes_within_one_step(lowbit, lite0_small):
    fg = lite0_small[0]
    near, learned = lowbit
    moved = 0
    for f, a, b in zip(fg.conv_nodes(), near.weight_nodes(), learned.weight_nodes()):
        qa, qb = a.arrays["weight"].astype(np.int64), b.arrays["weight"].astype(np.int64)
        assert np.abs(qa - qb).max() <= 1
        moved += int((qa != qb).sum())
    assert moved > 0


def test_learned_rounding_fits_its_images_better(lowbit, lite0_small):
    """On the calibration images (what it optimised), learned rounding reproduces the float
    logits better than nearest rounding; held-out fidelity is the benchmark's business."""
    from aq_runtime.runtime.fidelity import sqnr_db
    from aq_runtime.export.fakequant import FakeQuantGraph
    from aq_runtime.export.float_exec import run_float_graph
    fg, xc, _, _ = lite0_small
    near, learned = lowbit
    f = run_float_graph(fg, xc)
    assert sqnr_db(f, FakeQuantGraph(learned)(xc)) > sqnr_db(f, FakeQuantGraph(near)(xc)) + 0.3


def test_rounding_targets_block_and_blend(lite0_small):
    """With target 'block' each block reproduces the float block on its own quantized input:
    its error leaves out what earlier blocks' rounding sent it, so late blocks start far below
    the 'model' target's error (the float model's output, accumulated error included); the
    first block, fed the image, starts alike; codes stay within one step either way. 'blend'
    (a x the first + (1 - a) x the second) starts within the convex bound of the two, and at
    the last block between them (the error sent from earlier blocks is in part its target)."""
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.export.learned_rounding import learn_rounding
    from aq_runtime.export.options import ExportOptions
    fg, xc, _, ranges = lite0_small
    near = export_graph(fg, xc, ExportOptions(bits=4, bias_correction=False, progress=False),
                        ranges=ranges)
    start = {n.name: n.arrays["weight"].astype(np.int64) for n in near.weight_nodes()}
    before = {}
    for target in ("model", "block", "blend"):
        codes, info = learn_rounding(fg, fg, near, xc[:32], iters=10, progress=False,
                                     target=target, blend=0.25)
        before[target] = [b["error_before"] for b in info["per_block"]]
        assert all(np.abs(q - start[k].reshape(q.shape)).max() <= 1 for k, q in codes.items())
    assert before["block"][0] == pytest.approx(before["model"][0], rel=0.2)
    assert before["block"][-1] < 0.5 * before["model"][-1]
    for m, b, mix in zip(before["model"], before["block"], before["blend"]):
        assert mix <= 1.05 * (0.25 * m + 0.75 * b)  # 5%: the three targets' norms differ
    assert before["block"][-1] < before["blend"][-1] < before["model"][-1]
    with pytest.raises(ValueError, match="target"):
        learn_rounding(fg, fg, near, xc[:4], iters=1, progress=False, target="layer")


def test_block_errors_end_at_the_logit_noise(lowbit, lite0_small):
    """One figure per reconstruction block, in order; the last block's is the logit noise
    the fake-quant model's SQNR measures; learned rounding lowers it on its own images."""
    from aq_runtime.bench.block_error import block_errors
    from aq_runtime.runtime.fidelity import sqnr_db
    from aq_runtime.export.fakequant import FakeQuantGraph
    from aq_runtime.export.float_exec import run_float_graph
    from aq_runtime.export.learned_rounding import blocks
    fg, xc, _, _ = lite0_small
    near, learned = lowbit
    e_near = block_errors(fg, near, xc)
    assert [n for n, _ in e_near] == [p[0].name for p in blocks(fg)]
    assert all(e >= 0 for _, e in e_near) and e_near[0][1] < e_near[-1][1]
    logit_db = sqnr_db(run_float_graph(fg, xc), FakeQuantGraph(near)(xc))
    assert -10 * np.log10(e_near[-1][1]) == pytest.approx(logit_db, abs=1e-3)
    assert block_errors(fg, learned, xc)[-1][1] < e_near[-1][1]


def test_integerize_refuses_codes_out_of_range(lite0_small):
    from aq_runtime.export.bits_spec import resolve_bits
    from aq_runtime.export.integerize import integerize
    fg, _, _, ranges = lite0_small
    plan = resolve_bits(fg, 4)
    g = integerize(fg, ranges, plan.weight, plan.act, plan.ternary)
    n = g.weight_nodes()[3]
    q = n.arrays["weight"].reshape(n.arrays["weight"].shape[0], -1).astype(np.int64)
    with pytest.raises(AqError, match="range"):
        integerize(fg, ranges, plan.weight, plan.act, plan.ternary, codes={n.name: q * 3})


def test_augmented_images_are_deterministic_views():
    from aq_runtime.data.augment import augmented
    from aq_runtime.data.photos import CALIBRATION_PHOTOS, crops_of
    x = crops_of(CALIBRATION_PHOTOS[:1], 32)[0]
    a, b = augmented(x, 60, seed=1), augmented(x, 60, seed=1)
    assert a.shape == (60, 32, 32, 3) and a.dtype == np.uint8 and (a == b).all()
    assert (a[:len(x)] == x).all()
    extra = a[len(x):]
    assert not any((extra[i] == x).all(axis=(1, 2, 3)).any() for i in range(len(extra)))


def test_a_plan_reused_exports_what_planning_again_does(digits_fg):
    """export_graph(plan=) gives the model planning inside gives, and using the plan leaves it
    as it was (so the next export with it is the same too): nearest, learned rounding and
    activation widths from one plan, each against its own export planned from scratch."""
    import copy
    import dataclasses

    from aq_runtime.export.pipeline import calibrate_ranges, export_graph, plan_bits
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.models.digits import digits_data
    x = digits_data()[0][:64]
    ranges = calibrate_ranges(digits_fg, x)
    base = ExportOptions(bits="auto", budget=0.5, allocation="channel", clipping="mse",
                         rounding="nearest", rounding_target="model", weight_coding="packed",
                         progress=False)
    plan = plan_bits(digits_fg, x, ranges, base)
    kept = copy.deepcopy(plan)
    for o in (base, base.with_(rounding="learned", rounding_iters=5, rounding_images=64),
              base.with_(act_bits="auto"), base):
        got = export_graph(digits_fg, x, o, ranges=ranges, plan=plan)
        assert got.digest() == export_graph(digits_fg, x, o, ranges=ranges).digest()
    assert kept.report.keys() == plan.report.keys() and kept.ternary == plan.ternary
    for a, b in ((kept.weight, plan.weight), (kept.act, plan.act)):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    first = next(iter(plan.weight))  # the plan given is the plan used: one layer put at 6 bits
    other = dataclasses.replace(plan, weight={**plan.weight,
                                              first: np.full_like(plan.weight[first], 6)})
    got = export_graph(digits_fg, x, base, ranges=ranges, plan=other)
    assert got.weight_nodes()[0].name == first
    assert (got.weight_nodes()[0].arrays["wbits"] == 6).all()
    assert not (plan.weight[first] == 6).all()


def test_target_avx2_keeps_codes_in_one_vpmaddubsw(digits_fg):
    """--target avx2: no 8-bit weight codes (7 instead; auto never picks 8), so every layer of
    at most 8 bits is one digit for the AVX2 kernel (|w| <= 64); the model stays exact."""
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.kernels.tvm.ops import digit_rows
    from aq_runtime.models.digits import digits_data
    x = digits_data()[0][:64]
    for bits in (8, "auto"):
        g = export_graph(digits_fg, x, ExportOptions(bits=bits, target="avx2", progress=False))
        assert g.meta["calibration"]["target"] == "avx2"
        for n in g.weight_nodes():
            wb = n.arrays["wbits"]
            assert not np.any(wb == 8), (bits, n.name)
            w = n.arrays["weight"].reshape(len(wb), -1)
            small = wb <= 8
            if small.any():
                assert digit_rows(w[small], 64)[1] == 1
        ref = Session(g, "reference").run(x[:8])
        for b in available_backends():
            assert np.array_equal(Session(g, b).run(x[:8]), ref), b
    with pytest.raises(AqError, match="target"):
        ExportOptions(target="avx9")


def test_auto_act_bits_lowers_score_within_its_noise(lite0_small):
    """--act-bits auto: widths below 8 where they cost little. The chosen set, measured as a
    whole on the planning images, adds at most the allowed share of the weight plan's noise;
    the MicroNet score drops; lookup-free tensors only; the model is exact on every backend."""
    from aq_runtime.export.pipeline import export_graph, plan_bits
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.format.inspect import average_act_bits, summarize
    from aq_runtime.quant.cost import micronet_score
    fg, xc, xh, ranges = lite0_small
    base = ExportOptions(bits="auto", budget=0.5, allocation="layer", clipping="mse",
                         rounding="nearest", rounding_target="model", weight_coding="packed",
                         progress=False)
    plan = plan_bits(fg, xc, ranges, base)  # the weight plan; activation widths come after
    plain = export_graph(fg, xc, base, ranges=ranges, plan=plan)
    low = export_graph(fg, xc, base.with_(act_bits="auto", act_noise=0.2), ranges=ranges,
                       plan=plan)
    rep = low.meta["auto_act_bits"]
    assert rep["share"] == 0.2 and rep["images"] == 16
    assert 0 <= rep["added_noise"] <= 0.2 * rep["base_noise"]
    assert average_act_bits(low) < 7 and average_act_bits(plain) == 8
    assert micronet_score(low)["score"] < 0.98 * micronet_score(plain)["score"]
    for a, b in zip(plain.weight_nodes(), low.weight_nodes()):  # the weight plan is kept
        assert (a.arrays["wbits"] == b.arrays["wbits"]).all()
    assert low.tensors[low.input].bits.tolist() == [8, 8, 8]
    assert low.meta["calibration"]["act_bits"] == "auto"
    assert "activation widths auto" in summarize(low)
    ref = Session(low, "reference").run(xh[:3])
    for b in available_backends():
        assert (Session(low, b).run(xh[:3]) == ref).all(), b
    with pytest.raises(AqError, match="act-noise"):
        ExportOptions(act_bits="auto", act_noise=0)
    with pytest.raises(AqError, match="rounding-blend"):
        ExportOptions(rounding="learned", rounding_target="blend", rounding_blend=1.0)
    meta = ExportOptions(rounding="learned", rounding_target="blend").as_meta(8)
    assert meta["rounding_target"] == "blend" and meta["rounding_blend"] == 0.5
    assert "rounding_blend" not in ExportOptions(rounding="learned").as_meta(8)
    with pytest.raises(AqError, match="activation bits"):
        ExportOptions(act_bits="4")


def test_average_bits_count_values(digits_graph):
    """Average activation bits are bits per value: one tensor's channels lowered from 8 to 4
    bits move the average by 4 x that tensor's share of all requantized values (its pixels,
    not its channel count)."""
    import copy

    from aq_runtime.format.inspect import average_act_bits
    g = copy.deepcopy(digits_graph)
    inner = [t for t in g.tensors if t not in (g.input, g.output)]
    values = {t: g.tensors[t].bits.size * g.tensors[t].shape[1] * g.tensors[t].shape[2]
              for t in inner}
    assert average_act_bits(g) == 8
    big = max(inner, key=lambda t: g.tensors[t].shape[1])  # the largest spatial size
    g.tensors[big].bits = np.full_like(g.tensors[big].bits, 4)
    want = 8 - 4 * values[big] / sum(values.values())
    assert average_act_bits(g) == pytest.approx(want, rel=1e-12)
    assert want < 8 - 4 * g.tensors[big].bits.size / sum(g.tensors[t].bits.size for t in inner)


def test_fake_act_is_the_integer_quantizer():
    """The planner's activation rounding is the exporter's: codes round half up, clamp to the
    width, real zero exact."""
    import torch
    from aq_runtime.export.auto_act_bits import fake_act
    from aq_runtime.quant import act_params_from_range
    from aq_runtime.quant.rounding import round_half_up
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 3, 5, 5)) * np.array([1, 3, 0.1])[None, :, None, None]
    lo, hi = np.array([-1.0, 0.0, -0.2]), np.array([1.5, 4.0, 0.1])
    for bits in (2, 5, 8):
        s, z = act_params_from_range(lo, hi, np.full(3, bits))
        q = np.clip(round_half_up(y / s[None, :, None, None]) + z[None, :, None, None],
                    0, (1 << bits) - 1)
        want = s[None, :, None, None] * (q - z[None, :, None, None])
        got = fake_act(torch.from_numpy(y), lo, hi, bits).numpy()
        assert np.array_equal(got, want), bits


def test_auto_act_bits_keeps_8_where_it_saves_nothing(digits_fg):
    """With 8-bit weights every multiply costs 8 bits whatever its activation's width, so
    --act-bits auto finds nothing worth its noise and keeps every width at 8."""
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.format.inspect import average_act_bits
    from aq_runtime.models.digits import digits_data
    g = export_graph(digits_fg, digits_data()[0][:128],
                     ExportOptions(bits=8, act_bits="auto", act_noise=1.0, progress=False))
    assert average_act_bits(g) == 8 and g.meta["auto_act_bits"]["score_saved"] == 0


@pytest.fixture(scope="module")
def grouped(lite0_small):
    """auto 0.5, per channel, MSE clipping, weight groups of 16: nearest and learned."""
    from aq_runtime.export.pipeline import export_graph, plan_bits
    from aq_runtime.export.options import ExportOptions
    fg, xc, _, ranges = lite0_small
    base = ExportOptions(bits="auto", budget=0.5, allocation="channel", clipping="mse",
                         rounding="nearest", rounding_target="model", weight_coding="packed",
                         weight_groups=16,
                         progress=False)
    plan = plan_bits(fg, xc, ranges, base)
    near = export_graph(fg, xc, base, ranges=ranges, plan=plan)
    learned = export_graph(fg, xc, base.with_(rounding="learned", rounding_iters=30,
                                              rounding_images=160), ranges=ranges, plan=plan)
    return near, learned


def test_weight_groups_are_exact_stored_and_priced(grouped, lowbit, lite0_small, tmp_path):
    """--weight-groups: the plan prices the multipliers (bytes within the budget, the file's
    packed weights exactly the planned bytes), the file round-trips them, every backend ==
    reference, learned codes move by at most one step of their group, and the model
    reproduces the float one better than without groups at the same budget."""
    from aq_runtime.runtime.fidelity import sqnr_db
    from aq_runtime.export.fakequant import FakeQuantGraph
    from aq_runtime.export.float_exec import run_float_graph
    from aq_runtime.format import read_aqz, write_aqz
    from aq_runtime.format.inspect import average_weight_bits, summarize, weight_bytes
    from aq_runtime.quant.weights import expand_groups
    fg, xc, xh, _ = lite0_small
    near, learned = grouped
    rep = near.meta["auto_bits"]
    assert rep["weight_bytes"] <= rep["budget_bytes"] and weight_bytes(near) == rep["weight_bytes"]
    assert average_weight_bits(near) <= 4.01
    nodes = [n for n in near.weight_nodes() if "weight_group" in n.attrs]
    assert len(nodes) >= 10 and all(n.attrs["weight_group"] == 16 for n in nodes)
    for a, b in zip(near.weight_nodes(), learned.weight_nodes()):
        qa = a.arrays["weight"].reshape(len(a.arrays["wbits"]), -1).astype(np.int64)
        qb = b.arrays["weight"].reshape(qa.shape).astype(np.int64)
        m = (expand_groups(a.arrays["wmult"], qa.shape[1], 16) if "wmult" in a.arrays else 1)
        assert (np.abs(qa - qb) <= m).all() and ((qa - qb) % m == 0).all()
    for g in (near, learned):
        path = tmp_path / "g.aqz"
        write_aqz(g, path)
        back = read_aqz(path)
        assert "weight groups of 16" in summarize(back, path)
        ref = Session(g, "reference").run(xh[:3])
        for b in available_backends():
            assert (Session(back, b).run(xh[:3]) == ref).all(), b
    f = run_float_graph(fg, xc)
    assert sqnr_db(f, FakeQuantGraph(near)(xc)) > sqnr_db(f, FakeQuantGraph(lowbit[0])(xc)) + 0.5
    with pytest.raises(AqError, match="weight-groups"):
        from aq_runtime.export.options import ExportOptions
        ExportOptions(weight_groups=1)


def test_weight_groups_refused_when_inconsistent(grouped):
    import copy

    from aq_runtime.ir.validate import validate_graph
    from aq_runtime.quant.weights import expand_groups
    near = grouped[0]
    i = next(i for i, n in enumerate(near.nodes) if "weight_group" in n.attrs)

    def off_multiple(w):  # one weight of a group with multiplier > 1 moved one toward zero
        n = near.nodes[i]
        m = expand_groups(n.arrays["wmult"], w[0].size, 16).reshape(w.shape)
        at = tuple(np.argwhere((m > 1) & (w != 0))[0])
        w[at] -= np.sign(w[at])
        return w

    for key, change in (("wmult", lambda a: a * 0 + 9), ("wcbits", lambda a: a * 0 + 7),
                        ("weight", off_multiple)):
        g = copy.deepcopy(near)
        g.nodes[i].arrays[key] = change(g.nodes[i].arrays[key].astype(np.int64))
        with pytest.raises(ValueError, match="wmult|wcbits|grouped"):
            validate_graph(g)
