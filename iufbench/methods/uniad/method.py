"""UniAD training and scoring from cached features; `uniad` fine-tunes step by step, `joint` retrains
on everything seen so far (the upper bound, and the only way a method here sees old data).

Subclasses (IUF, regularised baselines) change the loss or the update through the small hooks
`add_penalty` (a term on top of the reconstruction MSE), `loss` (IUF's own objective), `before_task`,
`after_update` and `after_task`, keep the loop and scoring, and extend the checkpoint state through
`super().state_dict()` / `super().load_state_dict()`.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from iufbench.errors import ConfigError
from iufbench.methods.base import METHODS, Method, MethodContext, Scores, TrainTask
from iufbench.methods.epochs import run_epochs
from iufbench.methods.uniad.torch_model import UniAD, UniADConfig, anomaly_map


def image_score(maps: torch.Tensor, kind: str, kernel: int) -> torch.Tensor:
    """UniAD's image score: max of the k x k average-pooled map (kind 'max'), or its mean."""
    if kind == "mean":
        return maps.flatten(1).mean(dim=1)
    k = min(kernel, maps.shape[-2], maps.shape[-1])
    # Separable: a k x 1 then a 1 x k mean is the k x k mean in 2k instead of k^2 adds per pixel
    # (3x faster on the CPU, where this pooling was ~45% of a 224 px evaluation); the sums differ
    # from one 2-D window only by float32 rounding (~1e-6 relative).
    rows = F.avg_pool2d(maps.unsqueeze(1), (k, 1), stride=1)
    return F.avg_pool2d(rows, (1, k), stride=1).flatten(1).max(dim=1).values


GROUPS = ("attention", "ffn", "norms", "queries", "position", "projections")


