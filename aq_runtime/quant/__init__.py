"""The one definition of the integer semantics (docs/SEMANTICS.md): rounding, rshift,
requantization, fixed-point multipliers, code ranges per bit-width, weight quantization, bit
packing, the entropy coder of stored weight codes and the MicroNet cost model. numpy only;
imports nothing else of the package."""

from .activation import act_params_from_range
from .bits import ACT_BITS_MAX, WEIGHT_BITS_MAX, act_code_range, weight_code_range
from .packing import pack_codes, packed_size, unpack_codes
from .requant import (
    MAX_SHIFT,
    MULT_LIMIT,
    quantize_multiplier,
    quantize_multiplier_pair,
    requantize,
    requantize_product,
)
from .rounding import round_half_up, rshift
from .weights import quantize_ternary, quantize_weights

__all__ = [
    "round_half_up", "rshift", "requantize", "requantize_product", "quantize_multiplier_pair",
    "quantize_multiplier", "MAX_SHIFT", "MULT_LIMIT", "weight_code_range", "act_code_range",
    "WEIGHT_BITS_MAX", "ACT_BITS_MAX", "quantize_weights", "quantize_ternary",
    "act_params_from_range", "pack_codes", "unpack_codes", "packed_size",
]
