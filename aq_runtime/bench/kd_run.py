"""The Lite0 distillation run the benchmarks share (benchmarks/train_lite0_kd.py, and the KD
rows of benchmarks/lowbit_lite0.py): its training configuration, and training timed across
resumes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..training.config import TrainConfig
from ..training.loop import train


def kd_config(out: Path, epochs: float = 8.0, lr: float = 2e-5, beta: float = 2.0,
              lr_bits: float = 1e-2, kd_blocks: float = 0.0, metric_target: float | None = None,
              init_aqz: str | None = None, **more) -> TrainConfig:
    """The benchmark's run: KD-only AQ on augmented crops of the calibration photos, batch 8,
    128 crops per epoch; from `init_aqz` the bits are frozen and there is no metric term.
    `more`: further TrainConfig fields (e.g. color_jitter, grayscale, epoch_size)."""
    cfg = TrainConfig(model="efficientnet-lite0", data="photos", kd_only=True, alpha=0.0, kd=1.0,
                      strategy="aq", init_bits="auto", weight_bits=8, act_bits=8, max_bits=16,
                      min_bits=2, bits_trainable=True, iter_train=True, beta=beta, gamma=0.7,
                      lr=lr, lr_bits=lr_bits, batch_size=8, epoch_size=128,
                      max_epoch=epochs, eval_backend="numba", out=str(out),
                      kd_blocks=kd_blocks, metric_target=metric_target)
    for k, v in more.items():
        if not hasattr(cfg, k):
            raise TypeError(f"no TrainConfig field {k}")
        setattr(cfg, k, v)
    if init_aqz:
        cfg.init_aqz, cfg.init_bits = str(init_aqz), None
        cfg.bits_trainable, cfg.iter_train, cfg.beta = False, False, 0.0
    return cfg


def timed_train(cfg: TrainConfig, resume: bool) -> tuple[int, float]:
    """`train(cfg)` with its wall time summed over resumes in <cfg.out>/seconds.json:
    (exit status, seconds so far). A fresh run starts the count again."""
    clock = Path(cfg.out) / "seconds.json"
    spent = json.loads(clock.read_text())["seconds"] if resume and clock.exists() else 0.0
    t0 = time.time()
    code = train(cfg, resume=resume, progress=True)
    seconds = spent + time.time() - t0
    clock.write_text(json.dumps({"seconds": seconds}))
    return code, seconds
