"""The networks that learn from pixels (DRAEM's two U-Nets, the CAD methods' backbone copy) in
channels-last memory layout (ours) against PyTorch's default NCHW (the previous code): one training
step (forward, loss, backward, Adam) and one scoring forward, interleaved in one process.

    .venv/bin/python benchmarks/channels_last.py [--size 128] [--repeats 5]

On the CPU, oneDNN convolves NHWC tensors directly; NCHW tensors are reordered to its blocked layout
and back around every convolution. Shapes are the demo's (`fast` schedule): DRAEM at widths 16/8,
batch 8; the CAD encoder (EfficientNet-Lite0, batch 16 normal + 16 defective), scoring 24 images.
Prints the median seconds of each arm and their ratio.
"""
from __future__ import annotations

import argparse
from typing import Callable

import torch
import torch.nn.functional as F

from iufbench.features import BackboneSpec
from iufbench.methods.cad.torch_model import Encoder
from iufbench.methods.classic.anomalib_bridge import DraemLoss, draem_model
from timing import interleave

LAST = torch.channels_last


def draem_arms(size: int, layout: torch.memory_format) -> tuple[Callable[[], None], Callable[[], None]]:
    torch.manual_seed(0)
    model = draem_model(16, 8).to(memory_format=layout)
    loss_fn, opt = DraemLoss(), torch.optim.Adam(model.parameters(), lr=1e-3)
    images, mask = torch.rand(8, 3, size, size), (torch.rand(8, 1, size, size) > 0.9).float()
    test = torch.rand(24, 3, size, size)

    def train() -> None:
        model.train()
        reconstruction, prediction = model(images.contiguous(memory_format=layout))
        opt.zero_grad(set_to_none=True)
        loss_fn(images, reconstruction, mask, prediction).backward()
        opt.step()

    @torch.no_grad()
    def score() -> None:
        model.eval()
        model(test.contiguous(memory_format=layout))

    return train, score


def cad_arms(size: int, layout: torch.memory_format) -> tuple[Callable[[], None], Callable[[], None]]:
    torch.manual_seed(0)
    model = Encoder(BackboneSpec(name="tf_efficientnet_lite0", weights="pypi"), classes=2).to(memory_format=layout)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    images, labels = torch.rand(32, 3, size, size), torch.arange(2).repeat_interleave(16)
    test = torch.rand(24, 3, size, size)

    def train() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(images.contiguous(memory_format=layout)), labels).backward()
        opt.step()

    @torch.no_grad()
    def score() -> None:
        model.eval()
        model.embed(test.contiguous(memory_format=layout))

    return train, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)  # the demo's image size
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.size} px, {torch.get_num_threads()} thread(s), median of {args.repeats}, arms interleaved")
    for name, make in (("draem", draem_arms), ("cad encoder", cad_arms)):
        nchw, nhwc = make(args.size, torch.contiguous_format), make(args.size, LAST)
        for i, what in enumerate(("train step", "score")):
            nchw[i](), nhwc[i]()  # warm-up: oneDNN primitives are created on first use
            med = {k: s for k, (s, _) in interleave({"nchw": nchw[i], "channels_last": nhwc[i]}, args.repeats).items()}
            print(f"{name:<12} {what:<10} NCHW {med['nchw']:.3f} s   channels-last {med['channels_last']:.3f} s   "
                  f"ratio {med['nchw'] / med['channels_last']:.2f}x")


if __name__ == "__main__":
    main()
