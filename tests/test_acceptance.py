"""End-to-end acceptance: the demo shows forgetting and the joint upper bound; the real-image
DeepPCB (+ tire) stream runs to completion with image and pixel metrics for every object."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, TINY_OVERRIDES
from iufbench.engine import RunOptions, run
from iufbench.metrics import summarise_matrix
from iufbench.protocols import load_protocol


@pytest.mark.slow
def test_demo_uniad_forgets_and_joint_is_the_upper_bound(tmp_path: Path) -> None:
    protocol = load_protocol("demo")
    run_dir = run(protocol, RunOptions(methods=["uniad", "joint"], out_dir=tmp_path, run_id="demo", progress=False))
    summary = summarise_matrix(run_dir.read_matrix(), protocol.learned_at()).set_index(["method", "metric"])
    uniad, joint = summary.loc[("uniad", "image_auroc")], summary.loc[("joint", "image_auroc")]
    assert uniad["paper_fm"] > 0.05, f"UniAD should forget on the demo (paper FM {uniad['paper_fm']:.3f})"
    assert joint["final_acc"] >= uniad["final_acc"]
    assert 0.5 < uniad["paper_acc"] < 1.0  # learns something, and the data is not trivial


@pytest.mark.slow
@pytest.mark.shared_data
def test_deeppcb_and_tire_stream_runs_with_image_and_pixel_metrics(tmp_path: Path) -> None:
    if not (SHARED_DATA / "deeppcb").is_dir() or not (SHARED_DATA / "mvtec3d").is_dir():
        pytest.skip(f"real images not available at {SHARED_DATA} (the team's shared data folder)")
    protocol = load_protocol("deeppcb_tire", roots={"deeppcb": str(SHARED_DATA / "deeppcb"),
                                                    "mvtec3d": str(SHARED_DATA / "mvtec3d")})
    run_dir = run(protocol, RunOptions(methods=["uniad"], overrides=list(TINY_OVERRIDES), out_dir=tmp_path,
                                       run_id="pcb", progress=False))
    matrix = run_dir.read_matrix()
    for step in range(len(protocol.tasks)):
        seen = {o for t in protocol.tasks[: step + 1] for o in t}
        at_step = matrix[matrix.step == step]
        assert set(at_step.object) == seen
        for metric in ("image_auroc", "pixel_auroc", "pixel_aupro"):
            values = at_step[at_step.metric == metric].value
            assert len(values) == len(seen) and np.isfinite(values).all(), (step, metric)
