"""The ops of docs/SEMANTICS.md as TVM tensor expressions (TE), one PrimFunc per distinct layer
shape, NCHW int32 codes in and out, the batch size symbolic (one compiled module serves every
batch). Per-channel parameters are int64 arguments, not constants, so a function depends only on the
layer's shape and attributes. Padding positions read the input's zero point (real zero);
max pooling pads with code 0. Conv sums are int32 (the exporter's overflow proof), the
requantization int64: `requant_expr` / `requantize_product_expr` state quant.requant's `requant_one`
/ `requantize_product_one` for TE (tests/test_tvm_cuda.py checks them against those functions value
by value). Reductions are named "acc*", every function's output block "out"
(kernels/tvm_cuda/schedule.py relies on it); one-group int convs reduce TILE output channels at once
(`out_tile`)."""

from __future__ import annotations

from typing import Any

from ...ir.graph import Node

I64 = "int64"
I32 = "int32"


def requantize_product_expr(p: Any, n: Any, z: Any, lo: Any, hi: Any) -> Any:
    """clamp(z + rshift(p, n), lo, hi) on int64 TE expressions; the result as int32."""
    from tvm import tirx
    one = tirx.const(1, I64)
    q = z + ((p + (one << (n - one))) >> n)
    return tirx.min(tirx.max(q, lo), hi).astype(I32)


def requant_expr(acc: Any, bias: Any, m: Any, n: Any, z: Any, lo: Any, hi: Any) -> Any:
    """clamp(z + rshift((acc + bias) * m, n), lo, hi): acc widened to int64 first."""
    return requantize_product_expr((acc.astype(I64) + bias) * m, n, z, lo, hi)


def signature(node: Node, in_shapes: list[tuple[int, ...]]) -> tuple:
    """What a node's compiled function depends on: op, input shapes (without the batch) and
    the attributes that shape the loops. Equal signatures share one function."""
    a = node.attrs
    extra: tuple = ()
    if node.op == "conv":
        extra = (tuple(node.arrays["weight"].shape), tuple(a["stride"]), tuple(a["pad"]),
                 a["groups"], a.get("mode", "int"))
    elif node.op in ("maxpool", "avgpool"):
        extra = (tuple(a["kernel"]), tuple(a["stride"]), tuple(a["pad"]))
    elif node.op == "lut":
        extra = (tuple(node.arrays["table"].shape),)
    return (node.op, tuple(tuple(s) for s in in_shapes), extra)


def _ph(shape: tuple, dtype: str, name: str):
    from tvm import te
    return te.placeholder(shape, dtype, name=name)


def _vecs(names: str, c: int) -> list:
    return [_ph((c,), I64, s) for s in names.split()]


def _inside(iy, ix, h: int, w: int):
    from tvm import tirx
    return tirx.all(iy >= 0, iy < h, ix >= 0, ix < w)


def _clamped(x, b, c, iy, ix, h: int, w: int):
    """x[b, c, iy, ix] with the indices clamped into range (the value is only used inside)."""
    from tvm import tirx
    return x[b, c, tirx.max(tirx.min(iy, h - 1), 0), tirx.max(tirx.min(ix, w - 1), 0)]


def _out_hw(h: int, w: int, k: tuple, s: tuple, pad: tuple) -> tuple[int, int]:
    t, b, l, r = pad
    return (h + t + b - k[0]) // s[0] + 1, (w + l + r - k[1]) // s[1] + 1


TILE = 4  # output channels per thread for one-group int convs (register tiling)


def out_tile(sig: tuple) -> int:
    """Output channels one thread computes: TILE for one-group int convs whose channel count it
    divides (every input value loaded feeds TILE accumulators), else 1."""
    if sig[0] == "conv":
        (wshape, _, _, groups, mode) = sig[2]
        if groups == 1 and mode == "int" and wshape[0] % TILE == 0:
            return TILE
    return 1


