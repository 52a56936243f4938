"""The training loop shared by every strategy: deterministic data order and augmentation
(a function of seed, epoch and step), loss = alpha*CE + kd*MSE(teacher, student) +
kd_blocks*(relative MSE of the block outputs) + beta*metric (gamma scales the gradient of the
ops term; with metric_target, beta*max(metric - target, 0)), Adam with separate learning rates for
weights/ranges and for bits, AQ's iterative bit schedule, SWA in finetune mode, data-parallel
processes under torchrun (gradients all-reduced; gloo on CPU, NCCL with CUDA), tqdm progress,
CSV logs, safe checkpoints, `--resume` and clean SIGINT handling. Rank 0 alone writes files."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import AqError
from ..ir.float_graph import FloatGraph
from ..quant.bits import mean_bits
from ..quant.cost import REF_OPS, REF_PARAMS
from .build import float_state, new_model, restore_model, teacher_graph
from .checkpoint import load_checkpoint, save_checkpoint, write_json
from .config import TrainConfig
from .data import TrainData, load_train_data
from .evaluate import evaluate, format_eval, write_reports
from .qgraph import QuantGraph
from .schedule import bits_trainable, lr_at, swa_due

REPORTED = ("int_agree_float", "int_top5_float", "int_sqnr_db")
LOG_FIELDS = ["step", "epoch", "loss", "ce", "kd", "metric", "weight_bits", "act_bits", "lr",
              "bits_on"]


class Teacher:
    """The float model in torch (fixed weights), on the same uint8 batches."""

    def __init__(self, fg: FloatGraph):
        from ..export.float_exec import apply_node
        self.fg, self.apply = fg, apply_node
        self.p = {n.name: (torch.tensor(n.weight, dtype=torch.float32),
                           torch.tensor(n.bias, dtype=torch.float32)) for n in fg.conv_nodes()}
        self.mean = torch.tensor(fg.pixel_mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(fg.pixel_std, dtype=torch.float32).view(1, -1, 1, 1)

    @torch.no_grad()
    def run(self, images: torch.Tensor, keep: tuple[str, ...] = ()
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(logits, the tensors named in `keep`)."""
        env = {self.fg.input: (images.permute(0, 3, 1, 2).float() - self.mean) / self.std}
        for n in self.fg.nodes:
            w, b = self.p.get(n.name, (None, None))
            env[n.output] = self.apply(n, [env[t] for t in n.inputs], w, b)
        y = env[self.fg.output]
        return y.reshape(y.shape[0], -1), {t: env[t] for t in keep}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.run(images)[0]


def block_outputs(fg: FloatGraph) -> tuple[str, ...]:
    """The tensors that carry everything later layers need (learned rounding's cut points: a
    residual block's output, each conv of a chain), the logits excluded: what `--kd-blocks`
    distils."""
    from ..export.learned_rounding import pieces
    return tuple(p[-1].output for p in pieces(fg)[:-1])


def block_kd(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]
             ) -> torch.Tensor:
    """Mean over blocks of the squared error relative to the teacher's power."""
    terms = [((student[t] - v) ** 2).mean() / (v * v).mean().clamp(min=1e-12)
             for t, v in teacher.items()]
    return torch.stack(terms).mean()


