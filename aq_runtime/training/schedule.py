"""Schedules as pure functions of the global step: the learning rate (cosine or fixed), AQ's
iterative bit training (every 1/10 epoch is a mini-epoch; bits train only in every other one,
starting with a weights-only mini-epoch) and SWA averaging points (delay and frequency in
epochs)."""

from __future__ import annotations

import math

MINI_EPOCHS_PER_EPOCH = 10


def lr_at(step: int, total: int, base: float, fixed: bool) -> float:
    """Cosine decay from `base` to 0 over `total` steps, or `base` throughout."""
    if fixed or total <= 1:
        return base
    return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / total))


def mini_epoch(step: int, steps_per_epoch: int) -> int:
    per = max(1, steps_per_epoch // MINI_EPOCHS_PER_EPOCH)
    return step // per


def bits_trainable(step: int, steps_per_epoch: int, iterative: bool) -> bool:
    """Whether the precision parameters (beta) learn at this step."""
    if not iterative:
        return True
    return mini_epoch(step, steps_per_epoch) % 2 == 1


def swa_due(step: int, steps_per_epoch: int, delay: float, freq: float) -> bool:
    """True after the step that ends each SWA period (first one `delay` epochs in)."""
    start = int(round(delay * steps_per_epoch))
    every = max(1, int(round(freq * steps_per_epoch)))
    done = step + 1
    return done >= start and (done - start) % every == 0 and done > 0
