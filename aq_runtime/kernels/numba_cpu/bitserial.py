"""Bit-serial pointwise convolution for layers whose weight codes are small (|w| <= 3: 1-, 2-
and 3-bit channels): weights offset to unsigned u = w + 2^(B-1) < 2^B and activation codes are
cut into bit-planes packed 64 channels to a word, so that

    sum_c w[o,c] x[c,p] = sum_{i<A, j<B} 2^(i+j) popcount(U_j[o] & X_i[p]) - 2^(B-1) sum_c x[c,p]

(A = bits of the largest activation code present, B = 2 or 3): AND + popcount on 64 channels
at a time instead of 64 multiplies. Exact integer arithmetic; the requantization is
quant.requant's `requant_one`, compiled. Worth it when A * B is small against the int8 path;
numba_cpu times both per layer and keeps the faster (kernels/choice.py)."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ...quant.requant import requant_one

_requant = njit(inline="always", cache=True)(requant_one)
MAX_CODE = 3  # |w| <= 3: B <= 3 weight planes


@intrinsic
def popcount(typingctx, x):
    """llvm.ctpop on a uint64 (one POPCNT instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(64)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.ctpop.i64")
        return builder.call(fn, args)
    return sig, codegen


def eligible(w: np.ndarray) -> bool:
    return w.size > 0 and int(np.abs(w).max()) <= MAX_CODE


def weight_planes(w: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes (O, C) -> (U (O, B, W) uint64 bit-planes of w + 2^(B-1), offset 2^(B-1))."""
    w = np.asarray(w, np.int64)
    b = 2 if np.abs(w).max() <= 1 else 3
    off = 1 << (b - 1)
    u = (w + off).astype(np.uint64)
    o, c = w.shape
    words = (c + 63) // 64
    planes = np.zeros((o, b, words), np.uint64)
    for j in range(b):
        bits = ((u >> np.uint64(j)) & np.uint64(1)).astype(np.uint64)
        for k in range(words):
            chunk = bits[:, k * 64:(k + 1) * 64]
            planes[:, j, k] = (chunk << np.arange(chunk.shape[1], dtype=np.uint64)).sum(
                axis=1, dtype=np.uint64)
    return planes, off


@njit(parallel=True, cache=True)
def _act_planes(x, nbits, planes, sums):
    """x (N, C, P) codes -> planes (N, P, nbits, W) uint64 and sums (N, P) = sum_c x."""
    nb, c, p = x.shape
    for t in prange(nb * p):
        b = t // p
        q = t % p
        s = 0
        for i in range(nbits):
            for k in range(planes.shape[3]):
                planes[b, q, i, k] = 0
        for ch in range(c):
            v = x[b, ch, q]
            s += v
            word = ch >> 6
            bit = np.uint64(1) << np.uint64(ch & 63)
            for i in range(nbits):
                if (v >> i) & 1:
                    planes[b, q, i, word] |= bit
        sums[b, q] = s


@njit(parallel=True, cache=True)
def _bitserial(xpl, sums, wpl, off, bias, mult, shift, z, lo, hi, out):
    """out[n, o, p] = requant(sum_{i,j} 2^(i+j) popcount(W_j[o] & X_i[n,p]) - off * sums)."""
    nb, p, nbits, words = xpl.shape
    o, wb = wpl.shape[0], wpl.shape[1]
    for t in prange(nb * o):
        b = t // o
        oc = t % o
        for q in range(p):
            s = np.int64(0)
            for j in range(wb):
                for i in range(nbits):
                    c = np.uint64(0)
                    for k in range(words):
                        c += popcount(wpl[oc, j, k] & xpl[b, q, i, k])
                    s += np.int64(c) << (i + j)
            out[b, oc, q] = _requant(s - off * sums[b, q], bias[oc], mult[oc], shift[oc], z[oc],
                                     lo[oc], hi[oc])


def pointwise(x: np.ndarray, planes: np.ndarray, off: int, bias, mult, shift, z, lo, hi
              ) -> np.ndarray:
    """x (N, C, P) int32 codes (>= 0) -> (N, O, P) int32 requantized codes."""
    nb, c, p = x.shape
    top = int(x.max()) if x.size else 0
    nbits = max(1, top.bit_length())
    xpl = np.empty((nb, p, nbits, planes.shape[2]), np.uint64)
    sums = np.empty((nb, p), np.int64)
    _act_planes(x, nbits, xpl, sums)
    out = np.empty((nb, planes.shape[0], p), np.int32)
    _bitserial(xpl, sums, planes, np.int64(off), bias, mult, shift, z, lo, hi, out)
    return out
