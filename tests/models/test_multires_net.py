"""MultiResolutionNet and its heads: cost model agreement, forward/backward, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.models import DetectionOutput, MultiResolutionNet, create_model, list_tasks
from ncp_hpo.models.blocks import BasicBlock, FusionModule
from ncp_hpo.models.heads import TaskHead, register_head
from ncp_hpo.spaces import MultiResolutionSpace, NetworkCode, cost

SPACE = MultiResolutionSpace()
TASKS = list_tasks()
TINY = "8_8-1_1_1_8-1_2_1_1_8_16-1_3_1_1_1_8_16_8-1_4_1_1_1_1_8_8_16_8-8"
LARGEST = "128_128-4_1_4_128-4_2_4_4_128_128-4_3_4_4_4_128_128_128-4_4_4_4_4_4_128_128_128_128-128"


def small_codes(n: int, seed: int) -> np.ndarray:
    """Random valid codes with at most 2 blocks/units and 24 channels (fast to run)."""
    codes = SPACE.sample(n, seed=seed)
    return SPACE.round(np.minimum(codes, np.where(SPACE.is_width, 24, 2)))


def make_input(task: str, batch: int, size: tuple[int, int], frames: int = 3) -> Tensor:
    shape = (batch, 3, frames, *size) if task == "video" else (batch, 3, *size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def measure(net: nn.Module, x: Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x)
    return counter.get_total_flops()


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_every_cost_model_task_has_a_head() -> None:
    assert set(TASKS) == set(cost.TASKS)


# -- the cost model describes the built network exactly --------------------------------------


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("size", [(32, 32), (40, 24), (37, 53)])
def test_cost_model_matches_flop_counter_and_parameter_count(
    task: str, size: tuple[int, int]
) -> None:
    for code in small_codes(2, seed=TASKS.index(task) * 100 + size[0]):
        kw: dict[str, Any] = {"task": task, "num_classes": 7}
        net = create_model(code, **kw).eval()
        flops = cost.flops(code, input_size=size, frames=3, **kw)
        assert measure(net, make_input(task, 1, size)) == 2 * int(flops)
        assert n_params(net) == int(cost.params(code, **kw))


@pytest.mark.parametrize("task", TASKS)
def test_cost_model_matches_full_size_network(task: str) -> None:
    with torch.device("meta"):
        net = create_model(LARGEST, task=task)
        x = make_input(task, 1, (128, 128), frames=8)
    code = SPACE.decode(LARGEST)
    assert measure(net, x) == 2 * int(cost.flops(code, task=task, frames=8))
    assert n_params(net) == int(cost.params(code, task=task))


def test_bev_detection_box_channels_and_input_channels_are_counted() -> None:
    code = small_codes(1, seed=9)[0]
    kw: dict[str, Any] = {"task": "bev-det", "num_classes": 3, "box_channels": 8, "in_chans": 5}
    net = create_model(code, **kw).eval()
    x = torch.randn(1, 5, 48, 40)
    assert measure(net, x) == 2 * int(cost.flops(code, input_size=(48, 40), **kw))
    assert n_params(net) == int(cost.params(code, **kw))


# -- forward and backward of every head -------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_forward_backward_reaches_every_parameter(task: str) -> None:
    net = create_model(TINY, task=task, num_classes=5).train()
    x = make_input(task, 2, (36, 28), frames=2)
    out = net(x)
    if task == "cls" or task == "video":
        assert out.shape == (2, 5)
        loss = out.square().mean()
    elif task == "seg":
        assert out.shape == (2, 5, 36, 28)
        loss = out.square().mean()
    else:
        assert isinstance(out, DetectionOutput)
        assert out.heatmap.shape == (2, 5, 9, 7) and out.boxes.shape == (2, 6, 9, 7)
        loss = out.heatmap.sigmoid().mean() + out.boxes.square().mean()
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_forward_features_shapes_follow_feature_info() -> None:
    net = create_model(TINY)
    feats = net.forward_features(torch.randn(1, 3, 64, 48))
    assert [f.shape[1] for f in feats] == [i["num_chs"] for i in net.feature_info]
    assert [tuple(f.shape[-2:]) for f in feats] == cost.level_sizes((64, 48))[1:]
    assert [i["reduction"] for i in net.feature_info] == [4, 8, 16, 32]
    assert net.num_features == 8


def test_video_clips_are_classified_per_clip() -> None:
    net = create_model(TINY, task="video", num_classes=4).eval()
    clips = torch.randn(3, 3, 2, 32, 32)
    with torch.no_grad():
        batched = net(clips)
        single = torch.cat([net(clips[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


# -- construction -------------------------------------------------------------------------------


def test_create_model_accepts_every_code_form() -> None:
    code = NetworkCode.from_string(TINY)
    vec = code.to_vector()
    nets = [create_model(c) for c in (TINY, code, vec, vec.tolist(), torch.tensor(vec))]
    assert len({n_params(n) for n in nets}) == 1
    assert all(n.code == code for n in nets)
    assert isinstance(nets[0], MultiResolutionNet)


def test_structure_follows_the_code() -> None:
    net = create_model("8_16-2_1_3_8-3_2_1_2_8_8-1_3_1_1_1_8_8_8-2_4_1_1_1_1_8_8_8_8-8")
    stages: Any = net.stages
    assert [len(s) for s in stages] == [2, 3, 1, 2]
    assert len(stages[0][0].parallel.branches[0]) == 3  # n1_1 units
    assert [len(b) for b in stages[1][0].parallel.branches] == [1, 2]
    # The transition block into stage 4 creates branch 3 from the fused branch 2.
    assert len(stages[3][0].fusion.routes) == 4 and len(stages[3][1].fusion.routes) == 4


def test_invalid_codes_and_inputs_are_refused() -> None:
    bad = SPACE.decode(TINY)
    bad[0] = 7
    with pytest.raises(InvalidCodeError, match="i1"):
        create_model(bad)
    with pytest.raises(InvalidCodeError):
        create_model("8_8-1_1")
    with pytest.raises(ValueError, match="unknown task"):
        create_model(TINY, task="depth")
    with pytest.raises(TypeError):
        create_model(TINY, task="cls", box_channels=4)
    with pytest.raises(TypeError, match="create_model"):
        MultiResolutionNet(TINY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        create_model(TINY, task="video")(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        create_model(TINY)(torch.randn(1, 4, 32, 32))


def test_head_registry_refuses_unknown_and_duplicate_tasks() -> None:
    with pytest.raises(ValueError, match="no cost model"):
        register_head("depth")(TaskHead)
    with pytest.raises(ValueError, match="already registered"):
        register_head("cls")(TaskHead)


def test_blocks() -> None:
    block = BasicBlock(8, 16)
    assert block(torch.randn(2, 8, 5, 5)).shape == (2, 16, 5, 5)
    assert n_params(block) == 9 * 8 * 16 + 9 * 16 * 16 + 8 * 16 + 3 * 2 * 16
    fusion = FusionModule([8, 16], [8, 16, 24])
    out = fusion([torch.randn(1, 8, 9, 7), torch.randn(1, 16, 5, 4)])
    assert [tuple(t.shape) for t in out] == [(1, 8, 9, 7), (1, 16, 5, 4), (1, 24, 3, 2)]
    with pytest.raises(ValueError, match="at least"):
        FusionModule([8, 8], [8])
