"""Reports from real (tiny) runs: Table 1 / Table 2 in LaTeX, Markdown and CSV, the paper's numbers,
the figures, the qualitative sample the engine keeps, and `iufbench check` failing on lowered scores."""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_OVERRIDES
from iufbench.cli import main
from iufbench.engine import RunOptions, run
from iufbench.protocols import load_protocol
from iufbench.report.check import cpu_kernels
from iufbench.report.runs import load_run
from iufbench.report.tables import aggregate, paper_numbers, report, run_scores


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_root: Path) -> Path:
    """uniad, joint and iuf_no_scl, 2 seeds, on a 2-task tiny protocol."""
    from conftest import write_protocol

    folder = tmp_path_factory.mktemp("report")
    proto = load_protocol(str(write_protocol(folder, tiny_root, [["fabric", "screw"], ["wood"]])))
    opts = RunOptions(methods=["uniad", "joint", "iuf_no_scl"], seeds=[0, 1], overrides=list(TINY_OVERRIDES),
                      out_dir=folder, run_id="tiny-run", progress=False)
    return run(proto, opts).path


def test_engine_keeps_a_qualitative_sample_of_old_objects(run_dir: Path) -> None:
    maps = load_run(run_dir).dir.read_maps("uniad", 0)
    assert set(maps["objects"]) == {"fabric", "screw"}  # old objects only: wood is learned last
    n = len(maps["objects"])
    assert maps["images"].shape == (n, 64, 64, 3) and maps["masks"].shape == (n, 64, 64)
    assert maps["maps"].shape == (n, 64, 64) and np.isfinite(maps["maps"].astype(np.float32)).all()
    assert maps["masks"].any(axis=(1, 2)).all()  # defective images, so every mask marks something


def test_markdown_table1_marks_best_and_old_data(run_dir: Path) -> None:
    text = report([load_run(run_dir)], "table1", "md")
    lines = text.splitlines()
    assert "tiny ACC" in lines[0] and "tiny FM" in lines[0]
    joint = next(line for line in lines if line.startswith("| joint †"))
    assert "**" not in joint  # sees old data: never marked best
    agg = aggregate(run_scores([load_run(run_dir)], "paper"))
    inc = agg[(agg["method"] != "joint") & (agg["stat"] == "acc") & (agg["level"] == "image")]
    best = inc.loc[inc["mean"].idxmax(), "method"]
    best_line = next(line for line in lines if line.startswith(f"| {best} "))
    assert best_line.split("|")[2].strip().startswith("**")
    assert "±" in text  # two seeds: mean ± std
    assert "paper computes" in text


def test_standard_definition_changes_the_numbers(run_dir: Path) -> None:
    paper = aggregate(run_scores([load_run(run_dir)], "paper"))
    standard = aggregate(run_scores([load_run(run_dir)], "standard"))
    assert not np.allclose(paper["mean"], standard["mean"])
    assert "Chaudhry" in report([load_run(run_dir)], "table1", "md", "standard")


def test_csv_round_trips_through_pandas(run_dir: Path) -> None:
    text = report([load_run(run_dir)], "table1", "csv")
    back = pd.read_csv(io.StringIO(text))
    again = pd.read_csv(io.StringIO(back.to_csv(index=False)))
    pd.testing.assert_frame_equal(back, again)
    seed_values = run_scores([load_run(run_dir)], "paper")
    one = seed_values[(seed_values["method"] == "uniad") & (seed_values["level"] == "image")
                      & (seed_values["stat"] == "acc")]["value"]
    row = back[(back["method"] == "uniad") & (back["level"] == "image") & (back["stat"] == "acc")].iloc[0]
    assert row["mean"] == pytest.approx(one.mean()) and row["std"] == pytest.approx(one.std(ddof=1))
    assert row["n"] == 2 and not row["uses_old_data"]


