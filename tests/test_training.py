"""Training: STE gradients, the metric against a hand count, the iterative schedule,
resume and DDP equality, every strategy's checkpoint exporting bit-exactly, bad input."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from aq_runtime.ir.float_graph import FloatGraph, FloatNode
from aq_runtime.quant.cost import micronet_score
from aq_runtime.runtime import Session
from aq_runtime.training.checkpoint import load_checkpoint
from aq_runtime.training.config import TrainConfig
from aq_runtime.training.loop import train
from aq_runtime.training.qgraph import QuantGraph, QuantSetup
from aq_runtime.training.schedule import bits_trainable

FAST = dict(model="digits-cnn", data="digits", batch_size=128, eval_backend="reference")


def cli(*args, env=None):
    code = "import sys; from aq_runtime.cli.train import main; sys.argv[0] = 'aq-train'; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args), "--no-progress"],
                          capture_output=True, text=True, timeout=600, env=env)


def export_cli(*args):
    code = "import sys; from aq_runtime.cli.export import main; sys.argv[0] = 'aq-export'; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def one_line_error(r):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    lines = [l for l in r.stderr.strip().splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def digits_ranges(digits_fg):
    from aq_runtime.export.pipeline import calibrate_ranges
    from aq_runtime.models.digits import digits_data
    return calibrate_ranges(digits_fg, digits_data()[0][:256])


def test_ste_gradients_reach_ranges_and_precisions(digits_fg, digits_ranges):
    from aq_runtime.models.digits import digits_data
    m = QuantGraph(digits_fg, digits_ranges, QuantSetup("aq", 4, 4))
    x, y = digits_data()[0][:64], torch.from_numpy(digits_data()[1][:64])
    loss = torch.nn.functional.cross_entropy(m(torch.from_numpy(x)), y)
    params, ops = m.cost()
    (loss + 100 * (params / 6.9e6 + ops / 1170e6)).backward()
    for group in (m.w_range, m.w_precision, m.a_range, m.a_precision):
        for name, p in group.items():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    # the metric alone pulls every weight precision down (positive gradient)
    m.zero_grad()
    p2, o2 = m.cost()
    (p2 / 6.9e6 + o2 / 1170e6).backward()
    for name, p in m.w_precision.items():
        assert (p.grad > 0).all(), name


def test_checkpoints_with_the_older_parameter_names_load(digits_fg, digits_ranges):
    from aq_runtime.training.qgraph import renamed_parameters
    m = QuantGraph(digits_fg, digits_ranges, QuantSetup("aq", 4, 4))
    old = {k.replace("w_range.", "w_alpha.").replace("a_range.", "a_alpha.")
            .replace("w_precision.", "w_beta.").replace("a_precision.", "a_beta."): v
           for k, v in m.state_dict().items()}
    assert any(k.startswith("w_alpha.") for k in old) and not any("range" in k for k in old)
    again = QuantGraph(digits_fg, digits_ranges, QuantSetup("aq", 4, 4))
    again.load_state_dict(renamed_parameters(old), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                                 again.state_dict().values()))


def _two_layer_graph():
    rng = np.random.default_rng(0)
    a = FloatNode("conv", "a", ["input"], "a", dict(stride=[1, 1], pad=[1, 1, 1, 1], groups=1,
                                                    act="relu"),
                  rng.normal(size=(2, 1, 3, 3)), rng.normal(size=2))
    b = FloatNode("conv", "b", ["a"], "b", dict(stride=[1, 1], pad=[0, 0, 0, 0], groups=1,
                                                act="none"),
                  rng.normal(size=(3, 2, 4, 4)), rng.normal(size=3))
    return FloatGraph("two", "input", "b", (1, 4, 4), [0.0], [255.0], [a, b], ["x", "y", "z"])


def test_metric_equals_hand_count():
    fg = _two_layer_graph()
    ranges = {"a": (np.full(2, -1.0), np.full(2, 3.0)), "b": (np.full(3, -5.0), np.full(3, 5.0))}
    m = QuantGraph(fg, ranges, QuantSetup("aq", 8, 8),
                   init_wbits={"a": np.array([4, 2]), "b": np.array([8, 6, 2])},
                   init_abits={"a": np.array([3, 5])})
    # conv a: 9 weights per channel, bits 4 and 2; per channel 32-bit bias, 16-bit multiplier,
    # 8-bit shift; lo, hi, zero point at the output's bits (3 and 5). Inputs are 8-bit pixels.
    params_a = (9 * (4 + 2) + 2 * (32 + 16 + 8)) / 32 + 3 * (3 + 5) / 32
    ops_a = 9 * 16 * (8 / 16 + 8 / 16) + 2 * 9 * 16 + 7 * 2 * 16  # mults, adds, requant
    # conv b: 32 weights per channel (bits 8, 6, 2), output = int32 logits (32-bit clamps);
    # a multiply costs max(weight bits, bits of the input channel (3 or 5)) / 16
    params_b = (32 * (8 + 6 + 2) + 3 * 56) / 32 + 3 * 3 * 32 / 32
    mults_b = 16 * ((8 + 8) + (6 + 6) + (3 + 5)) / 16
    ops_b = mults_b + 3 * 32 + 7 * 3
    p, o = m.cost()
    assert float(p.detach()) == params_a + params_b == 36.1875
    assert float(o.detach()) == ops_a + ops_b == 809
    s = micronet_score(m.integerize())
    assert (s["params"], s["ops"]) == (36.1875, 809)


def test_iterative_schedule_toggles_bits(digits_fg, digits_ranges, tmp_path):
    # 20 steps per epoch -> mini-epochs of 2 steps: off, on, off, on ...
    assert [bits_trainable(s, 20, True) for s in range(8)] == [False, False, True, True,
                                                                 False, False, True, True]
    assert all(bits_trainable(s, 20, False) for s in range(8))
    from aq_runtime.training.data import load_train_data
    from aq_runtime.training.loop import Trainer
    cfg = TrainConfig(**FAST, strategy="aq", bits_trainable=True, iter_train=True, beta=50.0,
                      lr_bits=1e-2, out=str(tmp_path))
    cfg.batch_size = 72  # 1437 samples -> 20 steps per epoch
    data = load_train_data("digits", digits_fg, False)
    tr = Trainer(cfg, QuantGraph(digits_fg, digits_ranges, cfg.quant_setup()), digits_fg, data)
    assert tr.spe == 20
    for s in range(6):
        before = [p.detach().clone() for p in tr.model.bit_parameters()]
        row = tr.step(s)
        moved = any(not torch.equal(a, b) for a, b in zip(before, tr.model.bit_parameters()))
        assert row["bits_on"] == int(bits_trainable(s, 20, True))
        assert moved == bool(row["bits_on"]), s


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    base = dict(**FAST, strategy="aq", bits_trainable=True, iter_train=True, beta=20.0,
                max_epoch=1.5, lr=5e-4, lr_bits=5e-3)
    assert train(TrainConfig(**base, out=str(tmp_path / "a")), progress=False) == 0
    assert train(TrainConfig(**base, out=str(tmp_path / "b"), max_steps=7), progress=False) == 0
    assert len(rows(tmp_path / "b" / "log.csv")) == 7
    assert train(TrainConfig(out=str(tmp_path / "b")), resume=True, progress=False) == 0
    ra, rb = rows(tmp_path / "a" / "log.csv"), rows(tmp_path / "b" / "log.csv")
    assert len(ra) == len(rb) == 18
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]
    ma = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    mb = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def test_sigint_saves_and_resumes(tmp_path):
    out = tmp_path / "run"
    code = "import sys; from aq_runtime.cli.train import main; main(sys.argv[1:])"
    p = subprocess.Popen([sys.executable, "-c", code, "--model", "digits-cnn", "--data", "digits",
                          "--max-epoch", "200", "--batch-size", "32", "--out", str(out),
                          "--eval-backend", "reference", "--no-progress"],
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "log.csv").exists()
                                          and len(rows(out / "log.csv")) > 3):
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err
    assert "interrupted after step" in err
    ck = load_checkpoint(out / "last.pt")
    done = ck["progress"]["step"]
    assert done == len(rows(out / "log.csv"))
    r = cli("--resume", out, "--max-steps", done + 2)
    assert r.returncode == 0, r.stderr
    assert len(rows(out / "log.csv")) == done + 2


def test_ddp_equals_single_process(tmp_path):
    """Two processes equal one process running the same two shards (`--accumulate 2`): the
    same forward passes, the same gradient sum a + b, so `==` on every CPU. Against one
    process on the whole batch only the loss curve is compared: its summation order differs,
    and a quantized net is piecewise constant, so a float-rounding difference can flip a code at
    a rounding tie (it did on an AVX2-only CPU, beyond rtol 1e-4 in a weight)."""
    args = ["--model", "digits-cnn", "--data", "digits", "--batch-size", "64", "--max-steps", "3",
            "--strategy", "aq", "--bits-trainable", "--beta", "20", "--lr", "1e-3",
            "--no-progress"]
    # same float summation order in every run; a crash prints every thread's Python stack
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    # tools/avx2_emulated.py runs this under valgrind, some 20x slower
    timeout = 300 * float(os.environ.get("AQ_TEST_TIMEOUT_SCALE", "1"))

    def train(out, *extra, procs=1):
        cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                str(procs)] if procs > 1 else [sys.executable]) + ["-m", "aq_runtime.cli.train"]
        r = subprocess.run(cmd + args + list(extra) + ["--out", str(tmp_path / out)],
                           capture_output=True, text=True, timeout=timeout, env=env)
        assert r.returncode == 0, r.stderr[:4000] + "\n...\n" + r.stderr[-3000:]
        return (load_checkpoint(tmp_path / out / "last.pt")["model"],
                [float(r["loss"]) for r in rows(tmp_path / out / "log.csv")])

    acc, l_acc = train("acc", "--accumulate", "2")
    two, l_two = train("two", procs=2)
    one, l_one = train("one")
    assert set(acc) == set(two) == set(one)
    for k in acc:
        assert torch.equal(acc[k], two[k]), k
    assert l_acc == l_two
    assert np.allclose(l_one, l_two, rtol=2e-3)


@pytest.mark.parametrize("strategy,extra", [
    ("aq", ["--bits-trainable", "--iter-train", "--weight-bits", "4", "--act-bits", "4",
            "--beta", "50", "--lr-bits", "2e-2"]),
    ("uniform", ["--weight-bits", "3", "--act-bits", "3"]),
    ("ttq", ["--act-bits", "6", "--lr", "3e-3"]),
    ("progressive", ["--ratio", "0.85", "--interval", "3", "--lam", "0.5"]),
])
def test_strategy_checkpoint_exports_bit_exactly(strategy, extra, tmp_path):
    from aq_runtime.models.digits import digits_data
    out = tmp_path / strategy
    r = cli("--model", "digits-cnn", "--data", "digits", "--strategy", strategy,
            "--max-epoch", "1", "--batch-size", "128", "--eval-backend", "reference",
            "--out", out, *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "integer" in r.stderr and "fake-quant" in r.stderr
    assert (out / "quant_info.json").exists() and (out / "bits.png").stat().st_size > 0
    aqz = tmp_path / f"{strategy}.aqz"
    r = export_cli(out / "best.pt", aqz)
    assert r.returncode == 0, r.stderr
    x, y = digits_data()[2], digits_data()[3]
    from aq_runtime.training.api import checkpoint_graph
    ref = Session(aqz, "reference").run(x)
    assert (ref == Session(checkpoint_graph(out / "best.pt"), "reference").run(x)).all()
    assert (ref == Session(aqz, "numba").run(x)).all()
    import json
    res = json.loads((out / "result.json").read_text())
    assert res["int_acc"] == float((ref.argmax(1) == y).mean())
    assert res["int_acc"] > 0.5
    # the bits the run logs (the progressive search: per move in path.csv) are those aq-inspect
    # counts in the file of its last checkpoint: one definition
    from aq_runtime.format.inspect import average_act_bits, average_weight_bits
    g = checkpoint_graph(out / "last.pt")
    if strategy == "progressive":
        last = rows(out / "path.csv")[-1]
        logged = last["avg_weight_bits"], last["avg_act_bits"]
    else:
        last = rows(out / "log.csv")[-1]
        logged = last["weight_bits"], last["act_bits"]
    assert float(logged[0]) == pytest.approx(average_weight_bits(g), abs=1e-6)
    assert float(logged[1]) == pytest.approx(average_act_bits(g), abs=1e-6)
    if strategy == "ttq":
        g = checkpoint_graph(out / "best.pt")
        assert all(n.attrs["mode"] == "ternary" for n in g.weight_nodes())
        assert set(np.unique(g.weight_nodes()[0].arrays["weight"])) <= {-1, 0, 1}


def test_eval_writes_reports(tmp_path):
    out = tmp_path / "r"
    assert train(TrainConfig(**FAST, max_steps=2, out=str(out)), progress=False) == 0
    (out / "quant_info.json").unlink(missing_ok=True)
    rep = tmp_path / "rep"
    rep.mkdir()
    r = cli("--eval", "--ckpt", out / "last.pt", "--out", rep, "--eval-backend", "reference")
    assert r.returncode == 0, r.stderr
    assert "integer" in r.stderr and "metric" in r.stderr
    import json
    info = json.loads((rep / "quant_info.json").read_text())
    assert info["layers"]["conv1"]["weight_bits"] == [8] * 16
    from PIL import Image
    assert Image.open(rep / "bits.png").size[0] > 100


def test_bad_input(tmp_path):
    from PIL import Image
    base = ["--model", "digits-cnn", "--max-steps", "1"]
    assert "no such data folder" in one_line_error(cli(*base, "--data", tmp_path / "nope",
                                                       "--out", tmp_path / "o1"))
    (tmp_path / "empty").mkdir()
    assert "no images" in one_line_error(cli(*base, "--data", tmp_path / "empty",
                                             "--out", tmp_path / "o2"))
    bad = tmp_path / "labels" / "cat"
    bad.mkdir(parents=True)
    Image.new("L", (8, 8)).save(bad / "a.png")
    assert "neither a label" in one_line_error(cli(*base, "--data", tmp_path / "labels",
                                               "--out", tmp_path / "o3"))
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3))
    run = tmp_path / "run"
    assert train(TrainConfig(**FAST, max_steps=1, out=str(run)), progress=False) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    # an existing run is never overwritten without --resume
    assert "already holds a run" in one_line_error(cli(*base, "--data", "digits", "--out", run))
    # a checkpoint of another model
    assert "not efficientnet-lite0" in one_line_error(cli(
        "--model", "efficientnet-lite0", "--data", "photos", "--finetune", "--ckpt",
        run / "last.pt", "--out", tmp_path / "o4"))
    # corrupted checkpoints: resume, finetune and export all refuse with one line
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "last.pt").write_bytes((run / "last.pt").read_bytes()[:5000])
    assert "not a readable checkpoint" in one_line_error(cli("--resume", broken))
    assert "not a readable checkpoint" in one_line_error(cli(
        *base, "--data", "digits", "--finetune", "--ckpt", broken / "last.pt",
        "--out", tmp_path / "o5"))
    r = export_cli(broken / "last.pt", tmp_path / "x.aqz")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert not (tmp_path / "x.aqz").exists()
    # export options a checkpoint cannot honour are errors; --weight-coding applies
    for opt in (["--bits", "4"], ["--rounding", "learned"], ["--model", "digits-cnn"]):
        r = export_cli(run / "last.pt", tmp_path / "x.aqz", *opt)
        assert one_line_error(r) == (f"error: {opt[0]} does not apply to a training "
                                     "checkpoint (its bits, ranges and weights are trained; "
                                     "only --weight-coding applies)")
        assert not (tmp_path / "x.aqz").exists()
    coded = tmp_path / "coded.aqz"
    assert export_cli(run / "last.pt", coded, "--weight-coding", "entropy").returncode == 0
    from aq_runtime.format import read_aqz
    from aq_runtime.models.digits import digits_data
    from aq_runtime.training.api import checkpoint_graph
    assert all(n.attrs["weight_coding"] == "entropy" for n in read_aqz(coded).weight_nodes())
    x = digits_data()[2][:64]
    ref = Session(checkpoint_graph(run / "last.pt"), "reference").run(x)
    assert (Session(coded, "reference").run(x) == ref).all()
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_labelled_folder_and_init_thresholds(tmp_path):
    """A folder with one subfolder per class trains; --init-thresholds sets the start ranges."""
    import json

    from PIL import Image

    from aq_runtime.models.digits import digits_data
    x, y = digits_data()[0][:60], digits_data()[1][:60]
    for i, (im, label) in enumerate(zip(x, y)):
        d = tmp_path / "data" / str(label)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im[..., 0]).save(d / f"{i}.png")
    (tmp_path / "thr.json").write_text(json.dumps({"conv1": [0.0, 2.5], "pool": [[0.0] * 32,
                                                                               [1.5] * 32]}))
    out = tmp_path / "run"
    r = cli("--model", "digits-cnn", "--data", tmp_path / "data", "--max-steps", "2",
            "--batch-size", "16", "--init-thresholds", tmp_path / "thr.json", "--out", out)
    assert r.returncode == 0, r.stderr
    m = load_checkpoint(out / "last.pt")["model"]
    assert torch.equal(m["hi0_conv1"], torch.full((16,), 2.5))
    assert torch.equal(m["hi0_pool"], torch.full((32,), 1.5))
    (tmp_path / "bad.json").write_text(json.dumps({"nope": [0, 1]}))
    assert "unknown tensor" in one_line_error(cli(
        "--model", "digits-cnn", "--data", tmp_path / "data", "--max-steps", "1",
        "--init-thresholds", tmp_path / "bad.json", "--out", tmp_path / "run2"))


@pytest.mark.parametrize("bits", [8, 4, "mixed"])
def test_untrained_model_exports_as_post_training(digits_fg, digits_ranges, bits):
    """Training starts exactly at the exporter's post-training model: same integer arrays."""
    from aq_runtime.export.bits_spec import resolve_bits
    from aq_runtime.export.integerize import integerize
    rng = np.random.default_rng(1)
    spec = bits if bits != "mixed" else {"layers": {
        n.name: {"weight": rng.integers(2, 9, n.weight.shape[0]).tolist(),
                 "act": rng.integers(3, 9, n.weight.shape[0]).tolist()}
        for n in digits_fg.conv_nodes() if n.name != "fc"}}
    plan = resolve_bits(digits_fg, spec)
    wb, ab = plan.weight, plan.act
    ptq = integerize(digits_fg, digits_ranges, wb, ab)
    m = QuantGraph(digits_fg, digits_ranges, QuantSetup("aq", 8, 8), wb, ab)
    g = m.integerize()
    for a, b in zip(ptq.nodes, g.nodes):
        assert a.arrays.keys() == b.arrays.keys()
        for k in a.arrays:
            assert np.array_equal(a.arrays[k], b.arrays[k]), (a.name, k)
    for t in ptq.tensors:
        assert np.array_equal(ptq.tensors[t].zero_point, g.tensors[t].zero_point)
        assert np.array_equal(ptq.tensors[t].bits, g.tensors[t].bits)


