"""Data: image files (decode, EXIF orientation, RGB, resize + center crop), the real sample
photos shipped by scikit-image and scikit-learn with a fixed calibration / held-out split,
and deterministic multi-scale crops of them. Never imports torch."""
