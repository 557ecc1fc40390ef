"""UniAD's transformer and scoring: shapes, neighbour mask, jitter, and that it learns."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from iufbench.methods.uniad.method import image_score, upsample
from iufbench.methods.uniad.torch_model import UniAD, UniADConfig, anomaly_map, neighbor_allowed


def _model(**kw) -> UniAD:
    torch.manual_seed(0)
    cfg = dict(in_channels=12, grid=(6, 6), hidden_dim=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
               dim_feedforward=32, neighbor_size=(3, 3))
    return UniAD(UniADConfig(**{**cfg, **kw}))


def test_neighbour_mask_hides_the_neighbourhood_and_the_token_itself() -> None:
    allowed = neighbor_allowed((5, 5), (3, 3))
    centre = 2 * 5 + 2
    assert not allowed.diagonal().any()
    assert allowed[centre].sum() == 25 - 9
    assert allowed[0].sum() == 25 - 4  # corner: its neighbourhood is clipped by the border


def test_a_mask_covering_the_whole_grid_is_refused() -> None:
    try:
        _model(grid=(3, 3), neighbor_size=(7, 7))
    except ValueError as exc:
        assert "covers the whole" in str(exc)
    else:
        raise AssertionError("expected a ValueError")


def test_shapes_and_jitter_only_in_training() -> None:
    model = _model(dropout=0.0)
    x = torch.randn(4, 12, 6, 6)
    model.eval()
    assert model(x).shape == x.shape
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))  # feature jitter draws new noise
    quiet = _model(dropout=0.0, jitter_scale=0.0).train()
    assert torch.equal(quiet(x), quiet(x))


def test_training_reduces_reconstruction_error() -> None:
    model = _model(dropout=0.0, jitter_scale=0.0)
    x = torch.randn(8, 12, 6, 6)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    before = F.mse_loss(model(x), x).item()
    for _ in range(100):
        loss = F.mse_loss(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * before


def test_image_score_is_the_max_of_the_pooled_map() -> None:
    maps = torch.zeros(2, 64, 64)
    maps[0, 10:26, 30:46] = 2.0  # a 16x16 patch: the pooled max is exactly its value
    maps[1, 5, 5] = 100.0  # a single hot pixel: diluted by the 16x16 pooling
    scores = image_score(maps, "max", 16)
    assert scores[0] == 2.0 and abs(scores[1].item() - 100.0 / 256) < 1e-5
    assert torch.allclose(image_score(maps, "mean", 16), maps.flatten(1).mean(1))
    noisy = torch.rand(4, 48, 40)  # the separable pooling is the 2-D k x k mean (here k = 16 and 40)
    for k in (16, 64):
        square = torch.nn.functional.avg_pool2d(noisy.unsqueeze(1), min(k, 40), stride=1).flatten(1).max(1).values
        assert torch.allclose(image_score(noisy, "max", k), square, rtol=1e-5, atol=0)


def test_anomaly_map_is_the_channel_l2_upsampled() -> None:
    feats, rec = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    rec[0, :, 0, 0] = torch.tensor([3.0, 4.0, 0.0])
    amap = anomaly_map(feats, rec)
    assert amap[0, 0, 0] == 5.0 and amap[0, 1, 1] == 0.0
    big = upsample(amap, (8, 8))
    assert big.shape == (1, 8, 8) and big[0, 0, 0] == 5.0 and big[0, -1, -1] == 0.0


def test_cpu_dropout_keeps_the_expected_fraction_and_scale() -> None:
    from iufbench.methods.uniad.torch_model import dropout

    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = dropout(x, 0.1, True)
    assert abs((y == 0).float().mean().item() - 0.1) < 0.005
    assert abs(y.mean().item() - 1.0) < 0.01  # inverted dropout keeps the expectation
    assert torch.equal(dropout(x, 0.1, False), x)


def test_manual_attention_path_matches_fused_attention() -> None:
    from iufbench.methods.uniad.torch_model import attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 4) for _ in range(3))
    bias = torch.zeros(9, 9).masked_fill(~neighbor_allowed((3, 3), (1, 1)), float("-inf"))
    fused = attention(q, k, v, bias, 0.0, False)
    scores = (q @ k.transpose(-2, -1)) / 2.0 + bias
    assert torch.allclose(fused, scores.softmax(-1) @ v, atol=1e-6)
    torch.manual_seed(1)
    dropped = attention(q, k, v, bias, 0.5, True)  # the CPU path with dropout
    assert dropped.shape == fused.shape and not torch.allclose(dropped, fused)


def test_freeze_keeps_a_group_fixed_in_incremental_steps_only() -> None:
    from conftest import TINY_OVERRIDES
    from iufbench.config import resolve_method_config
    from iufbench.errors import ConfigError
    from iufbench.methods import METHODS, MethodContext, TrainTask
    from iufbench.methods.uniad.method import parameter_group
    from iufbench.protocols import load_protocol

    def method(freeze: str):
        config = resolve_method_config("uniad", load_protocol("demo"), overrides=[*TINY_OVERRIDES, f"train.freeze={freeze}"])
        cls = METHODS.get("uniad")
        return cls(config, MethodContext.for_method(cls, (8, 4, 4), (64, 64), torch.device("cpu"), 0, progress=False))

    torch.manual_seed(0)
    m = method("[attention, queries]")
    groups = {parameter_group(n) for n, _ in m.model.named_parameters()}
    assert groups == {"attention", "ffn", "norms", "queries", "position", "projections"}
    x = torch.randn(8, 8, 4, 4)
    for step in (0, 1):
        before = {n: p.detach().clone() for n, p in m.model.named_parameters()}
        m.learn(TrainTask(step, ("a",), ("a",), ("a",), x, torch.zeros(8, dtype=torch.long)))
        moved = {parameter_group(n) for n, p in m.model.named_parameters() if not torch.equal(p, before[n])}
        assert moved == (groups if step == 0 else groups - {"attention", "queries"})
    with pytest.raises(ConfigError, match="train.freeze must be a list of groups"):
        method("[atention]")
