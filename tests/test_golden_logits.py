"""The same integers on every CPU: committed .aqz models run on fixed images give int32 logits
whose SHA-256 is committed (tests/make_golden.py wrote both), on the reference and on every
backend this machine has. A CPU, library or kernel that computes differently fails here."""

import json

import pytest

from aq_runtime.format import read_aqz
from aq_runtime.runtime import Session, available_backends

from make_golden import DATA, MODELS, golden_images, logits_hash

HASHES = json.loads((DATA / "golden_logits.json").read_text())


@pytest.mark.parametrize("name", MODELS)
def test_logits_hash_equals_the_committed_one(name):
    g = read_aqz(DATA / f"golden_{name}.aqz")
    x = golden_images(name, g.tensors[g.input].shape)
    for b in ["reference"] + [b for b in available_backends() if b != "reference"]:
        assert logits_hash(Session(g, b).run(x)) == HASHES[name], b
