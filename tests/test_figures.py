"""Figures that stay readable with many methods: family colours, one line style per member, facets
per family, the training-curves figure and the `--methods` filter of `iufbench plot`, on a
synthetic 21-method run directory (no training)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from iufbench.cli import main
from iufbench.config import load_method_yaml
from iufbench.engine import method_traits
from iufbench.methods import METHODS
from iufbench.records import DEFAULT_FAMILY, RunDir, RunRecord
from iufbench.report.plots import FACET_OVER, curves_figure
from iufbench.report.runs import load_run
from iufbench.report.styles import method_styles

NEW = ["future_method", "someone_elses"]  # not in this registry: the default family
TASKS = [["a", "b"], ["c"], ["d"]]


def synthetic_run(folder: Path, methods: list[str], traits: bool = True) -> Path:
    """record.json, matrix.csv and losses.csv of a 3-step run of `methods`, 2 seeds, made-up scores."""
    rng = np.random.default_rng(0)
    rows, losses = [], []
    for method in methods:
        for seed in (0, 1):
            for step in range(len(TASKS)):
                for obj in [o for task in TASKS[: step + 1] for o in task]:
                    rows += [{"method": method, "seed": seed, "step": step, "object": obj, "metric": m,
                              "value": float(rng.uniform(0.5, 1.0))} for m in ("image_auroc", "pixel_auroc")]
                losses += [{"method": method, "seed": seed, "step": step, "epoch": e, "loss": 1.0 / (e + 1),
                            "mse": 0.8 / (e + 1)} for e in range(3)]
    path = folder / "synthetic"
    run_dir = RunDir(path)
    record = {"run_id": "synthetic", "status": "complete", "methods": {m: {} for m in methods}, "seeds": [0, 1],
              "protocol": {"name": "synthetic", "hash": "0" * 16, "resolved": {"tasks": TASKS}}, "steps": {}}
    if traits:  # as the engine writes them; without: a record older than traits (schema 1)
        record["schema"] = 2
        record["traits"] = {m: dataclasses.asdict(method_traits(m, load_method_yaml(m))) if m in METHODS
                            else {"family": DEFAULT_FAMILY} for m in methods}
    run_dir.write_record(RunRecord.from_dict(record))
    run_dir.write_matrix(rows)
    (path / "losses.csv").write_text(pd.DataFrame(losses).to_csv(index=False))
    return path


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_run(tmp_path_factory.mktemp("figures"), METHODS.names() + NEW)


def test_no_two_methods_share_colour_and_line_style(many: Path) -> None:
    run = load_run(many)
    assert len(run.methods) >= 18
    styles = method_styles(run.traits)
    pairs = [(s.color, str(s.linestyle)) for s in styles.values()]
    assert len(set(pairs)) == len(pairs)
    by_family: dict[str, set[str]] = {}
    for s in styles.values():
        by_family.setdefault(s.family, set()).add(s.color)
    assert all(len(colours) == 1 for colours in by_family.values())  # colour says the family
    assert len({next(iter(c)) for c in by_family.values()}) == len(by_family)  # and each its own
    assert styles["joint"].old_data and styles["uniad_replay"].old_data and not styles["uniad"].old_data
    assert styles["joint"].plot_kwargs()["markerfacecolor"] == "white"  # every old-data method: hollow
    assert styles["someone_elses"].family == DEFAULT_FAMILY
    assert styles["cad_cutpaste"].family == styles["cad_dne"].family  # from its YAML


def test_curves_facet_per_family_with_every_method_once(many: Path) -> None:
    run = load_run(many)
    fig = curves_figure(run)
    families = list(dict.fromkeys(t.family for t in run.traits.values()))
    assert len(run.methods) > FACET_OVER and len(fig.axes) == 2 * len(families)
    drawn = [line for ax in fig.axes[::2] for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert sorted(line.get_label().split(" ")[0] for line in drawn) == sorted(run.methods)
    keys = [(line.get_color(), tuple(line._unscaled_dash_pattern[1] or ())) for line in drawn]  # as drawn
    assert len(set(keys)) == len(keys)
    plt.close(fig)


def test_old_records_take_the_traits_their_methods_had_then(tmp_path: Path) -> None:
    run = load_run(synthetic_run(tmp_path, ["uniad", "joint", "iuf", "someone_elses"], traits=False))
    traits = run.traits
    assert traits["joint"].uses_old_data and traits["iuf"].family != traits["uniad"].family
    assert traits["someone_elses"].family == DEFAULT_FAMILY  # a method the code of that time lacked


def test_plot_draws_loss_curves_and_filters_methods(many: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    assert main(["plot", str(many), "--out", str(out), "--methods", "uniad,iuf,padim"]) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["curves_synthetic.png", "heatmap_synthetic_iuf.png", "heatmap_synthetic_padim.png",
                     "heatmap_synthetic_uniad.png", "losses_synthetic.png"]
    assert main(["plot", str(many), "--out", str(out), "--methods", "uniadd"]) == 2


def test_record_traits_of_a_real_run_name_the_family(tmp_path: Path) -> None:
    record = json.loads((synthetic_run(tmp_path, ["uniad_ewc"]) / "record.json").read_text())
    assert record["traits"]["uniad_ewc"] == {"family": "continual baselines", "sees_old_data": False,
                                             "keeps_old_data": False, "pixel_output": True, "inputs": "features",
                                             "components": None}
