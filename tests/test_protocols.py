"""Protocol files: the shipped task streams, and structural errors caught before any training."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from iufbench.config import resolve_method_config
from iufbench.errors import ConfigError
from iufbench.protocols import list_protocols, load_protocol
from iufbench.resources import builtin_names

MVTEC = ["bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw",
         "tile", "toothbrush", "transistor", "wood", "zipper"]
VISA = ["candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2", "pcb3",
        "pcb4", "pipe_fryum"]

EXPECTED = {
    "mvtec_14_1": [MVTEC[:14], ["zipper"]],
    "mvtec_10_5": [MVTEC[:10], MVTEC[10:]],
    "mvtec_10_1": [MVTEC[:10]] + [[o] for o in MVTEC[10:]],
    "mvtec_3_3": [MVTEC[i:i + 3] for i in range(0, 15, 3)],
    "mvtec_1x15": [[o] for o in MVTEC],
    "visa_11_1": [VISA[:11], ["pipe_fryum"]],
    "visa_8_4": [VISA[:8], VISA[8:]],
    "visa_8_1": [VISA[:8]] + [[o] for o in VISA[8:]],
    "visa_1x12": [[o] for o in VISA],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_paper_protocols_have_the_reference_groupings(name: str) -> None:
    proto = load_protocol(name, data_root="/somewhere")
    assert [list(t) for t in proto.tasks] == EXPECTED[name]
    assert proto.image_size == (224, 224)
    assert proto.backbone.name.startswith("tf_efficientnet_b4") and proto.backbone.weights == "hub"
    assert proto.backbone.out_indices == (0, 1, 2, 3)


def test_every_builtin_protocol_loads_and_paper_schedules_resolve() -> None:
    names = builtin_names("protocols")
    assert {"demo", "deeppcb_6_1", "deeppcb_tire", *EXPECTED} <= set(names)
    assert [n for n, _ in list_protocols()] == names
    for name in names:
        sources = yaml.safe_load((Path(__file__).parents[1] / "protocols" / f"{name}.yaml").read_text())["sources"]
        proto = load_protocol(name, roots={s: "/x" for s, e in sources.items() if e["dataset"] != "synthetic"})
        if proto.paper_schedule:
            cfg = resolve_method_config("uniad", proto, "paper")
            assert cfg["train"]["epochs"] == proto.paper_schedule["epochs"]
    assert resolve_method_config("uniad", load_protocol("mvtec_14_1", data_root="/x"), "paper")["train"][
        "epochs"] == [1601, 2899]


def test_paper_protocol_without_root_says_how_to_pass_it() -> None:
    with pytest.raises(ConfigError, match="needs the dataset root .* --data-root"):
        load_protocol("mvtec_14_1")


def test_unknown_protocol_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown protocol 'mvtec_14'.*mvtec_14_1"):
        load_protocol("mvtec_14")


def _write(tmp_path: Path, **fields) -> str:
    raw = {"image_size": 64, "sources": {"a": {"dataset": "mvtec", "root": "/r"}}, "tasks": [["x"], ["y"]]}
    raw.update(fields)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("fields, match", [
    ({"tasks": [["x", "y"], ["x"]]}, "appears twice"),
    ({"tasks": [["x"], []]}, "task 1 is empty"),
    ({"tasks": []}, "non-empty list"),
    ({"sources": {"a": {"dataset": "mvtek", "root": "/r"}}}, "unknown dataset 'mvtek'.*Did you mean 'mvtec'"),
    ({"colour": 1}, "unknown keys \\['colour'\\]"),
    ({"tasks": [["b/x"], ["y"]]}, "unknown source"),
    ({"paper_schedule": {"epochs": [1], "batch_size": [8, 8]}}, "paper_schedule.epochs needs one whole number"),
    # these used to pass, or fail later with a TypeError / ValueError traceback
    ({"paper_schedule": {"epochs": 5}}, "paper_schedule needs epochs and batch_size"),
    ({"paper_schedule": {"epochs": [1, 1], "batch_size": [8, 0]}}, "paper_schedule.batch_size needs one whole"),
    ({"image_size": "224"}, "image_size must be a whole number >= 32 or \\[height, width\\]; got '224'"),
    ({"image_size": [224]}, "image_size must be"),
    ({"image_size": 0}, "image_size must be"),
    ({"image_size": [224, 112.5]}, "image_size must be"),
    ({"backbone": {"nam": "x"}}, "unknown backbone key\\(s\\) \\['nam'\\]; valid: .*name"),
    ({"backbone": "tf_efficientnet_b4"}, "'backbone' must be a mapping"),
    ({"sources": {"a": {"root": "/r"}}}, "source 'a' has no dataset"),
    ({"sources": {"a": "/data/mvtec"}}, "'sources.a' must be a mapping"),
    ({"sources": {"a": {"dataset": "mvtec", "root": "/r", "foo": 1}}}, "unknown option\\(s\\) \\['foo'\\]"),
    ({"sources": {"a": {"dataset": "synthetic", "spec": {"n_trian": 3}}}}, "spec has unknown key\\(s\\) \\['n_trian'\\]"),
])
def test_structural_errors(tmp_path: Path, fields: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_protocol(_write(tmp_path, **fields))


def test_image_size_takes_one_side_or_height_and_width(tmp_path: Path) -> None:
    assert load_protocol(_write(tmp_path, image_size=96)).image_size == (96, 96)
    assert load_protocol(_write(tmp_path, image_size=[96, 128])).image_size == (96, 128)
    assert load_protocol(_write(tmp_path, sources={"a": {"dataset": "mvtec3d", "root": "/r",
                                                         "include_validation": True}}))


def test_hash_follows_the_resolved_protocol(tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert load_protocol(path).hash() == load_protocol(path).hash()
    assert load_protocol(path).hash() != load_protocol(path, data_root="/elsewhere").hash()


def test_multi_source_protocol_needs_named_roots() -> None:
    with pytest.raises(ConfigError, match="several sources"):
        load_protocol("deeppcb_tire", data_root="/x")
    proto = load_protocol("deeppcb_tire", roots={"mvtec3d": "/tires"})
    assert proto.sources["mvtec3d"].root == "/tires" and proto.tasks[-1] == ("tire",)


def test_a_synthetic_source_takes_no_root() -> None:
    with pytest.raises(ConfigError, match="generated .* takes no root"):
        load_protocol("demo", data_root="/x")


def test_one_object_written_two_ways_is_refused(tmp_path: Path, tiny_root: Path) -> None:
    """`wood` and `data/wood` name the same folder; it used to be learned twice under two names."""
    from conftest import write_protocol
    from iufbench.protocols import resolve_objects

    proto = load_protocol(str(write_protocol(tmp_path, tiny_root, [["wood"], ["data/wood"]])))
    with pytest.raises(ConfigError, match="'wood' and 'data/wood' are the same object of source 'data'"):
        resolve_objects(proto)


def test_listing_protocols_tolerates_a_protocol_without_description(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "protocols"
    folder.mkdir()
    (folder / "bare.yaml").write_text(yaml.safe_dump({"image_size": 64, "sources": {}, "tasks": []}))
    monkeypatch.setattr("iufbench.protocols.builtin_dir", lambda kind: folder)
    monkeypatch.setattr("iufbench.protocols.builtin_names", lambda kind: ["bare"])
    assert list_protocols() == [("bare", "")]