def test_init_aqz_starts_exactly_where_the_export_is(digits_fg, tmp_path):
    """`aq-train --init-aqz model.aqz`: the untrained model is the file (its integers, array
    for array: learned codes, MSE-clipped scales, corrected biases, mixed bits), and a KD run
    from it trains and exports with the file's bits."""
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.format import read_aqz, write_aqz
    from aq_runtime.models.digits import digits_data
    from aq_runtime.training.build import model_from_aqz
    from aq_runtime.training.checkpoint import load_checkpoint
    from aq_runtime.training.api import checkpoint_graph
    g = export_graph(digits_fg, digits_data()[0][:256], ExportOptions(
        bits="auto", budget=0.5, allocation="channel", clipping="mse", rounding="learned",
        rounding_target="model", weight_coding="packed", rounding_iters=20,
        rounding_images=300, progress=False))
    path = tmp_path / "low.aqz"
    write_aqz(g, path)
    g = read_aqz(path)
    assert len({int(b) for n in g.weight_nodes() for b in n.arrays["wbits"]}) > 1
    cfg = TrainConfig(**FAST, init_aqz=str(path))
    m = model_from_aqz(cfg, digits_fg, path).integerize()
    for a, b in zip(g.weight_nodes(), m.weight_nodes()):
        for k in ("weight", "wbits", "bias", "mult", "shift", "lo", "hi"):
            assert (a.arrays[k] == b.arrays[k]).all(), (a.name, k)
    for t, spec in g.tensors.items():
        s2 = m.tensors[t]
        assert (spec.scale == s2.scale).all() and (spec.zero_point == s2.zero_point).all(), t
        assert (spec.bits == s2.bits).all(), t
    x = digits_data()[2][:64]
    assert (Session(m, "reference").run(x) == Session(g, "reference").run(x)).all()
    out = tmp_path / "kd"
    assert train(TrainConfig(**FAST, init_aqz=str(path), kd_only=True, alpha=0.0, max_steps=3,
                             lr=1e-4, out=str(out)), progress=False) == 0
    trained = checkpoint_graph(out / "last.pt", load_checkpoint(out / "last.pt"))
    for a, b in zip(g.weight_nodes(), trained.weight_nodes()):
        assert (a.arrays["wbits"] == b.arrays["wbits"]).all()
    with pytest.raises(Exception, match="no --init-bits"):
        TrainConfig(**FAST, init_aqz=str(path), init_bits="auto").validate()
    assert "not an export of" in one_line_error(cli(
        "--model", "efficientnet-lite0", "--data", "photos", "--kd-only", "--init-aqz", path,
        "--out", tmp_path / "o9"))


