"""Bit packing of weight codes (DESIGN §3): codes of output channel o are offset to unsigned
(Q + 2^(b-1) - 1; 1-bit: bit 1 = +1; ternary uses b = 2), b[o] bits each, LSB first,
every channel starting on a byte boundary."""

from __future__ import annotations

import numpy as np


def row_bytes(k: int, bits: np.ndarray) -> np.ndarray:
    """Bytes of each channel's k packed codes at its bits (channels start on a byte)."""
    return (k * np.asarray(bits, dtype=np.int64) + 7) // 8


def packed_size(k: int, bits: np.ndarray) -> int:
    """Bytes taken by O channels of k codes with per-channel `bits`."""
    return int(row_bytes(k, bits).sum())


def _offset(b: int) -> int:
    return 0 if b == 1 else (1 << (b - 1)) - 1


def pack_codes(codes: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Pack int codes (O, K) at per-channel `bits` (O,) into a 1-D uint8 array."""
    codes = np.asarray(codes, dtype=np.int64)
    bits = np.asarray(bits, dtype=np.int64)
    o, k = codes.shape
    rb = row_bytes(k, bits)
    starts = np.concatenate([[0], np.cumsum(rb)[:-1]]).astype(np.int64)
    out = np.zeros(int(rb.sum()), dtype=np.uint8)
    for b in np.unique(bits):
        b = int(b)
        rows = np.nonzero(bits == b)[0]
        u = (codes[rows] > 0).astype(np.int64) if b == 1 else codes[rows] + _offset(b)
        if np.any(u < 0) or np.any(u >= (1 << b)):
            raise ValueError(f"weight code out of range for {b} bits")
        planes = ((u[:, :, None] >> np.arange(b)) & 1).astype(np.uint8).reshape(len(rows), k * b)
        packed = np.packbits(planes, axis=1, bitorder="little")  # (rows, ceil(k*b/8))
        idx = starts[rows][:, None] + np.arange(packed.shape[1])
        out[idx] = packed
    return out


def unpack_codes(packed: np.ndarray, bits: np.ndarray, k: int) -> np.ndarray:
    """Inverse of `pack_codes`: (O, K) int16 codes (int32 if any channel has > 16 bits)."""
    bits = np.asarray(bits, dtype=np.int64)
    rb = row_bytes(k, bits)
    if packed.ndim != 1 or packed.shape[0] != int(rb.sum()):
        raise ValueError(f"packed weights hold {packed.size} bytes, expected {int(rb.sum())}")
    starts = np.concatenate([[0], np.cumsum(rb)[:-1]]).astype(np.int64)
    out = np.zeros((bits.shape[0], k), dtype=np.int16)
    for b in np.unique(bits):
        b = int(b)
        rows = np.nonzero(bits == b)[0]
        idx = starts[rows][:, None] + np.arange(int((k * b + 7) // 8))
        planes = np.unpackbits(packed[idx], axis=1, bitorder="little")[:, : k * b]
        u = (planes.reshape(len(rows), k, b).astype(np.int64) << np.arange(b)).sum(axis=2)
        out[rows] = np.where(u > 0, 1, -1) if b == 1 else u - _offset(b)
    return out
