"""CLI behaviour: aq-infer equals Session.run; every bad input gives one line, exit != 0,
no traceback, nothing left behind."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from aq_runtime.runtime import Session
from aq_runtime.runtime.predict import preprocess_file


def cli(name, *args):
    code = f"import sys; from aq_runtime.cli.{name} import main; sys.argv[0] = 'aq-{name}'; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def lite_small(tmp_path_factory):
    from aq_runtime.data.photos import CALIBRATION_PHOTOS, crops_of
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.format import write_aqz
    from aq_runtime.models.registry import build_float_graph
    fg = build_float_graph("efficientnet-lite0", 96)
    g = export_graph(fg, crops_of(CALIBRATION_PHOTOS[:2], 96)[0][::3],
                     ExportOptions(bits=8, progress=False))
    p = tmp_path_factory.mktemp("lite") / "lite96.aqz"
    write_aqz(g, p)
    return p


def test_infer_equals_session_run(lite_small, image_folder, tmp_path):
    out = tmp_path / "preds.json"
    r = cli("infer", lite_small, image_folder, "--format", "json", "--output", out, "--top-k", "3")
    assert r.returncode == 0, r.stderr
    recs = json.loads(out.read_text())
    s = Session(lite_small)
    paths = [rec["path"] for rec in recs]
    assert len(paths) == 4 and paths == sorted(paths)
    from pathlib import Path
    logits = s.run(np.stack([preprocess_file(s, Path(p)) for p in paths]))
    for rec, row in zip(recs, logits):
        top = np.argsort(-row.astype(np.int64), kind="stable")[:3]
        assert [t["index"] for t in rec["topk"]] == top.tolist()
        assert [t["logit"] for t in rec["topk"]] == row[top].tolist()
        assert rec["topk"][0]["label"] == s.labels[top[0]]
    csv_out = cli("infer", lite_small, image_folder, "--quiet")
    assert csv_out.returncode == 0
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0].startswith("path,index1,label1,logit1") and len(lines) == 5


def test_infer_skips_unreadable_files(lite_small, image_folder, tmp_path):
    bad = tmp_path / "mixed"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notimage.png").write_text("hello")
    (bad / "ok.jpg").write_bytes((image_folder / "chelsea.jpg").read_bytes())
    r = cli("infer", lite_small, bad, "--quiet")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 2
    assert r.stderr.count("skipped:") == 2 and "Traceback" not in r.stderr


def _one_line_error(r):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.strip().splitlines() if l and not l.startswith("infer:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def _rewrite(src, dst, edit_doc=None, edit_member=None, extra=None):
    with zipfile.ZipFile(src) as z:
        items = [(i, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(dst, "w") as z:
        for info, data in items:
            if info.filename == "graph.json" and edit_doc:
                doc = json.loads(data)
                edit_doc(doc)
                data = json.dumps(doc).encode()
            elif edit_member and info.filename != "graph.json":
                data = edit_member(info.filename, data)
            z.writestr(info, data)
        for name, data in (extra or {}).items():
            z.writestr(name, data)


def _set_first(doc, key, value):
    for n in doc["nodes"]:
        if n["op"] == "conv":
            ref = n["arrays"][key]
            doc["arrays"][ref] = {"dtype": doc["arrays"][ref]["dtype"],
                                  "shape": doc["arrays"][ref]["shape"], "fill": value}
            return


def _flip(name, data):
    if name.endswith("weights.npy"):
        b = bytearray(data)
        b[len(b) // 2] ^= 0xFF
        return bytes(b)
    return data


BAD_FILES = {
    "truncated": lambda src, dst: dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2]),
    "flipped byte": lambda src, dst: _rewrite(src, dst, edit_member=_flip),
    "version": lambda src, dst: _rewrite(src, dst, edit_doc=lambda d: d.update(version=99)),
    "pickle member": lambda src, dst: _rewrite(src, dst, extra={"arrays/evil.pkl": b"\x80\x04K\x01."}),
    "dotdot": lambda src, dst: _rewrite(src, dst, extra={"../evil.npy": b"x"}),
    "absolute": lambda src, dst: _rewrite(src, dst, extra={"/etc/evil": b"x"}),
    "shape": lambda src, dst: _rewrite(src, dst, edit_doc=lambda d: d["tensors"][1].update(shape=[3, 2, 2])),
    "bits": lambda src, dst: _rewrite(src, dst, edit_doc=lambda d: _set_first(d, "wbits", 17)),
    "shift 0": lambda src, dst: _rewrite(src, dst, edit_doc=lambda d: _set_first(d, "shift", 0)),
    "shift 63": lambda src, dst: _rewrite(src, dst, edit_doc=lambda d: _set_first(d, "shift", 63)),
}
EXPECT = {"truncated": "zip", "flipped byte": "SHA-256", "version": "version",
          "pickle member": "unexpected member", "dotdot": "..", "absolute": "absolute",
          "shape": "shape", "bits": "wbits", "shift 0": "shift", "shift 63": "shift"}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_hostile_aqz(case, digits_aqz, image_folder, tmp_path):
    bad = tmp_path / "bad.aqz"
    BAD_FILES[case](digits_aqz, bad)
    line = _one_line_error(cli("inspect", bad))
    assert EXPECT[case] in line and str(bad) in line


def test_pickle_array_refused(digits_aqz, tmp_path):
    import io
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    def swap(name, data):
        return buf.getvalue() if name.endswith("params_uint8.npy") else data
    bad = tmp_path / "p.aqz"
    _rewrite(digits_aqz, bad, edit_member=swap)
    assert "SHA-256" in _one_line_error(cli("inspect", bad))  # checksum first, then pickle
    from aq_runtime.format.reader import _Bad, _load_npy
    with pytest.raises(_Bad, match="pickle"):
        _load_npy(buf.getvalue(), "x", {"dtype": "uint8", "shape": [1]})


@pytest.mark.parametrize("what", ["missing", "notzip", "empty"])
def test_bad_model_files(what, tmp_path, image_folder):
    p = tmp_path / "m.aqz"
    if what == "notzip":
        p.write_text("not a zip")
    elif what == "empty":
        p.write_bytes(b"")
    line = _one_line_error(cli("infer", p, image_folder))
    assert str(p) in line


def test_bad_images_and_folders(digits_aqz, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no image" in _one_line_error(cli("infer", digits_aqz, empty))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_text("not an image")
    (junk / "b.png").write_bytes(b"")
    out = tmp_path / "out.csv"
    line = _one_line_error(cli("infer", digits_aqz, junk, "--output", out))
    assert "no readable images" in line and not out.exists()
    assert not list(tmp_path.glob(".tmp-*"))
    assert "no such" in _one_line_error(cli("infer", digits_aqz, tmp_path / "nope"))


def test_export_errors_leave_nothing(tmp_path):
    out = tmp_path / "x.aqz"
    assert "built-in" in _one_line_error(cli("export", "no-such-model", out))
    assert "--bits" in _one_line_error(cli("export", "digits-cnn", out, "--bits", "nofile.json"))
    bits = tmp_path / "b.json"
    bits.write_text('{"layers": {"nope": {"weight": 4}}}')
    assert "unknown layer" in _one_line_error(cli("export", "digits-cnn", out, "--bits", bits))
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_export_bits_json_and_inspect(tmp_path):
    bits = tmp_path / "b.json"
    bits.write_text(json.dumps({"weight": 6, "act": 7, "layers": {
        "conv1": {"weight": 16}, "fc": {"weight": [4] * 5 + [8] * 5}}}))
    out = tmp_path / "d.aqz"
    r = cli("export", "digits-cnn", out, "--bits", bits)
    assert r.returncode == 0, r.stderr
    r = cli("inspect", out, "--json")
    d = json.loads(r.stdout)
    rows = {x["name"]: x for x in d["layers"]}
    assert rows["conv1"]["weight_bits"] == [16, 16.0, 16]
    assert rows["fc"]["weight_bits"] == [4, 6.0, 8] and rows["conv2"]["act_bits"][0] == 7
    assert d["micronet"]["score"] > 0
    r = cli("inspect", out, "--bits-json")
    again = tmp_path / "again.json"
    again.write_text(r.stdout)
    out2 = tmp_path / "d2.aqz"
    assert cli("export", "digits-cnn", out2, "--bits", again).returncode == 0
    from aq_runtime.format import read_aqz
    g1, g2 = read_aqz(out), read_aqz(out2)
    for n1, n2 in zip(g1.weight_nodes(), g2.weight_nodes()):
        assert np.array_equal(n1.arrays["wbits"], n2.arrays["wbits"])
        assert np.array_equal(g1.tensors[n1.output].bits, g2.tensors[n2.output].bits)
    assert "score" in cli("inspect", out, "--cost").stdout
    r = cli("verify", out, tmp_path)  # no images there
    assert r.returncode != 0


def test_unavailable_backend(digits_aqz):
    from aq_runtime import AqError
    from aq_runtime.runtime.backends import unavailable
    with pytest.raises(AqError, match="unknown backend"):
        Session(digits_aqz, "tvm-gpu")
    if unavailable("tvm-cuda"):  # no GPU here (CI): one clear reason
        with pytest.raises(AqError, match="tvm-cuda.*needs"):
            Session(digits_aqz, "tvm-cuda")


def test_bench_cli_and_missing_backend(digits_aqz, image_folder, tmp_path):
    out = tmp_path / "b.json"
    r = cli("bench", digits_aqz, "--no-baselines", "--runs", "2", "--batch", "1", "4", "--json", out)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert {row["name"] for row in d["rows"]} >= {"aq reference", "aq numba"}
    assert all(row["median_ms"] > 0 for row in d["rows"])
    from aq_runtime.runtime.backends import unavailable
    if unavailable("tvm-cuda"):  # no GPU here (CI)
        line = _one_line_error(cli("infer", digits_aqz, image_folder, "--backend", "tvm-cuda"))
        assert "tvm-cuda" in line and "needs" in line


def test_infer_options_and_streaming_json(lite_small, image_folder, tmp_path):
    r1 = cli("infer", lite_small, image_folder, "--quiet", "--workers", "1", "--format", "json")
    r2 = cli("infer", lite_small, image_folder, "--quiet", "--workers", "2", "--batch", "3",
             "--format", "json")
    assert r1.returncode == 0 and r1.stdout == r2.stdout
    assert len(json.loads(r1.stdout)) == 4
    top = cli("infer", lite_small, image_folder, "--quiet", "--no-recursive")
    assert len(top.stdout.strip().splitlines()) == 1 + 2  # chelsea.jpg, horse.png
    png = cli("infer", lite_small, image_folder, "--quiet", "--exts", "png")
    assert len(png.stdout.strip().splitlines()) == 1 + 2  # horse.png, sub/coffee.png
    lim = cli("infer", lite_small, image_folder, "--quiet", "--limit", "1")
    assert len(lim.stdout.strip().splitlines()) == 2
    r = cli("infer", lite_small, image_folder)
    assert "images/s" in r.stderr


def test_pixel_cap(digits_aqz, tmp_path, monkeypatch):
    from PIL import Image

    from aq_runtime import AqError
    from aq_runtime.data import images
    Image.new("RGB", (400, 300)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100 // 2)
    with pytest.raises(AqError, match="larger than"):
        images.load_image(tmp_path / "big.png")


def test_export_bias_correction_flag(tmp_path):
    from aq_runtime.format import read_aqz
    on, off = tmp_path / "on.aqz", tmp_path / "off.aqz"
    assert cli("export", "digits-cnn", on).returncode == 0
    r = cli("export", "digits-cnn", off, "--no-bias-correction")
    assert r.returncode == 0, r.stderr
    g_on, g_off = read_aqz(on), read_aqz(off)
    assert g_on.meta["calibration"]["bias_correction"] is True
    assert g_off.meta["calibration"]["bias_correction"] is False
    pairs = list(zip(g_on.weight_nodes(), g_off.weight_nodes()))
    assert all((a.arrays["weight"] == b.arrays["weight"]).all() for a, b in pairs)
    assert any((a.arrays["bias"] != b.arrays["bias"]).any() for a, b in pairs)
    assert "bias correction off" in cli("inspect", off).stdout


def test_export_low_bit_flags(tmp_path, image_folder):
    """--bits auto --allocation channel --clipping mse --rounding learned from the CLI: the file
    records how it was made (a blended rounding target too), aq-inspect says so, aq-verify finds
    every backend equal."""
    from aq_runtime.format import read_aqz
    out = tmp_path / "low.aqz"
    r = cli("export", "digits-cnn", out, "--bits", "auto", "--budget", "0.5", "--allocation",
            "channel", "--clipping", "mse", "--rounding", "learned", "--rounding-iters", "20",
            "--rounding-images", "600", "--rounding-target", "block", "--weight-coding",
            "entropy")
    assert r.returncode == 0, r.stderr
    c = read_aqz(out).meta["calibration"]
    assert c["clipping"] == "mse" and c["rounding"] == "learned"
    assert c["rounding_target"] == "block"
    assert c["learned_rounding"]["iters"] == 20 and c["learned_rounding"]["images"] == 600
    assert c["weight_coding"] == "entropy" and "nearest_layers" in c["learned_rounding"]
    text = cli("inspect", out).stdout
    assert "weight clipping mse" in text and "learned rounding (each block's own" in text
    assert "weight codes entropy-coded" in text and "bits per weight as coded" in text
    r = cli("verify", out, image_folder)
    assert r.returncode == 0, r.stderr
    report = r.stdout.splitlines()
    from aq_runtime.runtime.backends import available_backends
    others = [b for b in available_backends() if b != "reference"]
    assert report[0].startswith("4 images (0 unreadable skipped), backends: ")
    assert [ln.split(":")[0] for ln in report[1:]] == others  # the reference runs once
    assert all(ln.endswith("identical (40 int32 logits)") for ln in report[1:])
    mix = tmp_path / "mix.aqz"
    r = cli("export", "digits-cnn", mix, "--bits", "4", "--rounding", "learned",
            "--rounding-iters", "5", "--rounding-images", "100", "--rounding-target", "blend",
            "--rounding-blend", "0.3")
    assert r.returncode == 0, r.stderr
    c = read_aqz(mix).meta["calibration"]
    assert c["rounding_target"] == "blend" and c["rounding_blend"] == 0.3
    assert "(0.3 x the float model's output + the rest each block's own" in cli("inspect",
                                                                               mix).stdout
    act = tmp_path / "act.aqz"
    r = cli("export", "digits-cnn", act, "--bits", "auto", "--budget", "0.5", "--act-bits",
            "auto", "--act-noise", "0.3", "--rounding", "nearest")
    assert r.returncode == 0, r.stderr
    assert read_aqz(act).meta["calibration"]["act_noise"] == 0.3
    text = cli("inspect", act).stdout
    assert "activation widths auto" in text and "avg act bits 8.00" not in text
    learned, blend = ["--rounding", "learned"], ["--rounding-target", "blend"]
    for bad in (["--rounding", "best"], [*learned, "--rounding-iters", "0"],
                ["--bits", "auto", "--allocation", "x"], ["--act-bits", "6"],
                ["--act-bits", "auto", "--act-noise", "-1"], ["--weight-coding", "zip"],
                [*learned, "--rounding-target", "layer"],
                [*learned, *blend, "--rounding-blend", "1.5"]):
        r = cli("export", "digits-cnn", tmp_path / "bad.aqz", *bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert not (tmp_path / "bad.aqz").exists()
    # an option given where it does nothing is an error, not silently ignored
    for bad, needs in ((["--budget", "0.5"], "--bits auto"),
                       (["--bits", "4", "--allocation", "channel"], "--bits auto"),
                       (["--rounding-iters", "5"], "--rounding learned"),
                       ([*blend], "--rounding learned"),
                       ([*learned, "--rounding-blend", "0.3"], "--rounding-target blend"),
                       (["--act-noise", "0.3"], "--act-bits auto"),
                       (["--qdq-weights", "u8"], "--to onnx-qdq")):
        r = cli("export", "digits-cnn", tmp_path / "bad.aqz", *bad)
        line, = r.stderr.strip().splitlines()
        assert r.returncode == 2 and line.startswith(f"error: {bad[-2]} applies only with")
        assert needs in line
        assert not (tmp_path / "bad.aqz").exists()
    # --to converts a file as it is: an export option beside it is an error
    r = cli("export", out, tmp_path / "bad.onnx", "--to", "onnx-int", "--bits", "4")
    line, = r.stderr.strip().splitlines()
    assert r.returncode == 2 and line == ("error: --bits does not apply with --to (it converts "
                                          "the .aqz as it is)")
    assert not (tmp_path / "bad.onnx").exists()


def test_low_budget_takes_the_best_recipe(tmp_path):
    """--bits auto below --budget 1 alone is the low-bit recipe (per-channel widths, MSE
    clipping, learned rounding, entropy-coded weights; at 0.5 each block fits its own output,
    above 0.5 a blend with the float model's); aq-inspect says
    so; a part given on the command line replaces only that part; at budget 1 and with uniform
    bits the plain export is unchanged; --help names each default."""
    from aq_runtime.format import read_aqz
    out = tmp_path / "low.aqz"
    r = cli("export", "digits-cnn", out, "--bits", "auto", "--budget", "0.5",
            "--rounding-iters", "5", "--rounding-images", "100")
    assert r.returncode == 0, r.stderr
    m = read_aqz(out).meta
    c = m["calibration"]
    assert (c["clipping"], c["rounding"], c["rounding_target"], c["weight_coding"]) == \
        ("mse", "learned", "block", "entropy")
    assert m["auto_bits"]["allocation"] == "channel" and m["auto_bits"]["budget"] == 0.5
    text = cli("inspect", out).stdout
    assert "weight widths auto: one per channel, within 0.5x uniform 8's weight bytes" in text
    assert "weight clipping mse" in text and "weight codes entropy-coded" in text
    assert "learned rounding (each block's own error" in text
    near = tmp_path / "near.aqz"
    r = cli("export", "digits-cnn", near, "--bits", "auto", "--budget", "0.5",
            "--rounding", "nearest")
    assert r.returncode == 0, r.stderr
    m = read_aqz(near).meta
    assert m["calibration"]["rounding"] == "nearest" and m["auto_bits"]["allocation"] == "channel"
    assert m["calibration"]["weight_coding"] == "entropy" and m["calibration"]["clipping"] == "mse"
    assert cli("export", "digits-cnn", tmp_path / "x.aqz", "--bits", "auto", "--budget", "0.75",
               "--rounding-iters", "0").returncode == 2  # checked before any work
    from aq_runtime.export.options import ExportOptions
    assert ExportOptions(bits="auto", budget=0.75).rounding_target == "blend"
    for bits in (["--bits", "auto"], ["--bits", "4"]):
        plain = tmp_path / "plain.aqz"
        r = cli("export", "digits-cnn", plain, *bits)
        assert r.returncode == 0, r.stderr
        m = read_aqz(plain).meta
        c = m["calibration"]
        assert c["clipping"] == "max" and c["rounding"] == "nearest" and "weight_coding" not in c
        assert m.get("auto_bits", {"allocation": "layer"})["allocation"] == "layer"
    help_text = " ".join(cli("export", "--help").stdout.split())
    for part in ("default: channel with --bits auto below --budget 1, else layer",
                 "default: mse with --bits auto below --budget 1, else max",
                 "default: learned with --bits auto below --budget 1, else nearest",
                 "block at 0.5 and below",
                 "default: entropy with --bits auto below --budget 1, else packed"):
        assert part in help_text, part


def test_export_interrupted_leaves_nothing(tmp_path):
    """Ctrl-C during learned rounding: exit 130, one line, no file and no temp file left. The
    signal goes once the rounding's progress bar shows (not after a fixed sleep); the child
    never outlives the test."""
    import os
    import select
    import signal
    import time
    out = tmp_path / "x.aqz"
    code = ("import sys; from aq_runtime.cli.export import main; sys.argv[0] = 'aq-export'; "
            "main()")
    # a terminal's foreground job: SIGINT at its default (a shell's background job inherits it
    # ignored, and Python then installs no KeyboardInterrupt handler at all)
    p = subprocess.Popen([sys.executable, "-c", code, "digits-cnn", str(out), "--rounding",
                          "learned", "--rounding-iters", "1000000"], stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen, deadline = b"", time.time() + 300
        while b"learned rounding" not in seen and time.time() < deadline and p.poll() is None:
            if select.select([p.stderr], [], [], 1.0)[0]:
                seen += os.read(p.stderr.fileno(), 65536)
        assert b"learned rounding" in seen and p.poll() is None, seen[-500:]
        time.sleep(2)  # inside the rounding loop
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        err = (seen + err).decode()
        assert p.returncode == 130 and "interrupted" in err and "Traceback" not in err, err[-800:]
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert list(tmp_path.iterdir()) == []
