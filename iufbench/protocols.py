"""Protocols: declarative task streams (`protocols/*.yaml`) loaded, validated and hashed.

A protocol names its data sources (dataset reader + root), the image size, the default backbone,
and the ordered tasks: the base objects, then the objects added at each step. An object is
written `name` when exactly one source holds it, or `source/name`. Everything is checked before
any training: structure here (`load_protocol`), files on disk in `resolve_objects`.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iufbench.backbones import cache_dir
from iufbench.data import DATASETS
from iufbench.data.types import ObjectData
from iufbench.errors import ConfigError, DataError
from iufbench.features import BackboneSpec
from iufbench.resources import builtin_dir, builtin_names
from iufbench.yaml_loader import declared_file, load_yaml, read_declared

_KEYS = {"description", "image_size", "backbone", "sources", "tasks", "paper_schedule"}


@dataclass(frozen=True)
class Source:
    """One dataset root read by one reader; `root` None means the user must pass it, unless the reader
    finds its data itself (elpv: the installed package)."""

    name: str
    dataset: str
    root: str | None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    image_size: tuple[int, int]
    backbone: BackboneSpec
    sources: dict[str, Source]
    tasks: tuple[tuple[str, ...], ...]
    paper_schedule: dict[str, list[int]] | None = None

    @property
    def objects(self) -> tuple[str, ...]:
        """All objects in learning order."""
        return tuple(o for task in self.tasks for o in task)

    def learned_at(self) -> dict[str, int]:
        return {o: step for step, task in enumerate(self.tasks) for o in task}

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def hash(self) -> str:
        """Hash of the resolved protocol (roots included), recorded with every run."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def list_protocols() -> list[tuple[str, str]]:
    """(name, description) of every built-in protocol."""
    out = []
    for name in builtin_names("protocols"):
        raw = load_yaml((builtin_dir("protocols") / f"{name}.yaml").read_text())
        out.append((name, (str(raw.get("description", "")).strip().splitlines() or [""])[0]))
    return out


def load_protocol(name_or_path: str, data_root: str | None = None, roots: dict[str, str] | None = None,
                  backbone: dict[str, Any] | None = None, dataset: str | None = None,
                  require_roots: bool = True) -> Protocol:
    """Read and structurally validate a protocol; `data_root` / `dataset` set the root / reader of a
    single-source protocol, `roots` sets roots by source name, `backbone` overrides backbone fields.
    `require_roots=False` is for tools that read no images (`iufbench bench`)."""
    path = declared_file("protocol", name_or_path)
    raw = read_declared("protocol", path, _KEYS)
    for key in ("sources", "tasks", "image_size"):
        if key not in raw:
            raise ConfigError(f"protocol {path} has no '{key}'")
    sources = _sources(path, raw["sources"], data_root, roots or {}, dataset, require_roots)
    tasks = _tasks(path, raw["tasks"], sources)
    spec = {**_mapping(path, "backbone", raw.get("backbone", {})), **(backbone or {})}
    return Protocol(name=path.stem, description=str(raw.get("description", "")).strip(),
                    image_size=_image_size(path, raw["image_size"]), backbone=_backbone(path, spec),
                    sources=sources, tasks=tasks,
                    paper_schedule=_paper_schedule(path, raw.get("paper_schedule"), len(tasks)))


def _mapping(path: Path, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"protocol {path}: '{key}' must be a mapping (key: value lines), got {value!r}")
    return value


def whole_numbers(values: Any, minimum: int) -> bool:
    """A list of ints >= minimum (YAML's true/false and 2.7 are not whole numbers)."""
    return isinstance(values, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum
                                            for v in values)


def _image_size(path: Path, size: Any) -> tuple[int, int]:
    """One side (square) or [height, width], at least 32 px: the backbone's stride-16 grid needs 2 cells."""
    sides = [size, size] if isinstance(size, int) and not isinstance(size, bool) else size
    if not (whole_numbers(sides, 32) and len(sides) == 2):
        raise ConfigError(f"protocol {path}: image_size must be a whole number >= 32 or [height, width]; "
                          f"got {size!r}")
    return sides[0], sides[1]


