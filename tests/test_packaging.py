"""A non-editable install finds the built-in protocols, method configs and the paper's numbers."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_protocols_and_method_configs(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("iufbench-*.whl"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import iufbench, iufbench.resources as r; from iufbench.protocols import load_protocol;"
            "from iufbench.config import resolve_method_config;"
            "p = load_protocol('mvtec_14_1', data_root='/x');"
            "print(iufbench.__file__); print(','.join(r.builtin_names('protocols')));"
            "print(resolve_method_config('joint', p, 'paper')['train']['epochs']);"
            "from iufbench.report.tables import paper_numbers; print(len(paper_numbers('table1')));"
            "from iufbench.sweep.suite import load_suite; from iufbench.method_sets import method_sets;"
            "print(len(load_suite('paper_table1').protocols), len(method_sets()['paper']));"
            "import jinja2; print(jinja2.PackageLoader('iufbench.report', 'templates').list_templates())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                         check=True, capture_output=True, text=True).stdout.splitlines()
    assert out[0].startswith(str(site))  # the unpacked wheel, not the checkout
    assert {"demo", "mvtec_14_1", "visa_8_1", "deeppcb_6_1"} <= set(out[1].split(","))
    assert out[2] == "[1601, 2899]"
    assert out[3] == "336"  # results/paper/table1.csv shipped as iufbench/builtin/paper
    assert out[4] == "7 12"  # suites/ as iufbench/builtin/suites, methods/_sets.yaml with the method configs
    assert out[5] == "['report.html.j2']"  # the HTML report's template ships as package data
