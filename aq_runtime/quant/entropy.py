"""Entropy coding of weight codes (`--weight-coding entropy`): an adaptive rANS coder (Duda
2013; byte-wise renormalisation as in F. Giesen's ryg_rans) whose symbol frequencies are
learned from the symbols already coded (no table in the file), and the code-length estimate
the bit planner prices channels by.

A conv's channels are coded in one stream per code width b (2..12): the symbols are the stored
codes offset to unsigned (as quant.packing packs them), the channels of that width in index
order, row after row. The model starts every symbol of the stream's range at count 1, adds 2
to a symbol's count once it is coded (the Krichevsky-Trofimov estimator, doubled), and turns
the counts into frequencies summing to 2^PROB_BITS before symbols REFRESH_FIRST, 2x that, ...,
then every REFRESH_MAX symbols (`model_table`). Against a static table stored beside the
stream it pays about (A/2) log2(N) bits to learn an alphabet of A symbols from N coded ones and
stores no table: on Lite0's codes at half the bytes of 8 bits, 18 KB less (0.8%). Decoding gives back exactly the integers that packing would
have stored; the kernels and the reference see the same weights either way, only the file is
smaller."""

from __future__ import annotations

import numpy as np
from numba import njit

PROB_BITS = 16  # the model's frequencies sum to 2^16
CODED_BITS = (2, 12)  # code widths that are entropy-coded; others stay bit-packed
REFRESH_FIRST, REFRESH_MAX = 16, 1024  # the model's table is rebuilt before these symbols
_L = 1 << 23  # the coder's state lives in [2^23, 2^31)


@njit(cache=True)
def _table(cnt: np.ndarray, f: np.ndarray, cum: np.ndarray) -> None:  # pragma: no cover
    """Frequencies from counts: f = 1 + cnt * (2^P - n) // sum(cnt), the remainder to the
    most counted symbol (the first of equals); cum their running sums."""
    n = len(cnt)
    room = (1 << PROB_BITS) - n
    tot = 0
    for i in range(n):
        tot += cnt[i]
    s = 0
    best = 0
    for i in range(n):
        f[i] = 1 + (cnt[i] * room) // tot
        s += f[i]
        if cnt[i] > cnt[best]:
            best = i
    f[best] += (1 << PROB_BITS) - s
    cum[0] = 0
    for i in range(n):
        cum[i + 1] = cum[i] + f[i]


@njit(cache=True)
def _new_model(ns: int) -> tuple:  # pragma: no cover (numba)
    """The model before any symbol: counts 1, their table and its running sums."""
    cnt = np.ones(ns, dtype=np.int64)
    f = np.empty(ns, dtype=np.int64)
    cum = np.empty(ns + 1, dtype=np.int64)
    _table(cnt, f, cum)
    return cnt, f, cum


@njit(cache=True)
def _refresh(t: int, nxt: int, cnt: np.ndarray, f: np.ndarray, cum: np.ndarray
             ) -> int:  # pragma: no cover (numba)
    """Before symbol t: rebuild the table if t is the next refresh point; the next one."""
    if t != nxt:
        return nxt
    _table(cnt, f, cum)
    return min(2 * nxt, nxt + REFRESH_MAX)