def parameter_group(name: str) -> str:
    """The forgetting study's group of a UniAD parameter (docs/methods/iuf.md): attention (q, k, v and
    output projections), ffn, norms (LayerNorms), queries (the decoder's learned queries), position
    (the learned row and column embeddings) or projections (into and out of the transformer)."""
    parts = name.split(".")
    if any(p.startswith("attn") for p in parts):
        return "attention"
    if "ffn" in parts:
        return "ffn"
    if any("norm" in p for p in parts):
        return "norms"
    if parts[-1] == "query":
        return "queries"
    if "pos" in parts:
        return "position"
    if parts[-2] in {"input_proj", "output_proj"}:
        return "projections"
    return "other"  # added by a subclass (a discriminator, prompts): never frozen by `train.freeze`


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Feature-grid maps [B, h, w] -> [B, H, W], bilinear with aligned corners (reference)."""
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=True).squeeze(1)


@METHODS.register("uniad", help="UniAD fine-tuned on each new task only (shows forgetting)")
class UniADMethod(Method):
    """UniAD reconstruction transformer trained with MSE on cached backbone features."""

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        super().__init__(config, ctx)
        step_opt = config["train"].get("step_optimizer")
        if step_opt and step_opt.get("name") != "sgd":
            raise ConfigError(f"train.step_optimizer.name must be 'sgd', got '{step_opt.get('name')}'")
        frozen = config["train"]["freeze"]
        if not isinstance(frozen, list) or not set(frozen) <= set(GROUPS):
            raise ConfigError(f"train.freeze must be a list of groups out of {', '.join(GROUPS)}; got {frozen!r}")
        model_cfg = UniADConfig.from_config(ctx.feature_channels, ctx.grid, config["model"])
        if ctx.precision not in {"fp32", "bf16"}:
            raise ConfigError(f"precision must be fp32 or bf16, got '{ctx.precision}'")
        if ctx.device.type == "cuda":
            # cuDNN's SDPA backward (torch 2.11+, H100/H200) returns NaN gradients with an attention mask
            # when the sequence length is 64 mod 128 (pytorch/pytorch#196678): the demo's 8 x 8 grid is
            # exactly that, and bf16 training died in its base task. Process-wide, since compiled graphs
            # pick backends at trace time; the memory-efficient kernel takes masks instead.
            torch.backends.cuda.enable_cudnn_sdp(False)
        self.model = self.build_model(model_cfg).to(ctx.device)
        self._compiled_update: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None

    def build_model(self, cfg: UniADConfig) -> torch.nn.Module:
        return UniAD(cfg)

    def training_forward(self) -> Callable[[torch.Tensor], Any]:
        """What `loss` calls on a batch (the model's forward, or a subclass's richer one)."""
        return self.model

    @property
    def forward_train(self) -> Callable[[torch.Tensor], Any]:
        return self.training_forward()

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.ctx.precision == "bf16")

    # ---- hooks for subclasses -------------------------------------------------------------
    def before_task(self, task: TrainTask) -> None:
        """Called before the first update of a task."""

    def loss(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its detached parts; parts stay tensors so no step waits for the GPU."""
        rec = self.forward_train(features).float()
        mse = F.mse_loss(rec, features)
        total, parts = self.add_penalty(mse, features, rec)
        return total, {"mse": mse.detach(), **parts}

    def add_penalty(self, loss: torch.Tensor, features: torch.Tensor,
                    rec: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`loss` (the reconstruction MSE of `rec`, float32, against `features`) with a regulariser's
        term added, and that term's detached parts for losses.csv; plain UniAD adds nothing."""
        return loss, {}

    def before_update(self) -> None:
        """Called right before every optimiser step (gradients are ready)."""

    def after_update(self) -> None:
        """Called after every optimiser step."""

    def after_task(self, task: TrainTask) -> None:
        """Called after the last update of a task (e.g. to store statistics of it)."""

    def freeze(self, task: TrainTask) -> None:
        """`train.freeze`: the UniAD parameter groups left untouched in incremental steps (a study switch;
        empty by default)."""
        if task.step > 0 and self.config["train"]["freeze"]:
            for name, p in self.model.named_parameters():
                p.requires_grad_(parameter_group(name) not in self.config["train"]["freeze"])

    def parameters_to_train(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def make_optimizer(self, task: TrainTask) -> torch.optim.Optimizer:
        """AdamW (the reference base task; fused on CUDA, multi-tensor on CPU); `train.step_optimizer`
        may replace it in incremental steps."""
        train = self.config["train"]
        step_opt = train.get("step_optimizer")
        if task.step > 0 and step_opt:
            return torch.optim.SGD(self.parameters_to_train(), lr=step_opt["lr"], momentum=0.0)
        cuda = self.ctx.device.type == "cuda"
        adamw = {"weight_decay": train["weight_decay"], "betas": tuple(train.get("betas", (0.9, 0.999)))}
        if self.ctx.compile and cuda:
            # compiled into the step's CUDA graph: step counts and the (scheduled) rate live on the device,
            # so neither a count nor a new rate makes the host wait or dynamo recompile; inductor fuses it
            lr = torch.tensor(float(train["lr"]), device=self.ctx.device)
            return torch.optim.AdamW(self.parameters_to_train(), lr=lr, foreach=True, capturable=True, **adamw)
        return torch.optim.AdamW(self.parameters_to_train(), lr=train["lr"], fused=cuda, foreach=not cuda, **adamw)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, task: TrainTask) -> torch.optim.lr_scheduler.LRScheduler:
        """StepLR per epoch (`train.lr_step_epochs`, `train.lr_gamma`); when `train.step_optimizer`
        runs an incremental step, its own `lr_step_epochs` decides, null meaning a constant rate
        (the reference's incremental steps: SGD at lr 1, no decay inside the step)."""
        train = self.config["train"]
        step_opt = train.get("step_optimizer")
        step_size = step_opt.get("lr_step_epochs", train["lr_step_epochs"]) if task.step > 0 and step_opt else train["lr_step_epochs"]
        if step_size is None:
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=train["lr_gamma"])

    # ---- the loop -------------------------------------------------------------------------
    def train_step(self, features: torch.Tensor, labels: torch.Tensor,
                   optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One update on one batch; nothing here waits for the device (`iufbench bench` times this).
        With `--compile` the whole update (forward, backward, clipping, optimiser step and the
        subclasses' hooks: IUF's projection and pull) runs compiled, as CUDA graphs on a GPU."""
        if not self.ctx.compile:
            return self.update(features, labels, optimizer)
        if self._compiled_update is None:
            mode = "reduce-overhead" if self.ctx.device.type == "cuda" else "default"  # CUDA graphs on GPU
            self._compiled_update = torch.compile(self.update, mode=mode, dynamic=False)
        if self.ctx.device.type != "cuda":
            return self._compiled_update(features, labels, optimizer)
        torch.compiler.cudagraph_mark_step_begin()
        loss, logs = self._compiled_update(features, labels, optimizer)
        # a CUDA graph's outputs are overwritten by its next replay; the epoch loop keeps them longer
        return loss.clone(), {name: value.clone() for name, value in logs.items()}

    def update(self, features: torch.Tensor, labels: torch.Tensor,
               optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The update itself, eager; `train_step` compiles it with `--compile`."""
        with self.autocast():
            loss, logs = self.loss(features, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config["train"].get("clip_norm")
        if clip:
            torch.nn.utils.clip_grad_norm_(self.parameters_to_train(), clip, foreach=True)
        self.before_update()
        optimizer.step()
        self.after_update()
        return loss.detach(), logs

    def learn(self, task: TrainTask) -> dict[str, float]:
        train = self.config["train"]
        features = task.features.to(self.ctx.device)  # the whole task stays on the device
        labels = task.labels.to(self.ctx.device)
        self.before_task(task)
        self.freeze(task)
        optimizer = self.make_optimizer(task)
        scheduler = self.make_scheduler(optimizer, task)
        self.model.train()
        last: dict[str, Any] = {}

        def step(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            last["loss"], last["logs"] = self.train_step(features[idx], labels[idx], optimizer)
            return last["loss"], last["logs"]

        epochs = int(train["epochs"][task.step])
        run_epochs(task, len(features), epochs, int(train["batch_size"][task.step]), step, scheduler, self.ctx,
                   "lower the learning rate (--lr) or check the data")
        self.after_task(task)
        return {"epochs": float(epochs), "loss": float(last["loss"].item()),
                **{k: float(v) for k, v in last["logs"].items()}}

    @torch.no_grad()
    def score(self, features: torch.Tensor) -> Scores:
        self.model.eval()
        features = features.to(self.ctx.device)
        with self.autocast():
            rec = self.model(features)
        maps = upsample(anomaly_map(features.float(), rec.float()), self.ctx.image_size)
        score_cfg = self.config["score"]
        # left on the device: the engine computes the metrics where the maps are (metrics.on_device)
        return Scores(image=image_score(maps, score_cfg["image"], score_cfg["kernel"]), maps=maps)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])


@METHODS.register("joint", help="UniAD retrained on all objects seen so far (upper bound; sees old data)")
class JointUniAD(UniADMethod):
    """Upper bound: the engine hands it every seen object's training data at each step."""

    sees_old_data = True