def _trainer(digits_fg, digits_ranges, tmp_path, **kw):
    from aq_runtime.training.data import load_train_data
    from aq_runtime.training.loop import Trainer
    cfg = TrainConfig(**{**FAST, "batch_size": 72, "out": str(tmp_path), **kw})
    data = load_train_data("digits", digits_fg, cfg.kd_only)
    return Trainer(cfg, QuantGraph(digits_fg, digits_ranges, cfg.quant_setup()), digits_fg, data)


def test_metric_target_pulls_only_above_it(digits_fg, digits_ranges, tmp_path):
    """--metric-target: the MicroNet term pulls the bits down while the score is above the
    target and not at all below it (a target above the start trains exactly as beta 0 does);
    a target between the start and where an unbounded pull ends is where the score stops."""
    learn = dict(strategy="aq", bits_trainable=True, lr_bits=2e-2)
    BETA = 3000.0  # the digits model's score is ~1e-3

    def run(steps, **kw):
        tr = _trainer(digits_fg, digits_ranges, tmp_path, **learn, **kw)
        start = tr.metric_now()
        for s in range(steps):
            tr.step(s)
        return start, tr.metric_now(), [p.detach().clone() for p in tr.model.parameters()]

    s0, free_end, _ = run(30, beta=BETA)
    assert free_end < 0.9 * s0, (s0, free_end)
    _, _, p_none = run(5, beta=0.0)
    _, _, p_above = run(5, beta=BETA, metric_target=s0 + 1)
    assert all(torch.equal(a, b) for a, b in zip(p_none, p_above))
    target = (s0 + free_end) / 2
    _, end, _ = run(30, beta=BETA, metric_target=target)
    assert target - 0.25 * (s0 - free_end) < end < s0, (s0, target, end, free_end)
    with pytest.raises(Exception, match="metric-target"):
        TrainConfig(metric_target=0).validate()


