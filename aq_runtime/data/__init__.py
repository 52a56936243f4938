"""Data: image files (decode, EXIF orientation, RGB, resize + center crop), the real sample
photos shipped by scikit-image and scikit-learn with a fixed calibration / held-out split,
deterministic multi-scale crops of them, and seeded augmented views of calibration images
(random resized crops, flips, colour jitter). Never imports torch."""
