"""Image decoding (EXIF orientation, modes), photo splits and calibration methods."""

import numpy as np
import pytest
from PIL import Image

from aq_runtime import AqError
from aq_runtime.data.images import list_images, load_image, resize_center_crop
from aq_runtime.data.photos import (
    CALIBRATION_PHOTOS,
    HELDOUT_PHOTOS,
    crop_boxes,
    photo_paths,
)


def test_exif_orientation_applied(tmp_path):
    src = Image.open(photo_paths()["chelsea"]).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    src.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    src.save(tmp_path / "plain.jpg", quality=95)
    rot = load_image(tmp_path / "rot.jpg")
    assert rot.size == (src.size[1], src.size[0])
    plain = np.asarray(load_image(tmp_path / "plain.jpg").transpose(Image.Transpose.ROTATE_270))
    assert np.abs(np.asarray(rot).astype(int) - plain.astype(int)).mean() < 2


def test_modes_and_crop(tmp_path):
    for mode in ("L", "RGBA", "P", "I;16"):
        im = Image.new(mode if mode != "I;16" else "I;16", (40, 30))
        p = tmp_path / f"m_{mode.replace(';', '')}.png"
        im.save(p)
        a = resize_center_crop(load_image(p), 32, (24, 24))
        assert a.shape == (24, 24, 3) and a.dtype == np.uint8
    g = resize_center_crop(load_image(p, channels=1), 8, (8, 8))
    assert g.shape == (8, 8, 1)


