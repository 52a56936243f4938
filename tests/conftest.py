"""Shared fixtures: small real models exported once per session."""

import pytest


@pytest.fixture(scope="session")
def digits_fg():
    from aq_runtime.models.registry import build_float_graph
    return build_float_graph("digits-cnn")


@pytest.fixture(scope="session")
def digits_graph(digits_fg):
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.export.api import export_graph
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
