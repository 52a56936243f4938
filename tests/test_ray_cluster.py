"""`aq-infer --engine ray` on a two-node Ray cluster on this machine (ray.cluster_utils.Cluster:
a head for the driver and the read tasks, two worker nodes), the workers loading kernels
compiled ahead: one node forced to the AVX2 kernels (AQ_TVM_ISA in its environment), the other
on this CPU's best, and the output equals one machine's byte for byte; a worker node removed
mid-run (and a fresh one joining, as an autoscaler would) loses and duplicates nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray", reason="needs the [ray] extra (Ray Data)")

from ray.cluster_utils import Cluster  # noqa: E402
from test_ray import MODEL, concatenated_csv, make_images, parts, single_machine  # noqa: E402

from aq_runtime.cluster.ray_infer import infer_ray  # noqa: E402
from aq_runtime.kernels.tvm.target import supported_isas  # noqa: E402

pytestmark = [pytest.mark.tvm, pytest.mark.x86]  # nodes on AVX2 and on this CPU's best

WORKER = {"aq_worker": 1}  # the actors' custom resource: only the two worker nodes have it


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 96 << 20, "include_dashboard": False})
    fast = c.add_node(num_cpus=1, resources=WORKER, object_store_memory=96 << 20)
    slow = c.add_node(num_cpus=1, resources=WORKER, object_store_memory=96 << 20,
                      env_vars={"AQ_TVM_ISA": "avx2"})
    ray.init(address=c.address, log_to_driver=False)
    c.wait_for_nodes()
    yield c, fast, slow
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    k = tmp_path_factory.mktemp("k") / "lite0.kernels"
    r = subprocess.run([sys.executable, "-m", "aq_runtime.cli.compile", str(MODEL), "-o", str(k)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return k


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("cluster_images"), 60)


def test_mixed_kernels_equal_one_machine(cluster, kernels, images, tmp_path):
    out = tmp_path / "out"
    m = infer_ray(MODEL, images, out, kernels=kernels, workers=2, batch=4, shard_size=8,
                  resources=WORKER, progress=False)
    assert concatenated_csv(out) == single_machine(MODEL, images, tmp_path)
    isas = {n["isa"] for n in m["workers"]}
    assert {n["backend"] for n in m["workers"]} == {"tvm"}
    assert isas == {"avx2", supported_isas()[0]}  # one machine when avx2 is the best it has
    assert len({n["node"] for n in m["workers"]}) == 2
    assert m["rows"] == 60 and m["error_rows"] == 3


def test_node_lost_mid_run(cluster, kernels, images, tmp_path):
    c, fast, slow = cluster
    out = tmp_path / "out"
    events = []

    def lose_a_node(k: int) -> None:  # after the first shard: the AVX2 node goes, a new one joins
        if k == 0:
            c.remove_node(slow)
            c.add_node(num_cpus=1, resources=WORKER, object_store_memory=96 << 20)
            events.append(len(parts(out)))
    m = infer_ray(MODEL, images, out, kernels=kernels, workers=2, batch=2, shard_size=4,
                  resources=WORKER, progress=False, on_shard=lose_a_node)
    assert events == [1] and m["shards"] == 16  # removed while 15 shards were still to do
    assert concatenated_csv(out) == single_machine(MODEL, images, tmp_path)
    assert m["rows"] == 60 and m["error_rows"] == 3
    assert json.loads((out / "_SUCCESS").read_text())["rows"] == 60