def test_listing_is_recursive_and_filtered(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for f in ("x.JPG", "a/y.png", "a/b/z.webp", "a/readme.txt"):
        (tmp_path / f).write_bytes(b"")
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["x.JPG", "y.png", "z.webp"] or sorted(names) == ["x.JPG", "y.png", "z.webp"]
    with pytest.raises(AqError):
        list_images(tmp_path / "missing")


def test_split_is_disjoint_and_boxes_unique():
    assert not set(CALIBRATION_PHOTOS) & set(HELDOUT_PHOTOS)
    assert set(CALIBRATION_PHOTOS) | set(HELDOUT_PHOTOS) <= set(photo_paths())
    boxes = crop_boxes(600, 400)
    assert len(boxes) == len(set(boxes)) and all(l + s <= 600 and t + s <= 400 for l, t, s in boxes)


def test_photo_training_never_sees_the_heldout_photos():
    """`aq-train --data photos` trains on the calibration photos and chooses its checkpoint
    on their fixed crops: no held-out crop reaches training or checkpoint choice."""
    from aq_runtime.data.photos import crops_of
    from aq_runtime.models.registry import build_float_graph
    from aq_runtime.training.data import load_train_data
    fg = build_float_graph("efficientnet-lite0", 32)
    d = load_train_data("photos", fg, True)
    assert (d.val_x == crops_of(CALIBRATION_PHOTOS, 32)[0]).all()
    held = {a.tobytes() for a in crops_of(HELDOUT_PHOTOS, 32)[0]}
    assert not held & {a.tobytes() for a in d.val_x}
    assert len(d._images) == len(CALIBRATION_PHOTOS)


def test_training_crops_recoloured_only_when_asked():
    """--color-jitter / --grayscale recolour the random crops of `--data photos` (same crop
    geometry, seeded); off, the crops and the generator's later draws are what they were."""
    from aq_runtime.models.registry import build_float_graph
    from aq_runtime.training.config import TrainConfig
    from aq_runtime.training.data import load_train_data, random_resized_crop
    im = Image.open(photo_paths()["astronaut"]).convert("RGB")
    r0, r1 = np.random.default_rng(3), np.random.default_rng(3)
    plain = random_resized_crop(im, (32, 32), r0)
    same = random_resized_crop(im, (32, 32), r1, jitter=0.0, grayscale=0.0)
    assert (plain == same).all() and r0.random() == r1.random()
    grey = random_resized_crop(im, (32, 32), np.random.default_rng(3), grayscale=1.0)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert not (plain[..., 0] == plain[..., 1]).all()
    # the grey view is of the same crop: its mean follows the colour crop's luma
    luma = plain.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert abs(grey[..., 0].mean() - luma.mean()) < 2
    fg = build_float_graph("efficientnet-lite0", 32)
    d = load_train_data("photos", fg, True, epoch_size=8, jitter=0.4, grayscale=0.5)
    rngs = [np.random.default_rng(k) for k in range(8)]
    a = d.train_batch(np.arange(8), rngs)[0]
    b = d.train_batch(np.arange(8), [np.random.default_rng(k) for k in range(8)])[0]
    off = load_train_data("photos", fg, True, epoch_size=8).train_batch(
        np.arange(8), [np.random.default_rng(k) for k in range(8)])[0]
    assert (a == b).all() and not (a == off).all()
    def grey(x):
        return bool((x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all())
    colour = [k for k, im in enumerate(d._images) if not grey(np.asarray(im))]
    assert len(colour) >= 4  # grass and coins are grey photos: their crops prove nothing
    grey_views = [grey(a[k]) for k in colour]
    assert any(grey_views) and not all(grey_views)
    with pytest.raises(AqError, match="color-jitter"):
        TrainConfig(color_jitter=1.5).validate()


def test_training_mixup_blends_two_crops_for_distillation_only():
    """--mixup: each view is lam * crop + (1 - lam) * another crop, rounded, drawn from the
    sample's own generator (same seeds, same batch); only for --kd-only image sets."""
    from aq_runtime.models.registry import build_float_graph
    from aq_runtime.training.config import TrainConfig
    from aq_runtime.training.data import load_train_data, mixup_pair
    a = np.array([[[0, 10, 255]]], np.uint8)
    b = np.array([[[255, 11, 0]]], np.uint8)
    assert (mixup_pair(a, b, 1.0) == a).all() and (mixup_pair(a, b, 0.0) == b).all()
    assert mixup_pair(a, b, 0.5).tolist() == [[[128, 11, 128]]]  # 127.5, 10.5: half up
    fg = build_float_graph("efficientnet-lite0", 32)

    def batch(d):
        return d.train_batch(np.arange(8), [np.random.default_rng(k) for k in range(8)])[0]
    mixed = load_train_data("photos", fg, True, epoch_size=8, mixup=1.0)
    plain = batch(load_train_data("photos", fg, True, epoch_size=8))
    m1, m2 = batch(mixed), batch(mixed)
    assert (m1 == m2).all() and m1.dtype == np.uint8 and m1.shape == plain.shape
    assert not (m1 == plain).all()
    # sample k blends its plain crop (the generator's first draws) with a second crop
    r = np.random.default_rng(5)
    from aq_runtime.training.data import random_resized_crop
    first = random_resized_crop(mixed._images[5], (32, 32), r)
    second = random_resized_crop(mixed._images[int(r.integers(len(mixed._images)))], (32, 32), r)
    assert (first == plain[5]).all()
    assert (mixup_pair(first, second, float(r.beta(1.0, 1.0))) == m1[5]).all()
    with pytest.raises(AqError, match="--kd-only"):
        load_train_data("photos", fg, False, epoch_size=8, mixup=1.0)
    with pytest.raises(AqError, match="mixup"):
        TrainConfig(mixup=-1).validate()


def test_percentile_ranges_inside_minmax(digits_fg):
    from aq_runtime.export.calibrate import calibrate
    from aq_runtime.models.digits import digits_data
    x = digits_data()[0][:200]
    mm = calibrate(digits_fg, x, "minmax")
    pc = calibrate(digits_fg, x, "percentile", percentile=99.0)
    for k in mm:
        assert np.all(pc[k][0] >= mm[k][0] - 1e-9) and np.all(pc[k][1] <= mm[k][1] + 1e-9)
    assert any(np.any(pc[k][1] < mm[k][1] - 1e-6) for k in mm)
    with pytest.raises(ValueError):
        calibrate(digits_fg, x, "mystery")