def test_ranges_have_their_own_learning_rate(digits_fg, digits_ranges, tmp_path):
    """--lr-ranges: the weight and activation ranges (alpha) learn at their own rate (0: they
    stay; lr 0: only they move), and an optimizer state saved with two groups (ranges inside
    the weights' group, before they had their own) resumes into the three groups unchanged."""
    def moved(**kw):
        tr = _trainer(digits_fg, digits_ranges, tmp_path, strategy="aq", **kw)
        rng = {id(p) for p in tr.model.range_parameters()}
        before = [(id(p) in rng, p.detach().clone()) for p in tr.model.parameters()
                  if p.requires_grad]
        for s in range(3):
            tr.step(s)
        after = [p for p in tr.model.parameters() if p.requires_grad]
        return tr, {(r, not torch.equal(b, a)) for (r, b), a in zip(before, after)}
    _, changes = moved(lr=1e-3, lr_ranges=0.0)
    assert (True, True) not in changes and (False, True) in changes
    _, changes = moved(lr=0.0, lr_ranges=1e-2)
    assert (True, True) in changes and (False, True) not in changes
    tr, _ = moved(lr=1e-3, lr_ranges=1e-2)
    m, now = tr.model, tr.opt.state_dict()
    bits = {id(p) for p in m.bit_parameters()}
    old_order = [p for p in m.parameters() if id(p) not in bits] + m.bit_parameters()
    new_order = m.other_parameters() + m.bit_parameters() + m.range_parameters()
    at = {id(p): i for i, p in enumerate(new_order)}
    n0 = len(old_order) - len(bits)
    old = {"state": {i: now["state"][at[id(p)]] for i, p in enumerate(old_order)
                     if at[id(p)] in now["state"]},  # (bits that do not learn have none)
           "param_groups": [{**now["param_groups"][0], "params": list(range(n0))},
                            {**now["param_groups"][1],
                             "params": list(range(n0, len(old_order)))}]}
    back = tr._three_groups(old)
    assert [g["params"] for g in back["param_groups"]] == [
        g["params"] for g in now["param_groups"]]
    for i, st in now["state"].items():
        assert all(torch.equal(st[k], back["state"][i][k]) for k in st)
    tr.opt.load_state_dict(back)


