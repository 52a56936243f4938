"""Bit packing of weight codes (docs/SEMANTICS.md): codes of output channel o are offset to unsigned
(Q + 2^(b-1) - 1; 1-bit: bit 1 = +1; ternary uses b = 2), b[o] bits each, LSB first,
every channel starting on a byte boundary. Convs marked `weight_coding: entropy` store the
same unsigned codes entropy-coded instead (quant/entropy.py) where that is smaller."""

from __future__ import annotations

import numpy as np

from .entropy import coded_widths, decode_rows, encode_rows
from .weights import (
    GROUP_MULT_BITS,
    code_bits,
    expand_groups,
    grouped_channels,
    grouped_rows,
    n_groups,
)


def row_bytes(k: int, bits: np.ndarray) -> np.ndarray:
    """Bytes of each channel's k packed codes at its bits (channels start on a byte)."""
    return (k * np.asarray(bits, dtype=np.int64) + 7) // 8


def mult_row_bytes(k: int, grouped: np.ndarray, group: int) -> np.ndarray:
    """Bytes of each channel's packed group multipliers (0 where not `grouped`)."""
    grouped = np.asarray(grouped, dtype=bool)
    if not grouped.any():
        return np.zeros(grouped.shape, dtype=np.int64)
    return row_bytes(n_groups(k, group), np.where(grouped, GROUP_MULT_BITS, 0))


def stored_row_bytes(k: int, bits: np.ndarray, group: int = 0) -> np.ndarray:
    """Bytes each channel of k weights at code `bits` will take in the file when exported with
    `group`: its packed codes and, where quant.weights.grouped_rows gives it multipliers,
    theirs (the planner's view; a written conv's own: `node_weight_bytes`)."""
    bits = np.asarray(bits, dtype=np.int64)
    return row_bytes(k, bits) + mult_row_bytes(k, grouped_rows(bits, k, group), group)


def node_weight_bytes(arrays: dict, attrs: dict) -> int:
    """Bytes of an IR conv's stored weights: codes at their bits, packed or entropy-coded
    (its streams), and group multipliers."""
    k = int(np.prod(arrays["weight"].shape[1:]))
    total = codes_bytes(*node_stored_codes(arrays, attrs), attrs.get("weight_coding", "packed"))
    if "weight_group" in attrs:
        total += int(mult_row_bytes(k, grouped_channels(arrays), attrs["weight_group"]).sum())
    return total


def packed_size(k: int, bits: np.ndarray) -> int:
    """Bytes taken by O channels of k codes with per-channel `bits`."""
    return int(row_bytes(k, bits).sum())


def _offset(b: int) -> int:
    return 0 if b == 1 else (1 << (b - 1)) - 1


