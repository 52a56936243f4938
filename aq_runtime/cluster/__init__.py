"""Inference over many machines: the sharded, resumable output folder (shards.py) and the Ray
Data engine that fills it (ray_infer.py, `aq-infer --engine ray`)."""
