"""Shared fixtures (small real models exported once per test run) and the hardware markers:
a test marked `tvm`, `gpu`, `nogpu`, `x86` or `aarch64` is skipped, with the reason, on a
machine without what it needs (pyproject.toml registers them)."""

import platform
from functools import lru_cache

import pytest


@lru_cache(maxsize=1)
def _why_not() -> dict:
    from aq_runtime.kernels.tvm_cuda import gpu_present
    from aq_runtime.runtime.backends import unavailable
    gpu = gpu_present()
    machine = platform.machine().lower()
    return {
        "tvm": unavailable("tvm"),
        "gpu": None if gpu else "needs an NVIDIA GPU with a CUDA driver",
        "nogpu": "checks the refusal on a machine without a GPU; this one has one" if gpu else None,
        "x86": None if machine in ("x86_64", "amd64") else f"needs an x86-64 CPU, not {machine}",
        "aarch64": None if machine in ("aarch64", "arm64")
        else f"needs an aarch64 CPU, not {machine}",
    }


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in ("tvm", "gpu", "nogpu", "x86", "aarch64"):
            if item.get_closest_marker(name) is not None:
                why = _why_not()[name]
                if why:
                    item.add_marker(pytest.mark.skip(reason=f"[{name}] {why}"))


@pytest.fixture(scope="session")
def digits_fg():
    from aq_runtime.models.registry import build_float_graph
    return build_float_graph("digits-cnn")


@pytest.fixture(scope="session")
def digits_graph(digits_fg):
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.models.digits import digits_data
    return export_graph(digits_fg, digits_data()[0][:256], ExportOptions(bits=8, progress=False))


@pytest.fixture(scope="session")
def digits_aqz(tmp_path_factory, digits_graph):
    from aq_runtime.format import write_aqz
    p = tmp_path_factory.mktemp("m") / "digits.aqz"
    write_aqz(digits_graph, p)
    return p


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """Real photos as files of several formats, in nested folders."""
    from PIL import Image

    from aq_runtime.data.photos import photo_paths
    root = tmp_path_factory.mktemp("photos")
    paths = photo_paths()
    (root / "sub").mkdir()
    Image.open(paths["chelsea"]).save(root / "chelsea.jpg")
    Image.open(paths["coffee"]).save(root / "sub" / "coffee.png")
    Image.open(paths["camera"]).save(root / "sub" / "camera.bmp")  # grayscale
    Image.open(paths["horse"]).save(root / "horse.png")  # RGBA
    return root