@njit(cache=True)
def _encode(sym: np.ndarray, ns: int) -> np.ndarray:  # pragma: no cover (numba)
    n = len(sym)
    cnt, f, cum = _new_model(ns)
    fs = np.empty(n, dtype=np.int64)
    cs = np.empty(n, dtype=np.int64)
    nxt = REFRESH_FIRST
    for t in range(n):  # the model's (frequency, start) of every symbol, forwards
        nxt = _refresh(t, nxt, cnt, f, cum)
        s = sym[t]
        fs[t] = f[s]
        cs[t] = cum[s]
        cnt[s] += 2
    buf = np.empty(2 * n + 8, dtype=np.uint8)  # then rANS, backwards
    pos = len(buf)
    x = np.int64(_L)
    for t in range(n - 1, -1, -1):
        x_max = ((_L >> PROB_BITS) << 8) * fs[t]
        while x >= x_max:
            pos -= 1
            buf[pos] = x & 0xFF
            x >>= 8
        x = ((x // fs[t]) << PROB_BITS) + (x % fs[t]) + cs[t]
    for j in range(4):
        buf[pos - 4 + j] = (x >> (8 * j)) & 0xFF
    return buf[pos - 4:].copy()


@njit(cache=True)
def _decode(data: np.ndarray, ns: int, n: int, out: np.ndarray
            ) -> int:  # pragma: no cover (numba)
    """Decodes n symbols into out; 0 if the stream was whole and exactly consumed, else -1."""
    if len(data) < 4:
        return -1
    cnt, f, cum = _new_model(ns)
    nxt = REFRESH_FIRST
    m = 1 << PROB_BITS
    x = np.int64(data[0]) | (np.int64(data[1]) << 8) | (np.int64(data[2]) << 16) | (
        np.int64(data[3]) << 24)
    p = 4
    for t in range(n):
        nxt = _refresh(t, nxt, cnt, f, cum)
        r = x & (m - 1)
        lo, hi = 0, ns  # the symbol s with cum[s] <= r < cum[s + 1]
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if cum[mid] <= r:
                lo = mid
            else:
                hi = mid
        s = lo
        x = f[s] * (x >> PROB_BITS) + r - cum[s]
        while x < _L:
            if p >= len(data):
                return -1
            x = (x << 8) | np.int64(data[p])
            p += 1
        out[t] = s
        cnt[s] += 2
    return 0 if (p == len(data) and x == _L) else -1


def _check_alphabet(ns: int) -> None:
    if not 1 <= ns <= 1 << CODED_BITS[1]:
        raise ValueError(f"rans: {ns} symbols, expected 1..{1 << CODED_BITS[1]}")


def model_table(counts: np.ndarray) -> np.ndarray:
    """The adaptive model's frequencies (int64, summing to 2^PROB_BITS) for symbol counts."""
    cnt = np.ascontiguousarray(counts, dtype=np.int64)
    _check_alphabet(len(cnt))
    if cnt.min() < 1:
        raise ValueError("rans: model counts start at 1")
    f = np.empty(len(cnt), dtype=np.int64)
    _table(cnt, f, np.empty(len(cnt) + 1, dtype=np.int64))
    return f


def rans_encode(symbols: np.ndarray, ns: int) -> np.ndarray:
    """The byte stream (uint8) of `symbols` (ints in [0, ns)) under the adaptive model."""
    sym = np.ascontiguousarray(symbols, dtype=np.int64).ravel()
    _check_alphabet(ns)
    if len(sym) and (sym.min() < 0 or sym.max() >= ns):
        raise ValueError(f"rans: a symbol outside 0..{ns - 1}")
    return _encode(sym, ns)


def rans_decode(data: np.ndarray, ns: int, n: int) -> np.ndarray:
    """Inverse of `rans_encode`: n symbols (int64); ValueError unless `data` decodes to
    exactly n symbols with nothing left over."""
    _check_alphabet(ns)
    out = np.empty(n, dtype=np.int64)
    if _decode(np.ascontiguousarray(data, dtype=np.uint8), ns, n, out) != 0:
        raise ValueError("rans: the coded weights are corrupt or truncated")
    return out


def coded_widths(code_bits: np.ndarray) -> np.ndarray:
    """Which channels, by their code bits, are entropy-coded."""
    b = np.asarray(code_bits, dtype=np.int64)
    return (b >= CODED_BITS[0]) & (b <= CODED_BITS[1])


def code_lengths(codes: np.ndarray) -> np.ndarray:
    """Per row of `codes` (O, K), its ideal coded length in bits under the histogram of all the
    rows together: about what a stream of these rows takes (the planner's price; the adaptive
    model adds its learning cost, a few bits per symbol of the range)."""
    _, inv = np.unique(np.asarray(codes), return_inverse=True)
    cnt = np.bincount(inv.ravel())
    nl = -np.log2(cnt / cnt.sum())
    return nl[inv.reshape(codes.shape)].sum(axis=1)


def encode_rows(u: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """Entropy-code unsigned codes (O, K) at per-row `bits` (all coded widths): one stream per
    width. Returns (streams, one [bits, first symbol, symbols, stream bytes] per stream, widths
    ascending)."""
    u = np.asarray(u, dtype=np.int64)
    bits = np.asarray(bits, dtype=np.int64)
    if not coded_widths(bits).all():
        raise ValueError("entropy coding: a channel's code bits lie outside "
                         f"{CODED_BITS[0]}..{CODED_BITS[1]}")
    streams, heads = [], []
    for b in np.unique(bits):
        sym = u[bits == b].ravel()
        lo = int(sym.min())
        ns = int(sym.max()) - lo + 1
        data = rans_encode(sym - lo, ns)
        streams.append(data)
        heads.append([int(b), lo, ns, len(data)])
    return np.concatenate(streams), heads


def decode_rows(data: np.ndarray, heads: list, bits: np.ndarray, k: int) -> np.ndarray:
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
    if sum(h[3] for h in heads) != len(data):
        raise ValueError("weight_streams: stream bytes differ from the coded array's")
    do = 0
    for (b, lo, ns, nb), w in zip(heads, widths):
        if b != w or not coded_widths(b) or ns < 1 or lo + ns > (1 << b):
            raise ValueError(f"weight_streams: stream for {b} bits, symbols {lo}..{lo + ns}")
        rows = bits == b
        sym = rans_decode(data[do:do + nb], ns, int(rows.sum()) * k)
        out[rows] = (sym + lo).reshape(-1, k)
        do += nb
    return out