def dist_info() -> tuple[int, int]:
    """(rank, world size); initializes the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


class Trainer:
    """Model, optimizer, data and schedule; `step(k)` runs global step k."""

    def __init__(self, cfg: TrainConfig, model: QuantGraph, teacher_fg: FloatGraph,
                 data: TrainData, rank: int = 0, world: int = 1):
        self.cfg, self.model, self.teacher_fg, self.data = cfg, model, teacher_fg, data
        self.rank, self.world = rank, world
        self.teacher = Teacher(teacher_fg) if cfg.kd > 0 or cfg.kd_blocks > 0 else None
        self.kept = block_outputs(model.fg) if cfg.kd_blocks > 0 else ()
        self.learn_bits = cfg.bits_trainable and cfg.strategy == "aq" and not cfg.finetune
        for p in model.bit_parameters():
            p.requires_grad_(self.learn_bits)
        self.lr_ranges = cfg.lr if cfg.lr_ranges is None else cfg.lr_ranges
        self.opt = torch.optim.Adam([
            {"params": model.other_parameters(), "lr": cfg.lr},
            {"params": model.bit_parameters(), "lr": cfg.lr_bits},
            {"params": model.range_parameters(), "lr": self.lr_ranges}])
        self.spe = max(1, math.ceil(data.size / cfg.batch_size))
        self.total = max(1, math.ceil(cfg.max_epoch * self.spe))
        self.swa_n = 0
        self.swa_sum: dict[str, torch.Tensor] = {}
        self._perm: tuple[int, np.ndarray] | None = None
        if world > 1:  # every process starts from rank 0's model and teacher, as DDP does
            import torch.distributed as dist
            with torch.no_grad():
                for t in list(model.parameters()) + list(model.buffers()):
                    dist.broadcast(t.data, 0)
                for w, b in (self.teacher.p.values() if self.teacher else []):
                    dist.broadcast(w, 0)
                    dist.broadcast(b, 0)

    def batch_indices(self, step: int) -> np.ndarray:
        epoch, k = divmod(step, self.spe)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.cfg.seed, epoch]).permutation(
                self.data.size))
        return self._perm[1][k * self.cfg.batch_size:(k + 1) * self.cfg.batch_size]

    def step(self, step: int) -> dict[str, Any]:
        """One optimizer step on the global batch. The batch is cut into processes x
        `accumulate` interleaved shards; this process runs its shards one after another,
        gradients summed, then summed over processes and divided by the shard count: two
        processes and one process with `accumulate` 2 add the same two gradients (a + b), so
        they train to the same bits."""
        cfg, model = self.cfg, self.model
        idx = self.batch_indices(step)
        n_global = len(idx)
        shards = self.world * cfg.accumulate
        rng = np.random.default_rng([cfg.seed, step])
        seeds = rng.integers(0, 2**63 - 1, size=n_global)
        bits_on = self.learn_bits and bits_trainable(step, self.spe, cfg.iter_train)
        lr = lr_at(step, self.total, cfg.lr, cfg.lr_fixed)
        self.opt.param_groups[0]["lr"] = lr
        self.opt.param_groups[1]["lr"] = lr_at(step, self.total, cfg.lr_bits, cfg.lr_fixed)
        self.opt.param_groups[2]["lr"] = lr_at(step, self.total, self.lr_ranges, cfg.lr_fixed)
        model.train()
        self.opt.zero_grad(set_to_none=True)
        stats = torch.zeros(3, dtype=torch.float64)
        zero = torch.zeros(())
        metric = zero
        for j in range(cfg.accumulate):
            mine = np.arange(self.rank + self.world * j, n_global, shards)
            if len(mine) == 0:
                continue
            x, y = self.data.train_batch(idx[mine],
                                         [np.random.default_rng(int(s)) for s in seeds[mine]])
            xt = torch.from_numpy(np.ascontiguousarray(x))
            logits, mid = model.run(xt, self.kept)
            ce = F.cross_entropy(logits, torch.from_numpy(y)) if (
                y is not None and cfg.alpha > 0 and not cfg.kd_only) else zero
            kd = zero
            data_loss = cfg.alpha * ce
            if self.teacher is not None:
                t_logits, t_mid = self.teacher.run(xt, self.kept)
                kd = F.mse_loss(logits, t_logits)
                data_loss = data_loss + cfg.kd * kd
                if self.kept:
                    data_loss = data_loss + cfg.kd_blocks * block_kd(mid, t_mid)
            pull = zero
            if cfg.beta > 0:
                params, ops = model.cost()
                metric = (params / REF_PARAMS + (cfg.gamma * ops + (1 - cfg.gamma) * ops.detach())
                          / REF_OPS).float()
                pull = metric if cfg.metric_target is None else torch.relu(
                    metric - cfg.metric_target)
            share = len(mine) * shards / n_global
            loss = data_loss * share + cfg.beta * pull
            loss.backward()
            stats += torch.stack([ce.detach() * share, kd.detach() * share,
                                  data_loss.detach() * share]).double()
        if self.world > 1:
            import torch.distributed as dist
            for p in model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
            dist.all_reduce(stats)
        if shards > 1:
            for p in model.parameters():
                if p.grad is not None:
                    p.grad /= shards
            stats /= shards
        if not bits_on:
            for p in model.bit_parameters():
                p.grad = None
        self.opt.step()
        model.clamp_bits_()
        if cfg.finetune and swa_due(step, self.spe, cfg.swa_delay, cfg.swa_freq):
            self.swa_update()
        with torch.no_grad():
            wbits, abits = model.int_bits()
        m = float(metric.detach()) if cfg.beta > 0 else float(self.metric_now())
        return {"step": step, "epoch": round((step + 1) / self.spe, 4),
                "loss": float(stats[2]) + cfg.beta * m, "ce": float(stats[0]),
                "kd": float(stats[1]), "metric": m,
                "weight_bits": _avg_weight_bits(model, wbits), "act_bits": _avg_act_bits(model, abits),
                "lr": lr, "bits_on": int(bits_on)}

    @torch.no_grad()
    def metric_now(self) -> float:
        p, o = self.model.cost()
        return float(p / REF_PARAMS + o / REF_OPS)

    # ---- SWA ----------------------------------------------------------------------------------
    def swa_update(self) -> None:
        self.swa_n += 1
        for k, p in self.model.named_parameters():
            v = p.detach().double()
            self.swa_sum[k] = self.swa_sum[k] + v if k in self.swa_sum else v.clone()

    def swa_apply(self) -> None:
        """Put the averaged weights, ranges and TTQ scales into the model (bits are frozen in
        finetune mode; BN is folded before training, so there are no BN statistics to
        recompute: the activation ranges are averaged parameters like the weights)."""
        if not self.swa_n:
            return
        with torch.no_grad():
            for k, p in self.model.named_parameters():
                p.copy_((self.swa_sum[k] / self.swa_n).to(p.dtype))

    # ---- state ------------------------------------------------------------------------------
    def state(self, next_step: int, best: float) -> dict[str, Any]:
        settings = {"config": self.cfg.to_dict(), "quant": self.model.setup.to_dict()}
        return {"settings": json.dumps(settings), "model": self.model.state_dict(),
                "float": float_state(self.teacher_fg), "optimizer": self.opt.state_dict(),
                "swa": {"n": self.swa_n, "sum": self.swa_sum},
                "progress": {"step": next_step, "best": best}}

    def load_state(self, ck: dict[str, Any]) -> tuple[int, float]:
        self.opt.load_state_dict(self._three_groups(ck["optimizer"]))
        self.swa_n = int(ck["swa"]["n"])
        self.swa_sum = dict(ck["swa"]["sum"])
        return int(ck["progress"]["step"]), float(ck["progress"]["best"])

    def _three_groups(self, opt: dict[str, Any]) -> dict[str, Any]:
        """An optimizer state saved before the ranges had their own group (weights and ranges
        in group 0, bits in group 1), renumbered to this optimizer's three groups, so runs
        started by an earlier version still resume."""
        if len(opt["param_groups"]) != 2:
            return opt
        m = self.model
        parts = [m.other_parameters(), m.bit_parameters(), m.range_parameters()]
        bits = {id(p) for p in parts[1]}
        old = [p for p in m.parameters() if id(p) not in bits] + parts[1]
        at = {id(p): i for i, p in enumerate(old)}
        keys = [at[id(p)] for part in parts for p in part]  # new index i holds old keys[i]
        groups, start = [], 0
        for saved, part in zip((0, 1, 0), parts):  # the ranges take the weights' settings
            groups.append({**opt["param_groups"][saved],
                           "params": list(range(start, start + len(part)))})
            start += len(part)
        state = {i: opt["state"][k] for i, k in enumerate(keys) if k in opt["state"]}
        return {"state": state, "param_groups": groups}


def _avg_weight_bits(model: QuantGraph, wbits: dict[str, np.ndarray]) -> float:
    """Bits per weight as aq-inspect counts them (ternary convs: 2 bits)."""
    return mean_bits((wbits.get(n.name, np.full(n.weight.shape[0], 2)),
                      int(np.prod(n.weight.shape[1:]))) for n in model.fg.conv_nodes())


def _avg_act_bits(model: QuantGraph, abits: dict[str, np.ndarray]) -> float:
    """Bits per activation value as aq-inspect counts them (format.inspect.average_act_bits:
    the requantized tensors, each channel weighted by its pixels)."""
    return mean_bits((b, model.shapes[t][1] * model.shapes[t][2]) for t, b in abits.items())


class _Interrupt:
    def __init__(self):
        self.hit = False
        self.prev = None

    def __enter__(self):
        try:
            self.prev = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread
            self.prev = None
        return self

    def _handler(self, *_):
        self.hit = True

    def __exit__(self, *exc):
        if self.prev is not None:
            signal.signal(signal.SIGINT, self.prev)


def append_csv(path: Path, row: dict[str, Any], fields: list[str]) -> None:
    """Append one row (header first if the file is new); extra keys are ignored."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def _truncate_log(path: Path, next_step: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) < next_step]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


