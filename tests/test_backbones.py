"""Backbone weights: the PyPI ImageNet weights really load, features have UniAD's shape."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from iufbench.backbones import create_backbone, pypi_weights_file
from iufbench.errors import ConfigError
from iufbench.features import BackboneSpec, FeatureExtractor


def test_pypi_lite0_weights_are_real_imagenet_weights() -> None:
    """Random weights never exceed p~0.04 on this photo; the real ones call it espresso."""
    import timm
    from PIL import Image
    from skimage import data

    model = timm.create_model("tf_efficientnet_lite0", pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(pypi_weights_file("tf_efficientnet_lite0"))))
    image = np.asarray(Image.fromarray(data.coffee()).resize((224, 224)), dtype=np.float32) / 255.0
    x = (torch.from_numpy(image).permute(2, 0, 1)[None] - 0.5) / 0.5
    with torch.no_grad():
        probs = model.eval()(x).softmax(-1)[0]
    assert probs.argmax().item() == 967  # ImageNet "espresso"
    assert probs.max().item() > 0.5


def test_features_have_uniad_shape_and_the_backbone_stays_frozen() -> None:
    extractor = FeatureExtractor(BackboneSpec())
    images = np.random.default_rng(0).integers(0, 255, (3, 128, 96, 3), dtype=np.uint8)
    feats = extractor.extract(images, torch.device("cpu"))
    assert feats.shape == (3, 16 + 24 + 40 + 112, 8, 6)
    assert extractor.output_shape((128, 96)) == feats.shape[1:]  # what the engine checks configs against
    extractor.train()
    assert not extractor.backbone.training
    assert not any(p.requires_grad for p in extractor.parameters())
    again = extractor.extract(images, torch.device("cpu"))
    assert torch.equal(feats, again)  # eval-mode BN: no batch statistics leak in


def test_missing_weights_are_an_error_not_random_features(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        create_backbone("tf_efficientnet_lite0", str(tmp_path / "nope.pth"), (0, 1, 2, 3))
    with pytest.raises(ConfigError, match="cannot fetch pretrained weights .* --backbone-weights FILE"):
        create_backbone("tf_efficientnet_lite0", "hub", (0, 1, 2, 3))  # HF_HUB_OFFLINE=1 in conftest
    with pytest.raises(ConfigError, match="no PyPI weights"):
        create_backbone("tf_efficientnet_b4", "pypi", (0, 1, 2, 3))


def test_stages_after_the_last_returned_one_are_dropped_and_features_do_not_change() -> None:
    import timm

    torch.manual_seed(0)
    full = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True,
                             out_indices=(0, 1, 2, 3)).eval()
    model = create_backbone("tf_efficientnet_lite0", "random", (0, 1, 2, 3))
    assert not model.load_state_dict(full.state_dict(), strict=False).missing_keys
    assert len(model.blocks) < len(full.blocks)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), full(x), strict=True))
