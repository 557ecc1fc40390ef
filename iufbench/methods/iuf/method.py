"""IUF training (Tang et al., ECCV 2024): UniAD + OASA + Semantic Compression Loss + updating
strategy, every paper-vs-reference-code difference a named switch in `methods/iuf*.yaml`.

Loss: L = lambda0 * MSE + lambda1 * CE(object) + lambda2 * L_sc. The updating strategy (US) acts in
incremental steps only: the applied update of the guarded parameters is projected (see `updating`),
then every weight is pulled toward the previous task's weights. After every task the guards'
statistics on that task's training images are accumulated for the next task.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from iufbench.errors import ConfigError
from iufbench.methods.base import METHODS, MethodContext, TrainTask
from iufbench.methods.iuf.compression import RefcodeSCL, paper_scl
from iufbench.methods.iuf.torch_model import IUF, IUFOutput
from iufbench.methods.iuf.updating import (OMEGAS, Guard, OutputRows, ProjectedUpdate, PullToOld, SecondMoments,
                                           guard_modules)
from iufbench.methods.uniad.method import UniADMethod
from iufbench.methods.uniad.torch_model import UniADConfig


PROTECT = ("all", "ffn_out", "ffn_and_attn_out")


def _intermediate(config: dict[str, Any]) -> int:
    """The refcode form uses every decoder layer but the last (layers 1-3 of 4 in the reference)."""
    return max(config["model"]["num_decoder_layers"] - 1, 1)


def guards(model: IUF, protect: str) -> dict[str, Guard]:
    """`all` (the paper's "every parameter"): every parameter whose output reaches the reconstruction,
    i.e. all of UniAD and the discriminator's context path, not its object head (read by the
    cross-entropy only). `ffn_out` (the reference's) and `ffn_and_attn_out`: the output rows of the
    FFN output layers, and of the attention output projections."""
    if protect == "all":
        found = guard_modules("uniad", model.uniad)
        if model.discriminator is not None:
            found.update(guard_modules("discriminator", model.discriminator,
                                       skip=("discriminator.hidden", "discriminator.head")))
        return found
    layers = {}
    for part in ("encoder", "decoder"):
        for i, layer in enumerate(getattr(model.uniad, part)):
            layers[f"{part}.{i}.ffn"] = layer.ffn.linear2
            if protect == "ffn_and_attn_out":
                attns = [layer.attn] if part == "encoder" else [layer.attn1, layer.attn2]
                layers.update({f"{part}.{i}.attn{j}": a.out for j, a in enumerate(attns)})
    return {name: OutputRows([layer.weight, layer.bias], layer) for name, layer in layers.items()}


def check_us(us: dict[str, Any]) -> None:
    if us["protect"] not in PROTECT or us["omega"] not in OMEGAS or not 0 < us["energy"] <= 1:
        raise ConfigError(f"us.protect must be one of {', '.join(PROTECT)}, us.omega one of {', '.join(OMEGAS)} "
                          f"and us.energy in (0, 1], got '{us['protect']}', '{us['omega']}' and {us['energy']!r}")


class IUFMethod(UniADMethod):
    """IUF; the ablations and the reference-code preset are the same class with other configs."""

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        super().__init__(config, ctx)
        check_us(config["us"])
        self.moments = SecondMoments(guards(self.model, config["us"]["protect"]))
        self.step = 0
        self.projection: ProjectedUpdate | None = None
        self.pull: PullToOld | None = None
        scl = config["scl"]
        if scl["form"] not in {"paper", "refcode"} or scl["latent"] not in {"encoder", "decoder"} \
                or not isinstance(scl["normalise"], bool):
            raise ConfigError(f"scl.form must be paper or refcode, scl.latent encoder or decoder and "
                              f"scl.normalise true or false, got '{scl['form']}', '{scl['latent']}' and "
                              f"'{scl['normalise']}'")
        self.refcode_scl = [RefcodeSCL(scl["buffer"], scl["ratio"]) for _ in range(_intermediate(config))]

    @classmethod
    def components(cls, config: dict[str, Any]) -> dict[str, bool]:
        """Table 2's switches: object-aware self-attention, the compression loss, the updating strategy."""
        return {"OASA": bool(config["oasa"]["enabled"]), "SCL": config["loss"]["scl"] > 0,
                "US": bool(config["us"]["enabled"])}

    def build_model(self, cfg: UniADConfig) -> torch.nn.Module:
        oasa = self.config["oasa"]
        return IUF(cfg, oasa=oasa["enabled"], detach_context=oasa["detach"],
                   disc_layers_ffn=oasa["dim_feedforward"], disc_heads=oasa["nhead"])

    def before_task(self, task: TrainTask) -> None:
        self.step = task.step
        if self.model.discriminator is not None:
            self.model.discriminator.grow(len(task.label_space))
        us = self.config["us"]
        incremental = us["enabled"] and task.step > 0
        compiled = self.ctx.compile
        self.projection = ProjectedUpdate(self.moments.guards, self.moments.moments, us["omega"], us["energy"],
                                          compiled) if incremental and us["project"] else None
        self.pull = PullToOld(self.model, us["beta"], compiled) if incremental and us["beta"] > 0 else None

    def training_forward(self) -> Callable[[torch.Tensor], IUFOutput]:
        return self.model.forward_all

    def loss(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        weights = self.config["loss"]
        out = self.forward_train(features)
        mse = F.mse_loss(out.reconstruction.float(), features)
        total, logs = weights["mse"] * mse, {"mse": mse.detach()}
        if out.embedding is not None and weights["ce"] > 0:
            ce = F.cross_entropy(self.model.discriminator.head(out.embedding).float(), labels)
            total = total + weights["ce"] * ce
            logs["ce"] = ce.detach()
        scl = self.config["scl"]
        if weights["scl"] > 0 and (scl["tasks"] == "all" or self.step == 0):
            sc = self._scl(out)
            total = total + weights["scl"] * sc
            logs["scl"] = sc.detach()
        return total, logs

    def _scl(self, out: IUFOutput) -> torch.Tensor:
        scl = self.config["scl"]
        if scl["form"] == "paper":
            latent = out.encoder if scl["latent"] == "encoder" else out.decoder[-1]
            # inside a compiled CUDA step without a host sync (compression.gram_singular_values); eager
            # and CPU steps keep svdvals, whose one sync per step costs nothing when the host is behind
            sync_free = self.ctx.compile and self.ctx.device.type == "cuda"
            return paper_scl(latent, scl["keep"], scl["normalise"], sync_free=sync_free)
        return torch.stack([f(latent) for f, latent in zip(self.refcode_scl, out.decoder)]).mean()

    def before_update(self) -> None:
        if self.projection is not None:
            self.projection.snapshot()

    def after_update(self) -> None:
        if self.projection is not None:
            self.projection.project()
        if self.pull is not None:
            self.pull()

    def after_task(self, task: TrainTask) -> None:
        self.moments.collect(self.model, task.features.to(self.ctx.device))
        self.projection = self.pull = None

    def state_dict(self) -> dict[str, Any]:
        classes = self.model.discriminator.num_classes if self.model.discriminator is not None else 0
        return {**super().state_dict(), "moments": self.moments.state_dict(), "classes": classes,
                "scl_buffers": [f.buffer for f in self.refcode_scl]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.model.discriminator is not None:
            self.model.discriminator.grow(state["classes"])  # the head's rows before the weights that fill them
        super().load_state_dict(state)
        if state["moments"]["moments"] and set(state["moments"]["moments"]) != set(self.moments.guards):
            raise ConfigError("this checkpoint's updating-strategy statistics belong to another us.protect; "
                              "resume with the us.protect it was trained with")
        self.moments.load_state_dict(state["moments"])
        for f, buffer in zip(self.refcode_scl, state["scl_buffers"]):  # loaded on the CPU; rows come on the device
            f.buffer = None if buffer is None else buffer.to(self.ctx.device)


for _name, _help in (
    ("iuf", "IUF (paper): OASA + semantic compression loss + updating strategy"),
    ("iuf_no_oasa", "IUF without Object-Aware Self-Attention (Table 2 ablation)"),
    ("iuf_no_scl", "IUF without the semantic compression loss (Table 2 ablation)"),
    ("iuf_no_us", "IUF without the updating strategy (Table 2 ablation)"),
    ("iuf_refcode", "IUF with every switch at the released reference code's value (minus its crashes)"),
    ("iuf_tuned", "IUF with the settings tuned on demo_val (docs/methods/iuf.md): US on every parameter, energy Omega 0.9, no SCL"),
):
    METHODS.register(_name, help=_help)(IUFMethod)