SYNTHETIC_FILE = "synthetic.npy"  # a run's --synthetic images, kept for --resume


def _train_data(cfg: TrainConfig, fg: FloatGraph, resume: bool = False) -> TrainData:
    return load_train_data(cfg.data, fg, cfg.kd_only, cfg.epoch_size, seed=cfg.seed,
                           jitter=cfg.color_jitter, grayscale=cfg.grayscale, mixup=cfg.mixup,
                           extra=_synthetic(cfg, fg, resume) if cfg.synthetic else None)


def _synthetic(cfg: TrainConfig, fg: FloatGraph, resume: bool) -> np.ndarray:
    """`--synthetic N` images from `fg`'s BatchNorm statistics (export/synthetic.py, seeded by
    --seed): a resumed run's own copy when it has one, else made now (minutes)."""
    kept = Path(cfg.out) / SYNTHETIC_FILE
    c, h, w = fg.input_shape
    if resume and kept.is_file():
        a = np.load(kept, allow_pickle=False)
        if a.dtype == np.uint8 and a.shape == (cfg.synthetic, h, w, c):
            return a
    from ..export import synthetic
    return synthetic.synthesize(fg, cfg.synthetic, iters=synthetic.ITERS, seed=cfg.seed)


def _keep_synthetic(tr: Trainer, out: Path, start: int) -> None:
    """Save the run's synthetic images (temp file, then rename) so --resume need not remake
    them; a fresh run replaces what an earlier one left."""
    kept = out / SYNTHETIC_FILE
    if tr.data.extra is None or (start > 0 and kept.is_file()):
        return
    tmp = kept.with_name(kept.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, tr.data.extra, allow_pickle=False)
    tmp.replace(kept)