def _backbone(path: Path, spec: dict[str, Any]) -> BackboneSpec:
    valid = set(BackboneSpec.__dataclass_fields__)
    unknown = set(spec) - valid
    if unknown:
        raise ConfigError(f"protocol {path}: unknown backbone key(s) {sorted(unknown)}; valid: {sorted(valid)}")
    if "out_indices" in spec:
        spec["out_indices"] = tuple(spec["out_indices"])
    return BackboneSpec(**spec)


def _paper_schedule(path: Path, schedule: Any, n_tasks: int) -> dict[str, list[int]] | None:
    if schedule is None:
        return None
    schedule = _mapping(path, "paper_schedule", schedule)
    keys = {"epochs", "batch_size", "train_images", "test_images"}
    if set(schedule) - keys or not {"epochs", "batch_size"} <= set(schedule):
        raise ConfigError(f"protocol {path}: paper_schedule needs epochs and batch_size (and may have "
                          f"train_images and test_images), got {sorted(schedule)}")
    for key, values in schedule.items():
        if not (whole_numbers(values, 1) and len(values) == n_tasks):
            raise ConfigError(f"protocol {path}: paper_schedule.{key} needs one whole number >= 1 per task "
                              f"({n_tasks}); got {values!r}")
    return schedule


def _sources(path: Path, raw: Any, data_root: str | None, roots: dict[str, str],
             dataset_override: str | None, require_roots: bool) -> dict[str, Source]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"protocol {path}: 'sources' must map source names to {{dataset, root}}")
    unknown_roots = set(roots) - set(raw)
    if unknown_roots:
        raise ConfigError(f"--root names unknown source(s) {sorted(unknown_roots)}; this protocol has {sorted(raw)}")
    if (data_root is not None or dataset_override is not None) and len(raw) > 1:
        raise ConfigError(f"protocol {path.stem} has several sources {sorted(raw)}; "
                          "--data-root/--dataset apply to single-source protocols, use --root SOURCE=PATH")
    sources = {}
    for name, entry in raw.items():
        entry = dict(_mapping(path, f"sources.{name}", entry))
        file_dataset = entry.pop("dataset", None)
        dataset = dataset_override or file_dataset
        if dataset is None:
            raise ConfigError(f"protocol {path}: source '{name}' has no dataset; see `iufbench list datasets`")
        _check_options(path, name, dataset, entry)
        given = roots.get(name, data_root)
        if dataset == "synthetic" and given is not None:
            raise ConfigError(f"source '{name}' of protocol {path.stem} is generated (synthetic); it takes no root")
        default_root = entry.pop("root", None)
        root = given if given is not None else default_root
        if root is None and require_roots and not _locates_itself(dataset):
            raise ConfigError(
                f"protocol {path.stem} needs the dataset root of source '{name}' ({dataset}): "
                "pass --data-root PATH (or --root NAME=PATH)"
            )
        sources[name] = Source(name=name, dataset=dataset, root=None if root is None else str(root), options=entry)
    return sources


def _locates_itself(dataset: str) -> bool:
    """Generated (synthetic) or found without a root (an installed package, e.g. elpv)."""
    return dataset == "synthetic" or DATASETS.get(dataset).default_root is not None


def _check_options(path: Path, name: str, dataset: str, entry: dict[str, Any]) -> None:
    """A source's keys besides `dataset`: `root` and its reader's keyword options (a synthetic
    source: `spec`, whose keys are SynthSpec's fields)."""
    if dataset == "synthetic":
        from iufbench.data.synth import SynthSpec  # noqa: PLC0415

        options, nested = {"spec"}, set(SynthSpec.__dataclass_fields__)
        unknown_spec = set(_mapping(path, f"sources.{name}.spec", entry.get("spec", {}))) - nested
        if unknown_spec:
            raise ConfigError(f"protocol {path}: source '{name}' spec has unknown key(s) {sorted(unknown_spec)}; "
                              f"valid: {sorted(nested)}")
    else:
        DATASETS.get(dataset)  # unknown reader -> error listing valid ones
        options = {"root"} | set(inspect.signature(DATASETS.get(dataset).read).parameters) - {"objects"}
    unknown = set(entry) - options
    if unknown:
        raise ConfigError(f"protocol {path}: source '{name}' ({dataset}) has unknown option(s) {sorted(unknown)}; "
                          f"valid: {sorted(options)}")


