"""The per-run feature bank: every image of the protocol decoded and embedded exactly once (or read
from the persistent `FeatureCache`, when an earlier run or another job of a sweep extracted it).

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
from iufbench.feature_cache import FeatureCache, entry_key
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
    """object id -> ObjectFeatures, built once per run and shared by every method and seed.

    With a persistent `FeatureCache`, an object's features come from the cache when an entry with
    the same key exists; `extracted` lists the objects this build computed itself.
    """

    extracted: list[str]

    @classmethod
    def build(cls, objects: dict[str, ObjectData], extractor: FeatureExtractor,
              image_size: tuple[int, int], device: torch.device, progress: bool = True,
              keep_pixels: bool = False, cache: FeatureCache | None = None, precision: str = "fp32") -> "FeatureBank":
        found: dict[str, ObjectFeatures] = {}
        extracted: list[str] = []
        bar = tqdm(total=len(objects), desc="features", disable=not progress, leave=False)
        todo, wait = list(objects), cache is None
        while todo:  # first pass skips objects another process is extracting; the second waits for them
            busy = []
            for name in todo:
                bar.set_postfix(object=name)
                data, decoded = objects[name], {}
                compute = lambda data=data, decoded=decoded: _extract(  # noqa: E731
                    data, extractor, image_size, device, decoded)
                if cache is None:
                    got: tuple[dict, bool] | None = (compute(), True)
                else:
                    key = entry_key(data, image_size, extractor.spec, device.type, precision)
                    about = {"object": name, "root": str(data.root), "image_size": list(image_size),
                             "backbone": extractor.spec.name, "weights": extractor.spec.weights,
                             "device": device.type, "precision": precision}
                    got = cache.get(key, compute, about, wait)
                if got is None:
                    busy.append(name)
                    continue
                entry, computed = got
                if computed:
                    extracted.append(name)
                if keep_pixels and not decoded:
                    decoded.update(_decode(data, image_size))
                found[name] = ObjectFeatures(
                    train=entry["train"], test=entry["test"],
                    masks=None if entry["masks"] is None else entry["masks"].numpy(),
                    labels=np.array([item.label for item in data.test], dtype=np.int64),
                    test_images=[str(item.path) for item in data.test],
                    train_pixels=_nchw(decoded["train"]) if keep_pixels else None,
                    test_pixels=_nchw(decoded["test"]) if keep_pixels else None,
                )
                bar.update()
            todo, wait = busy, True
        bar.close()
        bank = cls((name, found[name]) for name in objects)  # the protocol's order, whoever extracted first
        bank.extracted = extracted
        return bank

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        return tuple(next(iter(self.values())).train.shape[1:])  # type: ignore[return-value]


def _decode(data: ObjectData, image_size: tuple[int, int]) -> dict[str, np.ndarray | None]:
    """Every image and mask of one object, decoded the one way the model sees them."""
    train = np.stack([load_image(p, image_size) for p in data.train])
    pairs = [load_test_item(item, image_size) for item in data.test]
    masks = np.stack([mask for _, mask in pairs]) if data.has_masks else None
    return {"train": train, "test": np.stack([image for image, _ in pairs]), "masks": masks}


def _extract(data: ObjectData, extractor: FeatureExtractor, image_size: tuple[int, int], device: torch.device,
             decoded: dict[str, np.ndarray | None]) -> dict[str, torch.Tensor | None]:
    """A cache entry, tensors only (the cache loads it with `weights_only=True`): the features of
    every train and test image, and the test masks. Keeps the decoded images in `decoded` so
    pixel-reading methods need no second decode."""
    decoded.update(_decode(data, image_size))
    masks = decoded["masks"]
    return {"train": extractor.extract(decoded["train"], device), "test": extractor.extract(decoded["test"], device),
            "masks": None if masks is None else torch.from_numpy(masks)}


def _nchw(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> uint8 NCHW, the layout every method's input has."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