def prepare(cfg: TrainConfig, resume: bool, rank: int, world: int
            ) -> tuple[Trainer, int, float, Path]:
    """Build (or restore) everything before the first step; nothing is written here."""
    out = Path(cfg.out)
    if resume:
        ck = load_checkpoint(out / "last.pt")
        saved = TrainConfig.from_dict(ck["settings"]["config"])
        saved.max_steps, saved.out = cfg.max_steps, str(out)
        cfg = saved
        model, fg = restore_model(ck)
        data = _train_data(cfg, fg, resume=True)
        tr = Trainer(cfg, model, fg, data, rank, world)
        start, best = tr.load_state(ck)
        return tr, start, best, out
    cfg.validate()
    if (out / "last.pt").exists():
        raise AqError(f"{out}: already holds a run; pass --resume {out} or choose another --out")
    if not out.parent.exists():
        raise AqError(f"{out.parent}: no such folder")
    if cfg.ckpt:
        src = load_checkpoint(cfg.ckpt)
        if src["settings"]["config"]["model"] != cfg.model:
            raise AqError(f"{cfg.ckpt}: a checkpoint of {src['settings']['config']['model']}, "
                          f"not {cfg.model}")
        model, fg = restore_model(src)
        cfg.strategy = model.setup.strategy
        data = _train_data(cfg, fg)
    else:
        fg = teacher_graph(cfg)
        data = _train_data(cfg, fg)
        model = new_model(cfg, fg, data)
    if data.labelled is False and cfg.kd <= 0:
        raise AqError("no labels and --kd 0: nothing to learn from")
    return Trainer(cfg, model, fg, data, rank, world), 0, -1.0, out


