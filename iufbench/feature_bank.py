"""The per-run feature cache: every image of the protocol decoded and embedded exactly once.

Building the bank decodes every image and mask before anything is trained, so a corrupt image
or a mask of the wrong size stops the run before a results folder exists. Methods that learn from
pixels (DRAEM) get the decoded images too, kept only when such a method is in the run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from iufbench.data.images import load_image, load_test_item
from iufbench.data.types import ObjectData
from iufbench.features import FeatureExtractor


@dataclass
class ObjectFeatures:
    """One object's cached features and its test ground truth at the protocol's image size."""

    train: torch.Tensor  # [N_train, C, h, w]
    test: torch.Tensor  # [N_test, C, h, w]
    labels: np.ndarray  # [N_test] int, 1 = defective
    masks: np.ndarray | None  # [N_test, H, W] bool; None when the object has no masks
    test_images: list[str]  # paths, in the order of `test`
    train_pixels: torch.Tensor | None = None  # [N_train, 3, H, W] uint8, when a method reads images
    test_pixels: torch.Tensor | None = None  # [N_test, 3, H, W] uint8

    def inputs(self, kind: str, split: str) -> torch.Tensor:
        """What a method reads (`Method.inputs`): cached "features", or the decoded "images"."""
        if kind == "features":
            return self.train if split == "train" else self.test
        pixels = self.train_pixels if split == "train" else self.test_pixels
        if pixels is None:
            raise ValueError("the feature bank was built without pixels (keep_pixels=False)")
        return pixels


class FeatureBank(dict[str, ObjectFeatures]):
    """object id -> ObjectFeatures, built once per run and shared by every method and seed."""

    @classmethod
    def build(cls, objects: dict[str, ObjectData], extractor: FeatureExtractor,
              image_size: tuple[int, int], device: torch.device, progress: bool = True,
              keep_pixels: bool = False) -> "FeatureBank":
        bank = cls()
        bar = tqdm(objects.items(), desc="features", disable=not progress, leave=False)
        for name, data in bar:
            bar.set_postfix(object=name)
            train = np.stack([load_image(p, image_size) for p in data.train])
            pairs = [load_test_item(item, image_size) for item in data.test]
            test = np.stack([image for image, _ in pairs])
            masks = np.stack([mask for _, mask in pairs]) if data.has_masks else None
            bank[name] = ObjectFeatures(
                train=extractor.extract(train, device),
                test=extractor.extract(test, device),
                labels=np.array([item.label for item in data.test], dtype=np.int64),
                masks=masks,
                test_images=[str(item.path) for item in data.test],
                train_pixels=_nchw(train) if keep_pixels else None,
                test_pixels=_nchw(test) if keep_pixels else None,
            )
        return bank

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        return tuple(next(iter(self.values())).train.shape[1:])  # type: ignore[return-value]


def _nchw(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> uint8 NCHW, the layout every method's input has."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