def test_block_distillation_fits_the_block_outputs(digits_fg, digits_ranges, tmp_path):
    """--kd-blocks: the student's block outputs are pulled to the float model's (with no other
    loss term, their relative error falls); the tensors are the graph's single-tensor cuts."""
    from aq_runtime.models.digits import digits_data
    from aq_runtime.training.loop import block_kd, block_outputs
    kept = block_outputs(digits_fg)
    assert kept == ("conv1", "conv2", "pool")
    tr = _trainer(digits_fg, digits_ranges, tmp_path, strategy="uniform", weight_bits=3,
                  kd_only=True, alpha=0.0, kd=0.0, kd_blocks=1.0, lr=3e-3)
    assert tr.kept == kept
    x = torch.from_numpy(np.ascontiguousarray(digits_data()[0][:128]))

    def err():
        with torch.no_grad():
            return float(block_kd(tr.model.run(x, kept)[1], tr.teacher.run(x, kept)[1]))
    before = err()
    for s in range(15):
        tr.step(s)
    assert err() < 0.8 * before, (before, err())


def test_photos_report_heldout_per_epoch_but_choose_on_calibration(tmp_path):
    """--data photos: after each epoch eval.csv gets the held-out crops' numbers beside the
    calibration crops' ones; best.pt is the epoch best on the calibration crops."""
    from aq_runtime.data.photos import HELDOUT_PHOTOS, crops_of
    from aq_runtime.training.data import REPORT_STRIDE, load_train_data
    from aq_runtime.models.registry import build_float_graph
    d = load_train_data("photos", build_float_graph("efficientnet-lite0", 32), True)
    assert d.report_name == "heldout"
    assert (d.report_x == crops_of(HELDOUT_PHOTOS, 32)[0][::REPORT_STRIDE]).all()
    out = tmp_path / "run"
    cfg = TrainConfig(model="efficientnet-lite0", data="photos", kd_only=True, alpha=0.0,
                      input_size=32, batch_size=4, epoch_size=8, max_epoch=3, lr=1e-2,
                      eval_backend="reference", out=str(out))
    assert train(cfg, progress=False) == 0
    ev = rows(out / "eval.csv")
    assert len(ev) == 3
    for r in ev:
        assert 0 <= float(r["heldout_int_agree_float"]) <= 1 and "heldout_int_sqnr_db" in r
    chosen = load_checkpoint(out / "best.pt")["progress"]["best"]
    assert chosen == max(float(r["int_agree_float"]) for r in ev)