def test_table2_lists_only_ablations_with_their_components(run_dir: Path) -> None:
    text = report([load_run(run_dir)], "table2", "md")
    assert "iuf_no_scl" in text and "uniad" not in text.split("\n\n")[0]
    row = next(line for line in text.splitlines() if line.startswith("| iuf_no_scl"))
    assert [c.strip() for c in row.split("|")[2:5]] == ["✓", "✗", "✓"]  # OASA, SCL, US
    traits = load_run(run_dir).record.traits  # the engine took them from the method and its config
    assert traits["iuf_no_scl"].components == {"OASA": True, "SCL": False, "US": True}
    assert traits["uniad"].components is None and traits["joint"].sees_old_data


def test_paper_numbers_are_stored_once_and_added_as_labelled_rows(run_dir: Path, tmp_path: Path) -> None:
    table1 = paper_numbers("table1")
    assert len(table1) == 336 and len(paper_numbers("table2")) == 64
    assert table1["mean"].isna().sum() == 42  # CAD rows have no pixel numbers ("NA")
    # a copy of the run that claims to be MVTec 14-1 gets the paper's rows for that protocol only
    fake = tmp_path / "fake"
    shutil.copytree(run_dir, fake)
    record = json.loads((fake / "record.json").read_text())
    record["protocol"]["name"] = "mvtec_14_1"
    (fake / "record.json").write_text(json.dumps(record))
    text = report([load_run(fake)], "table1", "md", with_paper=True)
    assert "UniAD + EWC (reported in paper)" in text and "Ours (reported in paper)" in text
    assert "visa" not in text and "n/a" in text  # CAD rows: no pixel numbers
    line = next(line for line in text.splitlines() if line.startswith("| Ours (reported in paper)"))
    assert "96.0 / 96.3" in line and "**" not in line