def _tiled_conv(sig: tuple):
    """One-group int conv whose reduction yields TILE channel sums at once (a tuple reducer):
    block "acc" has TILE outputs (n, O/TILE, Ho, Wo), the input tap is loaded once per step."""
    from tvm import te, tirx
    (_, ((c, h, w),), (wshape, stride, pad, _, _)) = sig
    o, cg, kh, kw = wshape
    ho, wo = _out_hw(h, w, (kh, kw), stride, pad)
    n = te.var("n")
    x = _ph((n, c, h, w), I32, "x")
    wt = _ph(wshape, I32, "w")
    zin = _ph((c,), I64, "zin")
    bias, mult, shift, z, lo, hi = _vecs("bias mult shift z lo hi", o)
    rc, ry, rx = (te.reduce_axis((0, cg), "rc"), te.reduce_axis((0, kh), "ry"),
                  te.reduce_axis((0, kw), "rx"))
    sums = te.comm_reducer(lambda a, b: [a[i] + b[i] for i in range(TILE)],
                           lambda *t: [tirx.const(0, d) for d in t], name="sums")

    def body(b, oo, y, xx):
        iy, ix = y * stride[0] + ry - pad[0], xx * stride[1] + rx - pad[2]
        v = te.if_then_else(_inside(iy, ix, h, w), _clamped(x, b, rc, iy, ix, h, w),
                            zin[rc].astype(I32))
        return sums([wt[oo * TILE + i, rc, ry, rx] * v for i in range(TILE)], axis=[rc, ry, rx])
    accs = te.compute((n, o // TILE, ho, wo), body, name="acc")

    def requant(b, oc, y, xx):
        q, r = oc // TILE, oc % TILE
        a = accs[TILE - 1][b, q, y, xx]
        for i in range(TILE - 2, -1, -1):
            a = tirx.Select(r == i, accs[i][b, q, y, xx], a)
        return requant_expr(a, bias[oc], mult[oc], shift[oc], z[oc], lo[oc], hi[oc])
    out = te.compute((n, o, ho, wo), requant, name="out")
    return te.create_prim_func([x, wt, zin, bias, mult, shift, z, lo, hi, out])


def conv_func(sig: tuple):
    """Conv / depthwise / dense (groups, strides, asymmetric padding), int or ternary mode."""
    if out_tile(sig) > 1:
        return _tiled_conv(sig)
    from tvm import te, tirx
    (_, ((c, h, w),), (wshape, stride, pad, groups, mode)) = sig
    o, cg, kh, kw = wshape
    ho, wo = _out_hw(h, w, (kh, kw), stride, pad)
    og = o // groups
    n = te.var("n")
    x = _ph((n, c, h, w), I32, "x")
    wt = _ph(wshape, I32, "w")
    zin = _ph((c,), I64, "zin")

    def tap(b, oc, y, xx, rc, ry, rx):
        ci = (oc // og) * cg + rc
        iy, ix = y * stride[0] + ry - pad[0], xx * stride[1] + rx - pad[2]
        return te.if_then_else(_inside(iy, ix, h, w), _clamped(x, b, ci, iy, ix, h, w),
                               zin[ci].astype(I32))

    def axes():
        return (te.reduce_axis((0, cg), "rc"), te.reduce_axis((0, kh), "ry"),
                te.reduce_axis((0, kw), "rx"))

    shape = (n, o, ho, wo)
    if mode == "ternary":
        bias, bias_n, mult, mult_n, shift, z, lo, hi = _vecs(
            "bias bias_n mult mult_n shift z lo hi", o)
        def signed_sum(sign: int, name: str):
            rc, ry, rx = axes()
            return te.compute(shape, lambda b, oc, y, xx: te.sum(
                tirx.Select(wt[oc, rc, ry, rx] == sign, tap(b, oc, y, xx, rc, ry, rx), 0),
                axis=[rc, ry, rx]), name=name)
        sums = [signed_sum(1, "acc_p"), signed_sum(-1, "acc_n")]
        acc_p, acc_n = sums
        out = te.compute(shape, lambda b, oc, y, xx: requantize_product_expr(
            (acc_p[b, oc, y, xx].astype(I64) + bias[oc]) * mult[oc]
            - (acc_n[b, oc, y, xx].astype(I64) + bias_n[oc]) * mult_n[oc],
            shift[oc], z[oc], lo[oc], hi[oc]), name="out")
        args = [x, wt, zin, bias, bias_n, mult, mult_n, shift, z, lo, hi, out]
    else:
        bias, mult, shift, z, lo, hi = _vecs("bias mult shift z lo hi", o)
        rc, ry, rx = axes()
        acc = te.compute(shape, lambda b, oc, y, xx: te.sum(
            wt[oc, rc, ry, rx] * tap(b, oc, y, xx, rc, ry, rx), axis=[rc, ry, rx]), name="acc")
        out = te.compute(shape, lambda b, oc, y, xx: requant_expr(
            acc[b, oc, y, xx], bias[oc], mult[oc], shift[oc], z[oc], lo[oc], hi[oc]), name="out")
        args = [x, wt, zin, bias, mult, shift, z, lo, hi, out]
    return te.create_prim_func(args)


def add_func(sig: tuple):
    from tvm import te
    (_, ((c, h, w), _), _) = sig
    n = te.var("n")
    x1, x2 = _ph((n, c, h, w), I32, "x1"), _ph((n, c, h, w), I32, "x2")
    z1, z2, ma, mb, shift, z, lo, hi = _vecs("z1 z2 ma mb shift z lo hi", c)
    out = te.compute((n, c, h, w), lambda b, ch, y, xx: requantize_product_expr(
        (x1[b, ch, y, xx].astype(I64) - z1[ch]) * ma[ch]
        + (x2[b, ch, y, xx].astype(I64) - z2[ch]) * mb[ch], shift[ch], z[ch], lo[ch], hi[ch]),
        name="out")
    return te.create_prim_func([x1, z1, x2, z2, ma, mb, shift, z, lo, hi, out])


def mul_func(sig: tuple):
    from tvm import te, tirx
    (_, ((c, h, w), _), _) = sig
    n = te.var("n")
    x1, x2 = _ph((n, c, h, w), I32, "x1"), _ph((n, c, 1, 1), I32, "x2")
    z1, z2, m, shift, z, lo, hi = _vecs("z1 z2 m shift z lo hi", c)
    zero = tirx.const(0, I64)
    out = te.compute((n, c, h, w), lambda b, ch, y, xx: requant_expr(
        (x1[b, ch, y, xx].astype(I64) - z1[ch]) * (x2[b, ch, 0, 0].astype(I64) - z2[ch]),
        zero, m[ch], shift[ch], z[ch], lo[ch], hi[ch]), name="out")
    return te.create_prim_func([x1, z1, x2, z2, m, shift, z, lo, hi, out])


def gap_func(sig: tuple):
    from tvm import te, tirx
    (_, ((c, h, w),), _) = sig
    n = te.var("n")
    x = _ph((n, c, h, w), I32, "x")
    zin, m, shift, z, lo, hi = _vecs("zin m shift z lo hi", c)
    ry, rx = te.reduce_axis((0, h), "ry"), te.reduce_axis((0, w), "rx")
    acc = te.compute((n, c, 1, 1), lambda b, ch, i, j: te.sum(
        x[b, ch, ry, rx].astype(I64) - zin[ch], axis=[ry, rx]), name="acc")
    zero = tirx.const(0, I64)
    out = te.compute((n, c, 1, 1), lambda b, ch, i, j: requant_expr(
        acc[b, ch, i, j], zero, m[ch], shift[ch], z[ch], lo[ch], hi[ch]), name="out")
    return te.create_prim_func([x, zin, m, shift, z, lo, hi, out])


def lut_func(sig: tuple):
    from tvm import te
    (_, ((c, h, w),), ((tc, tn),)) = sig
    n = te.var("n")
    x = _ph((n, c, h, w), I32, "x")
    table = _ph((tc, tn), I32, "table")
    out = te.compute((n, c, h, w), lambda b, ch, y, xx: table[ch, x[b, ch, y, xx]], name="out")
    return te.create_prim_func([x, table, out])


def pool_func(sig: tuple):
    """maxpool (padding = code 0) or avgpool (padding = the zero point, counted in the divisor,
    so padded cells add 0 to sum(q - z_in))."""
    from tvm import te, tirx
    (op, ((c, h, w),), (k, s, pad)) = sig
    ho, wo = _out_hw(h, w, k, s, pad)
    n = te.var("n")
    x = _ph((n, c, h, w), I32, "x")
    ry, rx = te.reduce_axis((0, k[0]), "ry"), te.reduce_axis((0, k[1]), "rx")
    shape = (n, c, ho, wo)

    def at(b, ch, y, xx):
        iy, ix = y * s[0] + ry - pad[0], xx * s[1] + rx - pad[2]
        return _inside(iy, ix, h, w), _clamped(x, b, ch, iy, ix, h, w)

    if op == "maxpool":
        def best(b, ch, y, xx):
            inside, v = at(b, ch, y, xx)
            return te.max(te.if_then_else(inside, v, 0), axis=[ry, rx])
        acc = te.compute(shape, best, name="acc")
        out = te.compute(shape, lambda *i: acc[i], name="out")
        return te.create_prim_func([x, out])
    zin, m, shift, z, lo, hi = _vecs("zin m shift z lo hi", c)

    def total(b, ch, y, xx):
        inside, v = at(b, ch, y, xx)
        return te.sum(te.if_then_else(inside, v.astype(I64) - zin[ch], tirx.const(0, I64)),
                      axis=[ry, rx])
    acc = te.compute(shape, total, name="acc")
    zero = tirx.const(0, I64)
    out = te.compute(shape, lambda b, ch, y, xx: requant_expr(
        acc[b, ch, y, xx], zero, m[ch], shift[ch], z[ch], lo[ch], hi[ch]), name="out")
    return te.create_prim_func([x, zin, m, shift, z, lo, hi, out])


BUILDERS = {"conv": conv_func, "add": add_func, "mul": mul_func, "gap": gap_func,
            "lut": lut_func, "maxpool": pool_func, "avgpool": pool_func}


def prim_func(sig: tuple, name: str):
    """The PrimFunc of a signature, named `name`."""
    return BUILDERS[sig[0]](sig).with_attr("global_symbol", name)
