"""The integer semantics (docs/SEMANTICS.md) against hand-computed integers."""

import numpy as np
import pytest

from aq_runtime.ir.graph import Node
from aq_runtime.quant import (
    act_params_from_range,
    pack_codes,
    quantize_multiplier,
    quantize_multiplier_pair,
    quantize_ternary,
    quantize_weights,
    requantize,
    round_half_up,
    rshift,
    unpack_codes,
)
from aq_runtime.quant.bits import weight_code_range
from aq_runtime.kernels import reference as R


def test_rshift_rounds_half_up_including_negatives():
    v = np.array([5, 6, 7, -5, -6, -7, 4, -4, 0, 3, -3], dtype=np.int64)
    # v / 2: 2.5->3, 3->3, 3.5->4, -2.5->-2, -3->-3, -3.5->-3, 2, -2, 0, 1.5->2, -1.5->-1
    assert list(rshift(v, 1)) == [3, 3, 4, -2, -3, -3, 2, -2, 0, 2, -1]
    assert list(rshift(np.array([10, -10, 12, -12]), 3)) == [1, -1, 2, -1]  # 1.25, -1.25, 1.5, -1.5
    with pytest.raises(ValueError):
        rshift(np.array([1]), 0)
    with pytest.raises(ValueError):
        rshift(np.array([1]), 63)


def test_round_half_up():
    assert list(round_half_up(np.array([0.5, 1.5, -0.5, -1.5, 2.4999]))) == [1, 2, 0, -1, 2]


def test_quantize_multiplier_ranges_and_value():
    m, n = quantize_multiplier(np.array([0.75, 1.0, 3e-7, 0.999999999]))
    assert list(m[:2]) == [3 << 14, 1 << 15] and list(n[:2]) == [16, 15]
    assert np.all(m < 1 << 16) and np.all(m >= 1 << 15)
    assert abs(m[2] / 2.0 ** n[2] - 3e-7) / 3e-7 < 2 ** -15
    m, n = quantize_multiplier(0.3, bits=31)
    assert (1 << 30) <= m[0] < (1 << 31) and m[0] == round_half_up(0.3 * 2.0 ** n[0])
    with pytest.raises(ValueError):
        quantize_multiplier(0.0)
    with pytest.raises(ValueError):
        quantize_multiplier(2.0 ** 40)
    m1, m2, n = quantize_multiplier_pair(np.array([0.5]), np.array([0.25]))
    assert (m1[0], m2[0], n[0]) == (1 << 15, 1 << 14, 16)


def test_requantize_clamp_edges():
    v = np.array([-100, 0, 100, 1000], dtype=np.int64)
    # z=10, m/2^n = 3/4 -> 10 + rshift(v*3, 2): -75 -> 10-75=-65 -> clamp 0; 0->10; 75->85; 750->760 -> 255
    assert list(requantize(v, 3, 2, 10, 0, 255)) == [0, 10, 85, 255]
    # round half up at the tie: v*m = 6 -> 6/4 = 1.5 -> 2 ; -6/4 = -1.5 -> -1
    assert list(requantize(np.array([2, -2]), 3, 2, 0, -10, 10)) == [2, -1]


def test_weight_codes_binary_and_symmetric():
    assert weight_code_range(1) == (-1, 1) and weight_code_range(2) == (-1, 1)
    assert weight_code_range(8) == (-127, 127) and weight_code_range(16) == (-32767, 32767)
    we = np.array([[0.5, -0.25, 0.0, 1.0], [0.1, -0.2, 0.3, -0.4]])
    q, s = quantize_weights(we, np.array([1, 3]))
    assert q[0].tolist() == [1, -1, 1, 1] and s[0] == pytest.approx(0.4375)
    # 3 bits: qmax 3, s = 0.4/3: 0.1/s=0.75->1, -1.5->-1, 2.25->2, -3
    assert q[1].tolist() == [1, -1, 2, -3]
    t, wp, wn = quantize_ternary(np.array([[1.0, -0.5, 0.01, 0.7, -0.02]]), 0.05)
    assert t.tolist() == [[1, -1, 0, 1, 0]] and wp[0] == pytest.approx(0.85) and wn[0] == 0.5