def _tasks(path: Path, raw: Any, sources: dict[str, Source]) -> tuple[tuple[str, ...], ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"protocol {path}: 'tasks' must be a non-empty list of object lists")
    seen: set[str] = set()
    tasks = []
    for i, task in enumerate(raw):
        if not isinstance(task, list) or not task:
            raise ConfigError(f"protocol {path}: task {i} is empty; every task needs at least one object")
        for obj in task:
            obj = str(obj)
            if obj in seen:
                raise ConfigError(f"protocol {path}: object '{obj}' appears twice; each object is learned once")
            if "/" in obj and obj.split("/", 1)[0] not in sources:
                raise ConfigError(f"protocol {path}: '{obj}' names unknown source; sources: {sorted(sources)}")
            seen.add(obj)
        tasks.append(tuple(str(o) for o in task))
    return tuple(tasks)


def source_root(source: Source) -> Path:
    """The folder a source is read from; synthetic sources are generated on first use, a source without
    a root is located by its reader."""
    if source.dataset == "synthetic":
        from iufbench.data.synth import SynthSpec, ensure  # noqa: PLC0415

        return ensure(SynthSpec(**_tuple_lists(source.options.get("spec", {}))), cache_dir() / "synth")
    if source.root is None:
        return DATASETS.get(source.dataset).default_root()
    return Path(source.root).expanduser()


def resolve_objects(protocol: Protocol) -> dict[str, ObjectData]:
    """Check every object of the protocol on disk; object id -> its files. Raises before training."""
    by_source: dict[str, dict[str, ObjectData]] = {}
    wanted: dict[str, list[str]] = {name: [] for name in protocol.sources}
    placement: dict[str, tuple[str, str]] = {}
    listings = {name: _reader(src).list_objects(source_root(src)) for name, src in protocol.sources.items()}
    for obj in protocol.objects:
        if "/" in obj:
            src, name = obj.split("/", 1)
        else:
            holders = [s for s, names in listings.items() if obj in names]
            if len(holders) > 1:
                raise ConfigError(f"object '{obj}' exists in sources {holders}; write it as SOURCE/{obj}")
            src, name = (holders[0] if holders else next(iter(listings))), obj
        if name not in listings[src]:
            raise DataError(
                f"unknown object '{name}' in source '{src}' ({source_root(protocol.sources[src])}). "
                f"Valid: {', '.join(listings[src]) or 'none found'}"
            )
        twin = next((other for other, place in placement.items() if place == (src, name)), None)
        if twin is not None:
            raise ConfigError(f"'{twin}' and '{obj}' are the same object of source '{src}'; each object is "
                              "learned once")
        wanted[src].append(name)
        placement[obj] = (src, name)
    for src, names in wanted.items():
        if names:
            source = protocol.sources[src]
            by_source[src] = _reader(source).read(source_root(source), names, **_reader_options(source))
    objects = {obj: by_source[src][name] for obj, (src, name) in placement.items()}
    for obj, data in objects.items():
        if not data.train:
            raise DataError(f"object '{obj}' has no training images under {data.root}; expected train/good/*.png")
        if not data.test:
            raise DataError(f"object '{obj}' has no test images under {data.root}; expected test/<defect>/*.png")
    return objects


def _reader(source: Source):
    return DATASETS.get("mvtec" if source.dataset == "synthetic" else source.dataset)


def _reader_options(source: Source) -> dict[str, Any]:
    return {} if source.dataset == "synthetic" else dict(source.options)


def _tuple_lists(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
