"""Method sets and sweep suites: `paper` is the paper's Table 1 rows we implement, the built-in suites
name real protocols and methods, and a malformed suite fails by name like a protocol."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from iufbench.errors import ConfigError
from iufbench.method_sets import expand_methods, method_sets
from iufbench.methods import METHODS
from iufbench.protocols import load_protocol
from iufbench.resources import builtin_dir, builtin_names
from iufbench.sweep.suite import load_suite


def test_the_paper_set_is_every_table1_method_we_implement_in_table_order() -> None:
    rows = pd.read_csv(builtin_dir("paper") / "table1.csv")
    assert method_sets()["paper"] == [m for m in dict.fromkeys(rows.method) if m in METHODS]
    ablation = pd.read_csv(builtin_dir("paper") / "table2.csv")
    assert method_sets()["ablation"] == list(dict.fromkeys(ablation.method))


def test_sets_expand_for_run_and_sweep_and_every_member_is_registered() -> None:
    for members in method_sets().values():
        assert expand_methods(members) == members
    assert expand_methods(["ablation", "padim"]) == ["iuf_no_oasa", "iuf_no_scl", "iuf_no_us", "iuf", "padim"]
    assert expand_methods(["all"]) == METHODS.names()
    with pytest.raises(ConfigError, match="unknown method 'papr'.*or a method set: ablation, paper"):
        expand_methods(["papr"])


def test_builtin_suites_name_real_protocols_methods_and_seeds() -> None:
    assert {"paper_table1", "paper_table2"} <= set(builtin_names("suites"))
    table1 = load_suite("paper_table1")
    assert table1.protocols == list(dict.fromkeys(pd.read_csv(builtin_dir("paper") / "table1.csv").protocol))
    assert expand_methods(table1.methods) == method_sets()["paper"]
    assert table1.seeds == [0, 1, 2] and table1.schedule == "paper"
    for name in builtin_names("suites"):
        suite = load_suite(name)
        for protocol in suite.protocols:
            assert load_protocol(protocol, require_roots=False).paper_schedule is not None


@pytest.mark.parametrize("text, message", [
    ("protocols: [demo]\nmethods: uniad\nseeds: [0]\nepochs: 3\n", "unknown keys \\['epochs'\\]"),
    ("protocols: [demo]\nmethods: uniad\n", "has no seeds"),
    ("protocols: [demo]\nmethods: uniad\nseeds: [0, x]\n", "'seeds' must be a non-empty list of whole numbers"),
    ("protocols: []\nmethods: uniad\nseeds: [0]\n", "'protocols' must be a name or a non-empty list"),
    ("protocols: [demo]\nmethods: uniad\nseeds: [0]\nschedule: slow\n", "'schedule' must be fast or paper"),
    ("- demo\n", "must be a mapping"),
])
def test_a_malformed_suite_fails_by_name(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_suite(str(path))


def test_list_shows_sets_and_suites(capsys: pytest.CaptureFixture) -> None:
    from iufbench.cli import main

    assert main(["list", "sets"]) == 0 and main(["list", "suites"]) == 0
    out = capsys.readouterr().out
    assert "paper     padim, patchcore, draem" in out and "paper_table2  The paper's Table 2" in out


def test_sweep_help_lists_every_option(capsys: pytest.CaptureFixture) -> None:
    from iufbench.cli import main

    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = capsys.readouterr().out
    for option in ("--protocols", "--methods", "--seeds", "--suite", "--schedule", "--epochs", "--set", "--device",
                   "--precision", "--compile", "--data-root", "--root", "--out", "--ray-address", "--cpus-per-job",
                   "--gpus-per-job", "--max-retries", "--resume"):
        assert f"{option} " in text or f"{option}\n" in text, option