@pytest.mark.parametrize("bits", list(range(1, 17)))
def test_pack_roundtrip_each_width(bits):
    rng = np.random.default_rng(bits)
    lo, hi = weight_code_range(bits)
    q = rng.integers(lo, hi + 1, size=(5, 13))
    if bits == 1:
        q = np.where(q == 0, 1, q)
    b = np.full(5, bits)
    p = pack_codes(q, b)
    assert p.size == 5 * ((13 * bits + 7) // 8)
    assert np.array_equal(unpack_codes(p, b, 13), q)


def test_pack_layout_lsb_first_byte_aligned():
    # 2-bit codes, offset 1: [-1, 0, 1, 1] -> [0, 1, 2, 2] -> bits LSB first: 00 10 01 01 -> 0b10100100
    p = pack_codes(np.array([[-1, 0, 1, 1], [1, 1, 1, 1]]), np.array([2, 1]))
    assert p.tolist() == [0b10100100, 0b00001111]
    mixed = pack_codes(np.array([[3, -3, 0], [1, -1, 1]]), np.array([3, 1]))
    # 3-bit, offset 3: [6, 0, 3] -> 011 000 110 (LSB first) -> 0b11000110, 0b0 ; 1-bit 1,0,1 -> 0b101
    assert mixed.tolist() == [0b11000110, 0b0, 0b101]


def test_act_params():
    s, z = act_params_from_range(np.array([-1.0, 0.0, 2.0]), np.array([3.0, 6.0, 4.0]),
                                 np.array([8, 8, 4]))
    assert s[0] == pytest.approx(4 / 255) and z[0] == 64  # 63.75 -> 64
    assert z[1] == 0 and z[2] == 0 and s[2] == pytest.approx(4 / 15)


def _conv_node(w, bias, mult, shift, lo, hi, stride=(1, 1), pad=(0, 0, 0, 0), groups=1, **extra):
    arrays = dict(weight=np.array(w), bias=np.array(bias), mult=np.array(mult),
                  shift=np.array(shift), lo=np.array(lo), hi=np.array(hi), **extra)
    return Node("conv", "c", ["x"], "y", dict(stride=list(stride), pad=list(pad), groups=groups,
                                              mode="ternary" if "bias_n" in extra else "int"),
                arrays)


def test_conv_pads_with_zero_point_and_requantizes():
    # 1 channel 2x2 input, z_in = 3, 3x3 kernel of ones, pad 1 -> padded cells hold 3 (real 0)
    x = np.array([[[[4, 5], [6, 7]]]], dtype=np.int64)
    w = np.ones((1, 1, 3, 3), dtype=np.int64)
    # acc at each output = sum of the 3x3 window incl. padding 3s = 9 cells:
    # every window covers all 4 inputs (22) + 5 pad cells (15) = 37
    # bias = -sum z*Q = -27 ; acc + bias = 10 = sum(q - z) = 1+2+3+4
    node = _conv_node(w, [-27], [3], [2], [0], [255], pad=(1, 1, 1, 1))
    y = R.conv(node, x, np.array([3]), np.array([5]))
    # 5 + rshift(10*3, 2) = 5 + 8 (7.5 -> 8) = 13
    assert y.tolist() == [[[[13, 13], [13, 13]]]]


def test_conv_stride_asymmetric_pad_and_negative_weights():
    x = np.arange(16, dtype=np.int64).reshape(1, 1, 4, 4)
    w = np.array([[[[1, -1], [-2, 2]]]])
    node = _conv_node(w, [0], [1], [1], [-128], [127], stride=(2, 2), pad=(0, 1, 0, 1))
    y = R.conv(node, x, np.array([0]), np.array([0]))
    # window (0,0): 0-1-8+10 = 1 ; (0,2): 2-3-12+14=1 ; (2,0): 8-9-24+26=1 ; rshift(1,1)=1
    assert y.tolist() == [[[[1, 1], [1, 1]]]]


def test_depthwise_and_binary_weights():
    x = np.array([[[[1, 2]], [[3, 4]]]], dtype=np.int64)  # 2 channels, 1x2
    w = np.array([[[[1, -1]]], [[[-1, -1]]]])  # 1-bit codes
    node = _conv_node(w, [0, 0], [2, 2], [1, 1], [-100, -100], [100, 100], groups=2)
    y = R.conv(node, x, np.array([0, 0]), np.array([0, 0]))
    assert y.tolist() == [[[[-1]], [[-7]]]]  # (1-2)*2/2, (-3-4)*2/2


def test_ternary_two_sums():
    x = np.array([[[[10]], [[20]], [[30]]]], dtype=np.int64)  # 3 channels, z = 2 each
    w = np.array([[[[1]], [[-1]], [[0]]]])
    # acc_p = 10, acc_n = 20 ; bias_p = 5 - 2 = 3 ; bias_n = -2
    # p = (10+3)*4 - (20-2)*2 = 52 - 36 = 16 ; rshift(16, 3) = 2 ; +z_out 7 = 9
    node = _conv_node(w, [3], [4], [3], [0], [255], bias_n=np.array([-2]), mult_n=np.array([2]))
    assert R.conv(node, x, np.array([2, 2, 2]), np.array([7])).tolist() == [[[[9]]]]


def test_add_mul_gap_lut():
    a = np.array([[[[10, 20]]]]); b = np.array([[[[5, 0]]]])
    node = Node("add", "a", ["p", "q"], "r", {}, dict(mult_a=np.array([3]), mult_b=np.array([2]),
                shift=np.array([2]), lo=np.array([0]), hi=np.array([255])))
    # (10-4)*3 + (5-1)*2 = 26 -> 6.5 -> 7 ; +z 100 = 107 ; (20-4)*3 + (0-1)*2 = 46 -> 11.5 -> 12
    assert R.add(node, a, np.array([4]), b, np.array([1]), np.array([100])).tolist() == [[[[107, 112]]]]
    node = Node("mul", "m", ["p", "q"], "r", {}, dict(mult=np.array([1]), shift=np.array([1]),
                lo=np.array([0]), hi=np.array([15])))
    g = np.array([[[[3]]]])
    # (10-4)*(3-1) = 12 -> 6 ; (20-4)*2 = 32 -> 16 -> clamp 15
    assert R.mul(node, a, np.array([4]), g, np.array([1]), np.array([0])).tolist() == [[[[6, 15]]]]
    node = Node("gap", "g", ["p"], "r", {}, dict(mult=np.array([1]), shift=np.array([1]),
                lo=np.array([0]), hi=np.array([255])))
    # sum (q - 4) = 6 + 16 = 22 ; * 1 >> 1 = 11 ; + z 2 = 13 (average 11, times 1/2^1 * 2 pixels)
    assert R.gap(node, a, np.array([4]), np.array([2])).tolist() == [[[[13]]]]
    table = np.tile(np.arange(256)[::-1], (1, 1))
    node = Node("lut", "l", ["p"], "r", {}, dict(table=table))
    assert R.lut(node, a).tolist() == [[[[245, 235]]]]


def test_int_matmul_exact_beyond_float_range():
    a = np.array([[2 ** 40, 1]], dtype=np.int64)
    b = np.array([[2 ** 20], [1]], dtype=np.int64)
    assert R.int_matmul(a, b).tolist() == [[2 ** 60 + 1]]


def test_overflow_refusal():
    from aq_runtime.ir.graph import TensorSpec
    from aq_runtime.ir.validate import _validate_conv
    k = 3000
    t_in = TensorSpec("x", (k, 1, 1), np.ones(k), np.zeros(k, np.int64), np.full(k, 8))
    out = TensorSpec("y", (1, 1, 1), np.ones(1), np.zeros(1, np.int64), np.full(1, 8))
    w = np.full((1, k, 1, 1), 32767)
    node = _conv_node(w, [0], [1], [1], [0], [255], wbits=np.array([16]))
    node.attrs["weight_shape"] = [1, k, 1, 1]
    with pytest.raises(ValueError, match="int32 overflow"):
        _validate_conv("n", node, t_in, out)
    node.arrays["weight"] = np.full((1, k, 1, 1), 2000)  # 3000*2000*255 = 1.53e9 < 2^31
    _validate_conv("n", node, t_in, out)


def test_scalar_requant_equals_vectorized():
    from aq_runtime.quant.requant import requant_one
    rng = np.random.default_rng(0)
    acc = rng.integers(-2 ** 30, 2 ** 30, size=200)
    bias = rng.integers(-2 ** 20, 2 ** 20, size=200)
    m = rng.integers(1, 2 ** 16, size=200)
    n = rng.integers(1, 40, size=200)
    z = rng.integers(0, 256, size=200)
    want = requantize(acc + bias, m, n, z, 0, 255)
    got = [requant_one(*t, 0, 255) for t in zip(acc, bias, m, n, z)]
    assert [int(g) for g in got] == want.tolist()


def test_float_requant_equals_integer_where_proved_exact():
    """requant_float (the float64 form of the vector kernels) == requantize, ties and
    negatives included, wherever float_exact says so; float_exact refuses where float64 would
    round (v*m near 2^53) or v does not fit int32."""
    from aq_runtime.quant.requant import float_exact, requant_float
    rng = np.random.default_rng(1)
    m = rng.integers(2 ** 15, 2 ** 16, size=4000)
    n = rng.integers(1, 50, size=4000)
    vmax = np.minimum((2 ** 53 - 2 ** (n - 1) - 7 * 2 ** n - 1) // m, 2 ** 31 - 1)
    vmax = np.minimum(vmax, np.floor((2 ** 31 - 9) * np.exp2(n) / m)).astype(np.int64)
    # (and the result fits int32)
    v = rng.integers(-vmax, vmax + 1)
    v[:8] = [0, 1, -1, 2, -2, 3, -3, 5]  # small values: ties at n = 1, 2
    n[:8] = [1, 1, 1, 2, 2, 1, 1, 2]
    assert float_exact(np.abs(v), m, n, 7)
    for lo, hi in ((0, 255), (-2 ** 31, 2 ** 31 - 1)):
        want = requantize(v, m, n, 7, lo, hi)
        assert (requant_float(v, m, n, 7, lo, hi) == want).all()
    # ties by hand: 3 * 1 / 2 = 1.5 -> 2, -3 / 2 = -1.5 -> -1 (round half up)
    assert requant_float(np.array([3, -3]), 1, 1, 0, -9, 9).tolist() == [2, -1]
    assert not float_exact(np.array([2 ** 31]), np.array([1]), np.array([1]))
    assert not float_exact(np.array([2 ** 37]), np.array([2 ** 16]), np.array([20]))
    # a result beyond int32 (the kernels' lanes convert it to -2^31): refused
    assert not float_exact(np.array([2 ** 30]), np.array([2 ** 15]), np.array([1]))
    assert float_exact(np.array([2 ** 30]), np.array([2 ** 15]), np.array([16]))
    # beyond the bound float64 really rounds (v*m > 2^53): the guard is needed
    big, mb = np.array([257902028889]), np.array([60467])
    assert not float_exact(big, mb, np.array([3]))
    assert not float_exact(np.array([1]), np.array([1]), np.array([40]), np.array([2 ** 13]))
    assert requant_float(big, mb, 3, 0, 0, 2 ** 62) != requantize(big, mb, 3, 0, 0, 2 ** 62)


def test_group_multipliers_refine_steps_exactly():
    """Weight groups: Q = code * m with |code| within the code bits, m in 1..8 per group,
    every channel's error at most its plain per-channel error; 6+-bit and 1-bit channels and
    layers with fewer than two groups' weights stay plain."""
    from aq_runtime.quant.weights import expand_groups, quantize_weights_grouped
    rng = np.random.default_rng(3)
    we = rng.standard_t(4, size=(12, 70)) * rng.uniform(0.1, 3, size=(1, 70))
    bits = np.array([2, 3, 4, 5, 6, 8, 1, 4, 3, 2, 5, 4])
    q, s, mult, eb = quantize_weights_grouped(we, bits, 16)
    q0, s0 = quantize_weights(we, bits)
    assert mult.shape == (12, 5) and mult.min() >= 1 and mult.max() <= 8
    grouped = (bits >= 2) & (bits <= 5)
    assert (eb == np.where(grouped, bits + 3, bits)).all()
    m = expand_groups(mult, 70, 16)
    assert (q % m == 0).all() and (mult[~grouped] == 1).all()
    qmax = (1 << (bits - 1)) - 1
    assert (np.abs(q // m)[grouped] <= qmax[grouped, None]).all()
    assert (q[~grouped] == q0[~grouped]).all()
    err = ((we - q * s[:, None]) ** 2).sum(1)
    err0 = ((we - q0 * s0[:, None]) ** 2).sum(1)
    assert (err <= err0 * (1 + 1e-12)).all() and (err[grouped] < 0.9 * err0[grouped]).all()
    assert err[grouped].sum() < 0.6 * err0[grouped].sum()
    assert quantize_weights_grouped(we[:, :31], bits, 16)[2] is None  # < 2 groups: plain


def test_grouped_packing_roundtrip_and_size():
    from aq_runtime.quant.packing import (
        pack_multipliers,
        stored_codes,
        stored_row_bytes,
        with_multipliers,
    )
    from aq_runtime.quant.weights import quantize_weights_grouped
    rng = np.random.default_rng(4)
    we = rng.normal(size=(9, 45))
    bits = np.array([2, 3, 4, 5, 6, 7, 8, 1, 4])
    q, _, mult, eb = quantize_weights_grouped(we, bits, 8)
    grouped = eb != bits
    codes = pack_codes(stored_codes(q, mult, grouped, 8), bits)  # as the writer stores them
    mp = pack_multipliers(mult, grouped)
    assert codes.size + mp.size == stored_row_bytes(45, bits, 8).sum()
    q2, m2 = with_multipliers(unpack_codes(codes, bits, 45), mp, grouped, 45, 8)
    assert (q2 == q).all() and (m2 == mult).all()
    with pytest.raises(ValueError, match="multiple"):
        stored_codes(q + grouped[:, None], mult * 0 + 2, grouped, 8)