def run_eval(tr: Trainer) -> tuple[dict[str, Any], Any]:
    d = tr.data
    return evaluate(tr.model, tr.teacher_fg, d.val_x, d.val_y, tr.cfg.eval_backend)


def _score(res: dict[str, Any]) -> float:
    return res["int_acc"] if "int_acc" in res else res["int_agree_float"]


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> int:
    """Run (or resume) training; returns the exit status (0 done or stopped at --max-steps,
    130 interrupted). Writes last.pt, best.pt, log.csv, eval.csv, quant_info.json, bits.png."""
    rank, world = dist_info()
    try:
        return _train(cfg, resume, progress, rank, world)
    finally:
        finish_dist(world)


def finish_dist(world: int) -> None:
    """Wait for every process, then tear the process group down (no rank exits early)."""
    if world > 1:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _train(cfg: TrainConfig, resume: bool, progress: bool, rank: int, world: int) -> int:
    from tqdm import tqdm

    tr, start, best, out = prepare(cfg, resume, rank, world)
    cfg = tr.cfg
    if rank == 0:
        out.mkdir(exist_ok=True)
        _truncate_log(out / "log.csv", start)
        write_json(out / "settings.json", {"config": cfg.to_dict(),
                                            "quant": tr.model.setup.to_dict()})
        _keep_synthetic(tr, out, start)
    stop_at = tr.total if cfg.max_steps is None else min(tr.total, cfg.max_steps)
    bar = tqdm(range(start, stop_at), desc=f"aq-train {cfg.strategy}", disable=not progress
               or rank != 0, file=sys.stderr, initial=start, total=tr.total)
    with _Interrupt() as intr:
        for step in bar:
            row = tr.step(step)
            if rank == 0:
                append_csv(out / "log.csv", row, LOG_FIELDS)
                bar.set_postfix(loss=f"{row['loss']:.4f}", wb=f"{row['weight_bits']:.2f}",
                                ab=f"{row['act_bits']:.2f}")
            last = step + 1 == tr.total
            if (step + 1) % tr.spe == 0 or last:
                if last:
                    tr.swa_apply()
                best = _eval_and_save(tr, step, best, out, rank)
            elif rank == 0 and (intr.hit or step + 1 == stop_at):
                save_checkpoint(out / "last.pt", tr.state(step + 1, best))
            if intr.hit:
                if rank == 0:
                    print(f"aq-train: interrupted after step {step + 1}; saved {out / 'last.pt'}"
                          f" (continue with --resume {out})", file=sys.stderr)
                return 130
    bar.close()
    if stop_at < tr.total:
        if rank == 0:
            print(f"aq-train: stopped after step {stop_at} of {tr.total} (--max-steps); "
                  f"continue with --resume {out}", file=sys.stderr)
        return 0
    if rank == 0:
        ck = load_checkpoint(out / "best.pt")
        model, _ = restore_model(ck)
        res, g = evaluate(model, tr.teacher_fg, tr.data.val_x, tr.data.val_y, cfg.eval_backend)
        write_reports(g, out, f"{cfg.model} {cfg.strategy}: weights {res['avg_weight_bits']:.2f}"
                      f" bits, activations {res['avg_act_bits']:.2f} bits")
        write_json(out / "result.json", res)
        print(f"aq-train: best checkpoint {out / 'best.pt'}\n{format_eval(res)}", file=sys.stderr)
    return 0


def _eval_and_save(tr: Trainer, step: int, best: float, out: Path, rank: int) -> float:
    if rank != 0:
        return best
    res, g = run_eval(tr)
    row = {"step": step, "epoch": round((step + 1) / tr.spe, 4), **res}
    d = tr.data
    if d.report_x is not None:  # reported only: the choice below reads `res` alone
        rep, _ = evaluate(tr.model, tr.teacher_fg, d.report_x, None, tr.cfg.eval_backend, g)
        row.update({f"{d.report_name}_{k}": rep[k] for k in REPORTED})
    append_csv(out / "eval.csv", row, list(row))
    save_checkpoint(out / "last.pt", tr.state(step + 1, max(best, _score(res))))
    if _score(res) > best:
        best = _score(res)
        save_checkpoint(out / "best.pt", tr.state(step + 1, best))
    return best
