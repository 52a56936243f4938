"""aq-train: quantization-aware training (AQ, TTQ, progressive search, uniform QAT), resume,
evaluation (`--eval`). Under torchrun it runs data-parallel (`python -m aq_runtime.cli.train`)."""

from __future__ import annotations

import argparse
import sys

from .common import require, run_cli


def _parser() -> argparse.ArgumentParser:
    from ..training.config import TrainConfig
    d = TrainConfig()
    ap = argparse.ArgumentParser(prog="aq-train", description=__doc__)
    a = ap.add_argument
    a("--model", default=d.model, help="digits-cnn, efficientnet-lite0, efficientnet-b0")
    a("--data", default=d.data, help="digits, photos (bundled, distillation only) or a folder "
                                     "(one subfolder per class, or any images with --kd-only)")
    a("--out", default=d.out, help="run folder (checkpoints, logs, quant_info.json, bits.png)")
    a("--strategy", default=d.strategy, choices=["aq", "ttq", "progressive", "uniform"])
    a("--weight-bits", type=int, default=d.weight_bits, help="n of the weights (start bits)")
    a("--act-bits", type=int, default=d.act_bits, help="n of the activations (start bits)")
    a("--bits-trainable", action="store_true", help="AQ: learn per-channel bits (beta)")
    a("--iter-train", action="store_true", help="AQ: bits learn only in every other 1/10 epoch")
    a("--alpha", type=float, default=d.alpha, help="weight of the cross-entropy loss")
    a("--beta", type=float, default=d.beta, help="weight of the MicroNet metric in the loss")
    a("--gamma", type=float, default=d.gamma, help="scales the gradient of the #ops term")
    a("--kd", type=float, default=d.kd, help="weight of the KD MSE to the float logits (0: off)")
    a("--kd-only", action="store_true", help="no labels: distill from the float model only")
    a("--kd-blocks", type=float, default=d.kd_blocks,
      help="weight of the distillation of every block's output (relative MSE to the float "
           "model's, averaged over blocks; 0: logits only)")
    a("--metric-target", type=float, default=d.metric_target, metavar="SCORE",
      help="the metric term (--beta) pulls only while the MicroNet score is above SCORE "
           "(default: down without end)")
    a("--lr", type=float, default=d.lr, help="learning rate of weights and biases (and of the "
                                            "ranges without --lr-ranges)")
    a("--lr-bits", type=float, default=d.lr_bits, help="learning rate of the bits (beta)")
    a("--lr-ranges", type=float, default=d.lr_ranges,
      help="learning rate of the weight and activation ranges (alpha; default: --lr): a range "
           "scale near 1 moves as far as a weight near 0.01 only at a larger rate")
    a("--lr-fixed", action="store_true", help="constant learning rates (default: cosine)")
    a("--max-epoch", type=float, default=d.max_epoch)
    a("--batch-size", type=int, default=d.batch_size, help="global batch (all processes)")
    a("--accumulate", type=int, default=d.accumulate,
      help="micro-batches per step and process: the batch is split into processes x this "
           "shards (as data-parallel ranks split it), their gradients summed then averaged")
    a("--epoch-size", type=int, default=d.epoch_size, help="samples per epoch of augmented sets")
    a("--color-jitter", type=float, default=d.color_jitter, metavar="J",
      help="augmented sets: brightness, contrast and saturation of each random crop scaled by "
           "factors in [1-J, 1+J] (default 0: none)")
    a("--grayscale", type=float, default=d.grayscale, metavar="P",
      help="augmented sets: probability of a grey view of a colour crop (default 0)")
    a("--mixup", type=float, default=d.mixup, metavar="A",
      help="--kd-only on an image set: each random crop blended with a crop of another image, "
           "weight ~ Beta(A, A) (A = 1: uniform; default 0: none); the float model labels "
           "the blend")
    a("--synthetic", type=int, default=d.synthetic, metavar="N",
      help="--kd-only on an image set: N more training images synthesized from the float "
           "model's BatchNorm statistics (as aq-export --synthetic makes them; minutes), "
           "cropped as the others (default 0)")
    a("--finetune", action="store_true", help="bits frozen, SWA (needs --ckpt)")
    a("--swa-delay", type=float, default=d.swa_delay, help="epochs before SWA starts")
    a("--swa-freq", type=float, default=d.swa_freq, help="epochs between SWA averages")
    a("--ckpt", help="start from this aq-train checkpoint (finetune) / evaluate it (--eval)")
    a("--float-ckpt", help="float state dict of the architecture (default: built-in weights)")
    a("--init-thresholds", help="JSON {tensor: [lo, hi]} of initial activation ranges")
    a("--init-bits", help="starting bits: an int, a bits JSON (aq-export format) or auto")
    a("--init-aqz", help="start from this post-training .aqz of --model (its codes, scales, "
                         "ranges and bits: e.g. aq-export's best low-bit file)")
    a("--calib-images", type=int, default=d.calib_images)
    a("--min-bits", type=int, default=d.min_bits)
    a("--max-bits", type=int, default=d.max_bits)
    a("--bias-bits", type=int, default=d.bias_bits)
    a("--ttq-threshold", type=float, default=d.ttq_threshold)
    a("--ttq-skip-depthwise", action=argparse.BooleanOptionalAction, default=True,
      help="keep depthwise convs at --weight-bits (default) instead of ternary")
    a("--step", type=int, default=d.step, help="progressive: bits removed per move")
    a("--lam", type=float, default=d.lam, help="progressive: fraction of layers lowered per move")
    a("--interval", type=int, default=d.interval, help="progressive: finetune steps per move")
    a("--ratio", type=float, default=d.ratio, help="progressive: target metric / 8-bit metric")
    a("--input-size", type=int)
    a("--seed", type=int, default=d.seed)
    a("--max-steps", type=int, help="stop (saving a resumable checkpoint) after this step")
    a("--eval-backend", default=d.eval_backend, help="runtime backend of the integer eval")
    a("--resume", metavar="RUN", help="continue the run in this folder exactly")
    a("--eval", action="store_true", help="evaluate --ckpt (integer and fake-quant) and write "
                                          "quant_info.json and bits.png into --out")
    a("--no-progress", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> None:
    require("export", "aq-train")
    from ..training.config import TrainConfig
    ap = _parser()
    a = ap.parse_args(argv)

    def go() -> int:
        from .. import AqError
        if a.eval:
            if not a.ckpt:
                raise AqError("--eval needs --ckpt")
            from ..training.api import eval_checkpoint
            return eval_checkpoint(a.ckpt, a.out if a.out != TrainConfig().out else None,
                                   a.data if a.data != TrainConfig().data else None,
                                   a.eval_backend)
        cfg = TrainConfig.from_dict({k.replace("-", "_"): v for k, v in vars(a).items()})
        if a.resume:
            cfg.out = a.resume
        if a.strategy == "progressive" and not a.resume:
            from ..training.progressive import progressive_search
            return progressive_search(cfg, progress=not a.no_progress)
        if a.resume:
            from ..training.checkpoint import load_checkpoint
            if load_checkpoint(a.resume)["settings"]["config"]["strategy"] == "progressive":
                from ..training.progressive import progressive_search
                return progressive_search(cfg, progress=not a.no_progress, resume=True)
        from ..training.loop import train
        return train(cfg, resume=bool(a.resume), progress=not a.no_progress)
    import os
    run_cli(go, hard_exit=int(os.environ.get("WORLD_SIZE", "1")) > 1)


if __name__ == "__main__":
    main(sys.argv[1:])
