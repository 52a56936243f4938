"""Entropy coding of weight codes (`--weight-coding entropy`): a static rANS coder (Duda 2013;
byte-wise renormalisation as in F. Giesen's ryg_rans) whose symbol frequencies are stored
beside the stream, and the code-length estimate the bit planner prices channels by.

A conv's channels are coded in one stream per code width b (2..8): the symbols are the stored
codes offset to unsigned (as quant.packing packs them), the channels of that width in index
order, row after row. Decoding gives back exactly the integers that packing would have stored;
the kernels and the reference see the same weights either way, only the file is smaller."""

from __future__ import annotations

import numpy as np
from numba import njit

PROB_BITS = 14  # symbol frequencies sum to 2^14
CODED_BITS = (2, 8)  # code widths that are entropy-coded; others stay bit-packed
_L = 1 << 23  # the coder's state lives in [2^23, 2^31)


def quantized_frequencies(counts: np.ndarray) -> np.ndarray:
    """Symbol counts -> frequencies summing to 2^PROB_BITS, every counted symbol at least 1
    (rounded in proportion, the rounding's excess taken from the most frequent symbols)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    m = 1 << PROB_BITS
    if total == 0 or int((counts > 0).sum()) > m:
        raise ValueError("frequencies: no symbols, or more distinct symbols than 2^PROB_BITS")
    f = np.where(counts > 0, np.maximum(1, (counts * m * 2 + total) // (2 * total)), 0)
    order = np.argsort(-counts, kind="stable")
    diff = m - int(f.sum())
    i = 0
    while diff != 0:
        s = order[i % len(order)]
        if diff > 0:
            f[s] += diff
            diff = 0
        elif f[s] > 1:
            take = min(f[s] - 1, -diff)
            f[s] -= take
            diff += take
        i += 1
    return f.astype(np.int64)


@njit(cache=True)
def _encode(sym: np.ndarray, freq: np.ndarray) -> np.ndarray:  # pragma: no cover (numba)
    cum = np.zeros(len(freq) + 1, dtype=np.int64)
    for s in range(len(freq)):
        cum[s + 1] = cum[s] + freq[s]
    buf = np.empty(2 * len(sym) + 8, dtype=np.uint8)
    pos = len(buf)
    x = np.int64(_L)
    for i in range(len(sym) - 1, -1, -1):
        s = sym[i]
        f = freq[s]
        x_max = ((_L >> PROB_BITS) << 8) * f
        while x >= x_max:
            pos -= 1
            buf[pos] = x & 0xFF
            x >>= 8
        x = ((x // f) << PROB_BITS) + (x % f) + cum[s]
    for j in range(4):
        buf[pos - 4 + j] = (x >> (8 * j)) & 0xFF
    return buf[pos - 4:].copy()


@njit(cache=True)
def _decode(data: np.ndarray, freq: np.ndarray, n: int, out: np.ndarray
            ) -> int:  # pragma: no cover (numba)
    """Decodes n symbols into out; 0 if the stream was whole and exactly consumed, else -1."""
    m = 1 << PROB_BITS
    slot = np.empty(m, dtype=np.int64)
    cum = np.zeros(len(freq) + 1, dtype=np.int64)
    for s in range(len(freq)):
        cum[s + 1] = cum[s] + freq[s]
        for j in range(cum[s], cum[s + 1]):
            slot[j] = s
    if len(data) < 4:
        return -1
    x = np.int64(data[0]) | (np.int64(data[1]) << 8) | (np.int64(data[2]) << 16) | (
        np.int64(data[3]) << 24)
    p = 4
    for i in range(n):
        r = x & (m - 1)
        s = slot[r]
        x = freq[s] * (x >> PROB_BITS) + r - cum[s]
        while x < _L:
            if p >= len(data):
                return -1
            x = (x << 8) | np.int64(data[p])
            p += 1
        out[i] = s
    return 0 if (p == len(data) and x == _L) else -1


def rans_encode(symbols: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """The byte stream (uint8) of `symbols` (ints in [0, len(freq))) under `freq`."""
    sym = np.ascontiguousarray(symbols, dtype=np.int64).ravel()
    freq = np.ascontiguousarray(freq, dtype=np.int64)
    if len(sym) and (sym.min() < 0 or sym.max() >= len(freq) or np.any(freq[sym] <= 0)):
        raise ValueError("rans: a symbol without a frequency")
    return _encode(sym, freq)


def rans_decode(data: np.ndarray, freq: np.ndarray, n: int) -> np.ndarray:
    """Inverse of `rans_encode`: n symbols (int64); ValueError unless `freq` is a valid table
    and `data` decodes to exactly n symbols with nothing left over."""
    freq = np.ascontiguousarray(freq, dtype=np.int64)
    if freq.ndim != 1 or np.any(freq < 0) or int(freq.sum()) != 1 << PROB_BITS:
        raise ValueError(f"rans: frequencies must be >= 0 and sum to 2^{PROB_BITS}")
    out = np.empty(n, dtype=np.int64)
    if _decode(np.ascontiguousarray(data, dtype=np.uint8), freq, n, out) != 0:
        raise ValueError("rans: the coded weights are corrupt or truncated")
    return out


def coded_widths(code_bits: np.ndarray) -> np.ndarray:
    """Which channels, by their code bits, are entropy-coded."""
    b = np.asarray(code_bits, dtype=np.int64)
    return (b >= CODED_BITS[0]) & (b <= CODED_BITS[1])


def code_lengths(codes: np.ndarray) -> np.ndarray:
    """Per row of `codes` (O, K), its ideal coded length in bits under the histogram of all the
    rows together: what a stream of these rows would take (the planner's price)."""
    _, inv = np.unique(np.asarray(codes), return_inverse=True)
    cnt = np.bincount(inv.ravel())
    nl = -np.log2(cnt / cnt.sum())
    return nl[inv.reshape(codes.shape)].sum(axis=1)


def encode_rows(u: np.ndarray, bits: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Entropy-code unsigned codes (O, K) at per-row `bits` (all coded widths): one stream per
    width. Returns (streams, frequencies uint16, one [bits, first symbol, symbols, stream
    bytes] per stream, widths ascending)."""
    u = np.asarray(u, dtype=np.int64)
    bits = np.asarray(bits, dtype=np.int64)
    if not coded_widths(bits).all():
        raise ValueError("entropy coding: a channel's code bits lie outside 2..8")
    streams, freqs, heads = [], [], []
    for b in np.unique(bits):
        sym = u[bits == b].ravel()
        lo = int(sym.min())
        f = quantized_frequencies(np.bincount(sym - lo))
        data = rans_encode(sym - lo, f)
        streams.append(data)
        freqs.append(f)
        heads.append([int(b), lo, len(f), len(data)])
    return (np.concatenate(streams), np.concatenate(freqs).astype(np.uint16), heads)


def decode_rows(data: np.ndarray, freqs: np.ndarray, heads: list, bits: np.ndarray, k: int
                ) -> np.ndarray:
    """Inverse of `encode_rows`: (O, K) int64 unsigned codes; ValueError on any mismatch
    between the stream headers, the channels' bits and the data."""
    bits = np.asarray(bits, dtype=np.int64)
    out = np.zeros((len(bits), k), dtype=np.int64)
    widths = [int(b) for b in np.unique(bits)]
    if (not isinstance(heads, list) or len(heads) != len(widths)
            or not all(isinstance(h, list) and len(h) == 4
                       and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                               for v in h) for h in heads)):
        raise ValueError("weight_streams: expected one [bits, first, symbols, bytes] per width")
    if sum(h[2] for h in heads) != len(freqs) or sum(h[3] for h in heads) != len(data):
        raise ValueError("weight_streams: sizes differ from the coded arrays")
    fo = do = 0
    for (b, lo, ns, nb), w in zip(heads, widths):
        if b != w or lo + ns > (1 << b):
            raise ValueError(f"weight_streams: stream for {b} bits, symbols {lo}..{lo + ns}")
        rows = bits == b
        sym = rans_decode(data[do:do + nb], freqs[fo:fo + ns], int(rows.sum()) * k)
        out[rows] = (sym + lo).reshape(-1, k)
        fo += ns
        do += nb
    return out
