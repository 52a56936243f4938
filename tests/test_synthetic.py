"""Data-free calibration: images synthesized from the float model's BatchNorm statistics
(recorded when a model folds BatchNorm). They are deterministic, valid pixels, and their
BatchNorm statistics end far closer to the trained ones than the noise they start from."""

import numpy as np
import pytest

from aq_runtime import AqError


def _loss(fg, images):
    from aq_runtime.export.float_exec import normalize_input
    from aq_runtime.export.synthetic import bn_loss, bn_params
    return float(bn_loss(fg, normalize_input(images, fg), bn_params(fg)))


def test_models_record_their_batchnorm(digits_fg):
    from aq_runtime.models.registry import build_float_graph
    lite = build_float_graph("efficientnet-lite0", 64)
    for fg in (digits_fg, lite):
        with_bn = [n for n in fg.conv_nodes() if n.bn is not None]
        assert len(with_bn) == len(fg.conv_nodes()) - 1  # all but the classifier
        for n in with_bn:
            mean, std = n.bn
            assert mean.shape == std.shape == n.bias.shape and (std >= 0).all()


def test_synthetic_images_match_the_statistics(digits_fg):
    from aq_runtime.export.synthetic import synthesize
    from aq_runtime.models.digits import digits_data
    a = synthesize(digits_fg, 24, iters=60, batch=16, progress=False)
    assert a.shape == (24, 8, 8, 1) and a.dtype == np.uint8
    assert (synthesize(digits_fg, 24, iters=60, batch=16, progress=False) == a).all()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=a.shape, dtype=np.uint8)
    real = digits_data()[0][:24]
    assert _loss(digits_fg, a) < 0.5 * _loss(digits_fg, noise)
    assert _loss(digits_fg, a) < 2 * _loss(digits_fg, real) + 0.05
    assert len(np.unique(a.reshape(24, -1), axis=0)) == 24


def test_synthetic_refuses_a_model_without_batchnorm(digits_fg):
    from dataclasses import replace

    from aq_runtime.export.synthetic import synthesize
    bare = replace(digits_fg, nodes=[replace(n, bn=None) for n in digits_fg.nodes])
    with pytest.raises(AqError, match="no BatchNorm statistics"):
        synthesize(bare, 4, iters=2, progress=False)
    with pytest.raises(AqError, match="positive"):
        synthesize(digits_fg, 0, progress=False)


def test_data_free_export_from_the_cli(tmp_path, digits_fg):
    """`aq-export digits-cnn --calib none --synthetic N`: a data-free model, recorded in the
    file's calibration metadata, exact on every backend; without --synthetic: one line."""
    import subprocess
    import sys

    from aq_runtime.format import read_aqz
    from aq_runtime.models.digits import digits_data
    from aq_runtime.runtime import Session, available_backends

    def cli(*args):
        code = ("import sys; from aq_runtime.cli.export import main; sys.argv[0] = 'aq-export';"
                " main()")
        return subprocess.run([sys.executable, "-c", code, *map(str, args)],
                              capture_output=True, text=True, timeout=300)
    out = tmp_path / "free.aqz"
    r = cli("digits-cnn", out, "--calib", "none", "--synthetic", "16")
    assert r.returncode == 0, r.stderr
    assert "16 images (16 synthesized from the model's BatchNorm statistics)" in r.stderr
    g = read_aqz(out)
    assert g.meta["calibration"]["synthetic"] == 16 and g.meta["calibration"]["images"] == 16
    _, _, x, y = digits_data()
    ref = Session(g, "reference").run(x)
    for b in available_backends():
        assert (Session(g, b).run(x[:32]) == ref[:32]).all(), b
    accuracy = (ref.argmax(1) == y).mean()
    assert accuracy >= 0.95, accuracy  # calibrated on no digit at all (real digits: 99.2%)
    bad = cli("digits-cnn", tmp_path / "x.aqz", "--calib", "none")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "calibration" in bad.stderr
    assert not (tmp_path / "x.aqz").exists()