def test_latex_table_compiles(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "table1.tex"
    assert main(["report", str(run_dir), "--format", "latex", "--out", str(out)]) == 0
    body = out.read_text()
    assert r"\textbf{" in body and r"joint $\dagger$" in body
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (apt-get install texlive-latex-recommended); the table was written")
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage{amssymb}\\begin{document}\n"
                   f"{body}\n\\end{{document}}\n")
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_plots_are_written(run_dir: Path, tmp_path: Path) -> None:
    assert main(["plot", str(run_dir), "--out", str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    for stem in ("curves_tiny-run", "heatmap_tiny-run_uniad", "heatmap_tiny-run_joint", "qualitative_tiny-run"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    assert all((tmp_path / n).stat().st_size > 5000 for n in names)


def test_check_passes_unchanged_and_fails_lowered_scores(run_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    ref = tmp_path / "ref.json"
    assert main(["check", str(run_dir), "--against", str(ref), "--update"]) == 0
    assert main(["check", str(run_dir), "--against", str(ref)]) == 0
    assert "OK" in capsys.readouterr().out
    lowered = tmp_path / "lowered"
    shutil.copytree(run_dir, lowered)
    matrix = pd.read_csv(lowered / "matrix.csv")
    target = (matrix["method"] == "uniad") & (matrix["seed"] == 0) & (matrix["step"] == 1) & (
        matrix["object"] == "fabric") & (matrix["metric"] == "pixel_auroc")
    matrix.loc[target, "value"] -= 0.01  # one point lower: beyond the 0.5 tolerance
    matrix.to_csv(lowered / "matrix.csv", index=False)
    assert main(["check", str(lowered), "--against", str(ref)]) == 1
    out = capsys.readouterr().out
    assert "cell/uniad/0/1/fabric/pixel_auroc" in out and "FAILED" in out
    assert main(["check", str(lowered), "--against", str(ref), "--tolerance", "2"]) == 0
    matrix.loc[target, "value"] += 0.03  # higher than the reference: an improvement passes
    matrix.to_csv(lowered / "matrix.csv", index=False)
    assert main(["check", str(lowered), "--against", str(ref)]) == 0


def test_check_against_another_cpus_reference_compares_summaries_only(run_dir: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    ref = tmp_path / "ref.json"
    assert main(["check", str(run_dir), "--against", str(ref), "--update"]) == 0
    data = json.loads(ref.read_text())
    assert data["cpu"] == cpu_kernels()
    cell = "cell/uniad/0/1/fabric/pixel_auroc"
    data["scores"][cell] += 0.05  # the run is 5 points below this cell: a cell regression on this CPU
    ref.write_text(json.dumps(data))
    assert main(["check", str(run_dir), "--against", str(ref)]) == 1
    capsys.readouterr()
    data["cpu"] = "GenuineIntel avx512"  # written elsewhere: cells are not comparable, summaries are
    ref.write_text(json.dumps(data))
    assert main(["check", str(run_dir), "--against", str(ref)]) == 0
    out = capsys.readouterr().out
    assert "another CPU" in out and "OK" in out and cell not in out
    summary = next(k for k in data["scores"] if k.startswith("summary/uniad/0/image_auroc/paper_acc"))
    data["scores"][summary] += 0.04  # 4 points: beyond the cross-CPU tolerance
    ref.write_text(json.dumps(data))
    assert main(["check", str(run_dir), "--against", str(ref)]) == 1
    assert summary in capsys.readouterr().out


def test_report_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["check", str(tmp_path), "--against", str(tmp_path / "none.json")]) == 2


def test_memory_column_shows_the_recorded_state_after_the_last_step(run_dir: Path) -> None:
    run_ = load_run(run_dir)
    text = report([run_], "table1", "md", with_memory=True)
    uniad = next(line for line in text.splitlines() if line.startswith("| uniad "))
    recorded = np.mean([run_.record.steps[f"uniad/seed{s}"]["1"].state_bytes for s in (0, 1)]) / 2**20
    assert "tiny STATE MiB" in text and uniad.rstrip(" |").endswith(f"{recorded:.2f}")
    csv = pd.read_csv(io.StringIO(report([run_], "table1", "csv", with_memory=True)))
    row = csv[(csv["method"] == "uniad") & (csv["stat"] == "state_mib")].iloc[0]
    assert row["mean"] == pytest.approx(recorded) and row["n"] == 2
    assert "STATE" not in report([run_], "table1", "md")  # only when asked


def test_methods_option_cuts_the_table_to_those_methods(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(run_dir), "--methods", "uniad,iuf_no_scl", "--with-memory"]) == 0
    rows = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith("| method")]
    assert sorted(rows) == ["iuf_no_scl", "uniad"]
    assert main(["report", str(run_dir), "--methods", "uniad,iuf_nope"]) == 2
    err = capsys.readouterr().err
    assert "iuf_nope appear in none of the runs" in err and "joint" in err


def _html(run_dir: Path, out: Path) -> str:
    assert main(["report", str(run_dir), "--format", "html", "--out", str(out), "--with-memory"]) == 0
    return out.read_text()


def test_html_report_is_one_self_contained_page(run_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    page = _html(run_dir, tmp_path / "r.html")
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) >= 6 and all(s.startswith("data:image/png;base64,") for s in sources)  # curves, losses, ...
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from the network
    record = load_run(run_dir).record
    for fact in (record.protocol.hash, record.versions["torch"], "Table 1", "Table 2", "iuf_no_scl",
                 "joint †", "peak RSS"):
        assert fact in page
    assert main(["report", str(run_dir), "--format", "html"]) == 2  # a page needs a file
    assert "--out" in capsys.readouterr().err


def test_html_report_renders_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    """The page as a browser shows it: the table's method names in the DOM text, every figure decoded
    (non-zero natural width, counted by the page's own script), and a 1600 px wide screenshot."""
    from PIL import Image

    browser = next((b for b in ("chromium", "chromium-browser") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium); the HTML test needs a real browser")
    page = tmp_path / "r.html"
    n_images = _html(run_dir, page).count("<img ")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1600,2400"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert f'data-images-loaded="{n_images}/{n_images}"' in dom
    table = re.search(r'<table class="results">(.*?)</table>', dom, re.S).group(1)
    names = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r'<td class="name">(.*?)</td>', table)]
    assert names == ["uniad", "joint †", "iuf_no_scl"]
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    with Image.open(shot) as image:
        assert image.size[0] == 1600
        assert len(image.convert("L").getcolors(256 * 256) or []) > 20  # not a blank page
