"""Training settings (`aq-train`'s options), saved as JSON in every checkpoint so that
`--resume` and `aq-export` need nothing but the checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .. import AqError
from .qgraph import STRATEGIES, QuantSetup


@dataclass
class TrainConfig:
    model: str = "digits-cnn"
    data: str = "digits"
    out: str = "runs/aq"
    strategy: str = "aq"
    weight_bits: int = 8
    act_bits: int = 8
    bits_trainable: bool = False
    iter_train: bool = False
    alpha: float = 1.0  # CE weight
    beta: float = 0.0  # metric weight
    gamma: float = 1.0  # scales the gradient of the ops term
    kd: float = 1.0  # KD MSE weight (teacher = the float model)
    kd_only: bool = False
    kd_blocks: float = 0.0  # weight of the block-output distillation (relative MSE per block)
    metric_target: float | None = None  # the metric term pulls only while the score is above
    lr: float = 1e-3
    lr_bits: float = 1e-3
    lr_ranges: float | None = None  # ranges (weight and activation alpha); None: lr
    lr_fixed: bool = False
    max_epoch: float = 1.0
    batch_size: int = 64
    accumulate: int = 1  # micro-batches per step per process (gradients summed, then averaged)
    epoch_size: int = 256  # samples per epoch for augmented image sets
    color_jitter: float = 0.0  # augmented sets: brightness/contrast/saturation jitter
    grayscale: float = 0.0  # augmented sets: probability of a grey view
    mixup: float = 0.0  # --kd-only image sets: crops blended in pairs, weight ~ Beta(m, m)
    synthetic: int = 0  # --kd-only image sets: + N images made from BatchNorm statistics
    finetune: bool = False
    swa_delay: float = 0.2
    swa_freq: float = 0.1
    ckpt: str | None = None  # start from this checkpoint's quantized model
    float_ckpt: str | None = None  # float state dict of the architecture (else built-in)
    init_thresholds: str | None = None  # JSON {tensor: [lo, hi] or [[lo...], [hi...]]}
    init_bits: str | None = None  # starting bits: an int, a bits JSON, or "auto"
    init_aqz: str | None = None  # start from this post-training export (codes, ranges, bits)
    calib_images: int = 256
    min_bits: int = 1
    max_bits: int = 8
    bias_bits: int = 32
    ttq_threshold: float = 0.05
    ttq_skip_depthwise: bool = True
    step: int = 1  # progressive: bits removed per move
    lam: float = 0.25  # progressive: fraction of the candidate layers lowered per move
    interval: int = 20  # progressive: finetune steps between moves
    ratio: float = 0.5  # progressive: target cost ratio vs the 8-bit start
    input_size: int | None = None
    seed: int = 0
    max_steps: int | None = None  # stop (and save) after this many steps in total
    eval_backend: str = "auto"

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise AqError(f"unknown strategy {self.strategy!r} ({', '.join(STRATEGIES)})")
        if not 1 <= self.min_bits <= self.max_bits <= 16:
            raise AqError("bits must satisfy 1 <= --min-bits <= --max-bits <= 16")
        if not 1 <= self.act_bits <= 8 or not 1 <= self.weight_bits <= 16:
            raise AqError("--act-bits must be in 1..8 and --weight-bits in 1..16")
        if self.batch_size < 1 or self.max_epoch <= 0 or self.accumulate < 1:
            raise AqError("--batch-size, --max-epoch and --accumulate must be positive")
        if not 2 <= self.bias_bits <= 32:
            raise AqError("--bias-bits must be in 2..32")
        if not 0 <= self.color_jitter < 1 or not 0 <= self.grayscale <= 1:
            raise AqError("--color-jitter must be in [0, 1) and --grayscale in [0, 1]")
        if self.mixup < 0 or self.synthetic < 0:
            raise AqError("--mixup and --synthetic must not be negative")
        if (self.mixup or self.synthetic) and (not self.kd_only or self.data == "digits"):
            raise AqError("--mixup and --synthetic make unlabelled views for distillation: "
                          "they need --kd-only and an image set ('photos' or a folder)")
        if self.kd_blocks < 0 or (self.metric_target is not None and self.metric_target <= 0):
            raise AqError("--kd-blocks must not be negative and --metric-target must be "
                          "positive")
        if self.finetune and not self.ckpt:
            raise AqError("--finetune needs --ckpt (the model to finetune)")
        if self.init_aqz and (self.init_bits or self.init_thresholds or self.ckpt):
            raise AqError("--init-aqz is the whole start: no --init-bits, --init-thresholds "
                          "or --ckpt with it")

    def quant_setup(self) -> QuantSetup:
        return QuantSetup(self.strategy, self.weight_bits, self.act_bits, self.min_bits,
                          self.max_bits, self.bias_bits, self.ttq_threshold,
                          self.ttq_skip_depthwise)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