def test_synthetic_images_join_the_distillation_set_and_survive_resume(tmp_path, monkeypatch):
    """--synthetic N: N images made from the model's BatchNorm statistics join the photos'
    training images (not the validation crops), are kept in the run folder, and a resumed run
    reads them back instead of making them again."""
    import aq_runtime.export.synthetic as synthetic
    from aq_runtime.data.photos import CALIBRATION_PHOTOS
    from aq_runtime.models.registry import build_float_graph
    from aq_runtime.training.loop import SYNTHETIC_FILE, prepare
    monkeypatch.setattr(synthetic, "ITERS", 4)  # the real synthesis, a few steps of it
    base = dict(model="efficientnet-lite0", data="photos", kd_only=True, alpha=0.0,
                input_size=32, batch_size=4, epoch_size=8, max_epoch=1, lr=1e-3,
                eval_backend="reference", synthetic=2)
    run = tmp_path / "run"
    assert train(TrainConfig(**base, out=str(run), max_steps=1), progress=False) == 0
    made = np.load(run / SYNTHETIC_FILE, allow_pickle=False)
    assert made.shape == (2, 32, 32, 3) and made.dtype == np.uint8 and made.std() > 10
    fg = build_float_graph("efficientnet-lite0", 32)
    assert (synthetic.synthesize(fg, 2, iters=4, progress=False) == made).all()  # seeded

    def refuse(*_, **__):
        raise AssertionError("a resumed run made its synthetic images again")
    monkeypatch.setattr(synthetic, "synthesize", refuse)
    tr, start, _, _ = prepare(TrainConfig(out=str(run)), True, 0, 1)
    assert start == 1 and len(tr.data._images) == len(CALIBRATION_PHOTOS) + 2
    assert (tr.data.extra == made).all()
    assert (np.asarray(tr.data._images[-1]) == made[-1]).all()
    plain = prepare(TrainConfig(**{**base, "synthetic": 0}, out=str(tmp_path / "c")), False, 0,
                    1)[0].data
    assert (tr.data.val_x == plain.val_x).all()  # checkpoints are still chosen on the photos
    with pytest.raises(Exception, match="--kd-only"):
        prepare(TrainConfig(**{**FAST, "synthetic": 2}, out=str(tmp_path / "d")), False, 0, 1)
    with pytest.raises(Exception, match="--kd-only"):
        prepare(TrainConfig(**{**FAST, "mixup": 1.0}, out=str(tmp_path / "d")), False, 0, 1)