def pack_unsigned(u: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Pack unsigned ints (O, K) at per-row `bits` (O,) (0: the row takes no bytes), LSB first,
    every row starting on a byte, into a 1-D uint8 array."""
    u = np.asarray(u, dtype=np.int64)
    bits = np.asarray(bits, dtype=np.int64)
    o, k = u.shape
    rb = row_bytes(k, bits)
    starts = np.concatenate([[0], np.cumsum(rb)[:-1]]).astype(np.int64)
    out = np.zeros(int(rb.sum()), dtype=np.uint8)
    for b in np.unique(bits[bits > 0]):
        b = int(b)
        rows = np.nonzero(bits == b)[0]
        v = u[rows]
        if np.any(v < 0) or np.any(v >= (1 << b)):
            raise ValueError(f"weight code out of range for {b} bits")
        planes = ((v[:, :, None] >> np.arange(b)) & 1).astype(np.uint8).reshape(len(rows), k * b)
        packed = np.packbits(planes, axis=1, bitorder="little")  # (rows, ceil(k*b/8))
        out[starts[rows][:, None] + np.arange(packed.shape[1])] = packed
    return out


def unpack_unsigned(packed: np.ndarray, bits: np.ndarray, k: int) -> np.ndarray:
    """Inverse of `pack_unsigned`: (O, K) int64 (rows of 0 bits: zeros)."""
    bits = np.asarray(bits, dtype=np.int64)
    rb = row_bytes(k, bits)
    if packed.ndim != 1 or packed.shape[0] != int(rb.sum()):
        raise ValueError(f"packed weights hold {packed.size} bytes, expected {int(rb.sum())}")
    starts = np.concatenate([[0], np.cumsum(rb)[:-1]]).astype(np.int64)
    out = np.zeros((bits.shape[0], k), dtype=np.int64)
    for b in np.unique(bits[bits > 0]):
        b = int(b)
        rows = np.nonzero(bits == b)[0]
        idx = starts[rows][:, None] + np.arange(int((k * b + 7) // 8))
        planes = np.unpackbits(packed[idx], axis=1, bitorder="little")[:, : k * b]
        out[rows] = (planes.reshape(len(rows), k, b).astype(np.int64) << np.arange(b)).sum(axis=2)
    return out


def to_unsigned(codes: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Signed codes (O, K) -> the unsigned values stored at per-channel `bits` (O,)."""
    codes = np.asarray(codes, dtype=np.int64)
    bits = np.asarray(bits, dtype=np.int64)
    offset = np.array([_offset(int(b)) for b in bits], dtype=np.int64)[:, None]
    if np.any((bits == 1)[:, None] & (codes == 0)):
        raise ValueError("weight code out of range for 1 bits")
    return np.where((bits == 1)[:, None], (codes > 0).astype(np.int64), codes + offset)


def from_unsigned(u: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Inverse of `to_unsigned`: (O, K) int16 codes."""
    bits = np.asarray(bits, dtype=np.int64)
    offset = np.array([_offset(int(b)) for b in bits], dtype=np.int64)[:, None]
    return np.where((bits == 1)[:, None], np.where(u > 0, 1, -1), u - offset).astype(np.int16)


def pack_codes(codes: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Pack int codes (O, K) at per-channel `bits` (O,) into a 1-D uint8 array."""
    return pack_unsigned(to_unsigned(codes, bits), bits)


def unpack_codes(packed: np.ndarray, bits: np.ndarray, k: int) -> np.ndarray:
    """Inverse of `pack_codes`: (O, K) int16 codes."""
    return from_unsigned(unpack_unsigned(packed, bits, k), bits)


def node_stored_codes(arrays: dict, attrs: dict) -> tuple[np.ndarray, np.ndarray]:
    """(the codes (O, K) an IR conv stores, before group multipliers; their bits (O,))."""
    cb = code_bits(arrays)
    q = np.asarray(arrays["weight"], dtype=np.int64).reshape(len(cb), -1)
    if "wmult" in arrays:
        q = stored_codes(q, arrays["wmult"], grouped_channels(arrays), attrs["weight_group"])
    return q, cb


def coded_if_smaller(codes: np.ndarray, bits: np.ndarray
                     ) -> tuple[np.ndarray, list[list[int]]] | None:
    """(streams, stream headers) of stored codes (O, K) at `bits` (O,), entropy-coded: None
    unless every width is a coded one (2..12) and coding is smaller than packing (a conv
    marked `weight_coding: entropy` is bit-packed then)."""
    if not coded_widths(bits).all():
        return None
    data, heads = encode_rows(to_unsigned(codes, bits), bits)
    return (data, heads) if data.size < packed_size(codes.shape[1], bits) else None


def codes_bytes(codes: np.ndarray, bits: np.ndarray, coding: str) -> int:
    """Bytes stored codes (O, K) at `bits` take in the file under `coding` (multipliers
    aside): what the writer stores, for the planner to fit its budget."""
    coded = coded_if_smaller(codes, bits) if coding == "entropy" else None
    return packed_size(codes.shape[1], bits) if coded is None else int(coded[0].size)


def decode_codes(data: np.ndarray, heads: list, bits: np.ndarray, k: int) -> np.ndarray:
    """Inverse of `coded_if_smaller`'s coding: (O, K) int16 codes (ValueError if malformed)."""
    return from_unsigned(decode_rows(data, heads, bits, k), bits)


def stored_codes(q: np.ndarray, mult: np.ndarray, grouped: np.ndarray, group: int
                 ) -> np.ndarray:
    """The codes a file stores for weights Q (O, K) with group multipliers (O, ng): Q / m on
    `grouped` rows, Q itself on the others."""
    q = np.asarray(q, dtype=np.int64)
    m = np.where(grouped[:, None], expand_groups(mult, q.shape[1], group), 1)
    if np.any(q % m):
        raise ValueError("grouped weights: a weight is not a multiple of its group's multiplier")
    return q // m


def pack_multipliers(mult: np.ndarray, grouped: np.ndarray) -> np.ndarray:
    """Group multipliers (O, ng) packed as m - 1 in GROUP_MULT_BITS on `grouped` rows."""
    return pack_unsigned(np.where(grouped[:, None], mult - 1, 0),
                         np.where(grouped, GROUP_MULT_BITS, 0))


def with_multipliers(codes: np.ndarray, packed_mult: np.ndarray, grouped: np.ndarray, k: int,
                     group: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored codes (O, K), unpacked or decoded, times their packed group multipliers:
    (Q (O, K) int16, mult (O, ng) int64, 1 on ungrouped rows)."""
    mult = unpack_unsigned(packed_mult, np.where(grouped, GROUP_MULT_BITS, 0),
                           n_groups(k, group)) + 1
    return (codes.astype(np.int64) * expand_groups(mult, k, group)).astype(np.int16), mult
