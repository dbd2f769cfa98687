"""The runs' optimisers and schedule against torch.optim's: the same updates, no compiler import."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch

from asc_sweep.models import ModelSpec, build_model
from asc_sweep.run import optim
from asc_sweep.run.optim import SGD, AdamW, LrSchedule, Optimizer
from asc_sweep.run.schedule import lr_factor
from asc_sweep.run.train import make_optimizer
from asc_sweep.sweep.config import RunConfig

HYPER = {"lr": 0.01, "weight_decay": 0.05}


def pair(
    kind: str, fused: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[torch.nn.Module, Optimizer, torch.nn.Module, torch.optim.Optimizer]:
    """The same model twice: one with asc-sweep's optimiser (its fused kernels or its
    tensor-by-tensor path), one with torch.optim's reference loop."""
    monkeypatch.setattr(optim, "FUSED_DEVICES", ("cpu",) if fused else ())
    torch.manual_seed(0)
    net = build_model("dcase2018_cnn", ModelSpec(n_classes=4, n_mels=40))
    net.to(memory_format=torch.channels_last)  # as runs hold their weights
    twin = copy.deepcopy(net)
    if kind.startswith("sgd"):  # "sgd": Nesterov momentum, as the recipes; "sgd-plain": none
        momentum = 0.9 if kind == "sgd" else 0.0
        nesterov = momentum > 0
        ours: Optimizer = SGD(net.parameters(), momentum=momentum, nesterov=nesterov, **HYPER)
        ref: torch.optim.Optimizer = torch.optim.SGD(
            twin.parameters(), momentum=momentum, nesterov=nesterov, foreach=False, **HYPER
        )
    else:
        ours = AdamW(net.parameters(), **HYPER)
        ref = torch.optim.AdamW(twin.parameters(), foreach=False, **HYPER)
    return net, ours, twin, ref


def same_grads(net: torch.nn.Module, twin: torch.nn.Module, frozen: str | None = None) -> None:
    """Random gradients, the same on both; none on the parameters under ``frozen``."""
    for (name, a), b in zip(net.named_parameters(), twin.parameters(), strict=True):
        a.grad = None if frozen and name.startswith(frozen) else torch.randn_like(a)
        b.grad = None if a.grad is None else a.grad.clone()


@pytest.mark.parametrize(
    ("fused", "row_major"),
    [(True, False), (False, False), (True, True)],
    ids=["fused", "per-tensor", "gradients in another layout than the weights"],
)
@pytest.mark.parametrize("kind", ["adamw", "sgd", "sgd-plain"])
def test_updates_match_torch_optim(
    kind: str, fused: bool, row_major: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row-major gradients of channels-last weights take the tensor-by-tensor path (the
    fused kernels take one layout): the update is the same."""
    net, ours, twin, ref = pair(kind, fused, monkeypatch)
    for step in range(20):
        # block2 frozen for the first 5 steps, as a pretrained model's features can be: its
        # state (Adam's moments, SGD's momentum buffer) starts when it first has a gradient
        same_grads(net, twin, "block2" if step < 5 else None)
        for p in net.parameters():
            if row_major and p.grad is not None:
                p.grad = p.grad.contiguous()
        for group in (ours.param_groups[0], ref.param_groups[0]):
            group["lr"] = 0.01 * (1 + step % 3)  # a schedule moves the rate between steps
        ours.step()
        ref.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_a_restored_optimiser_continues_bit_for_bit(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    net, ours, _, _ = pair(kind, True, monkeypatch)
    for _ in range(3):
        same_grads(net, net)
        ours.step()
    saved = copy.deepcopy((net.state_dict(), ours.state_dict()))
    grads = [torch.randn_like(p) for p in net.parameters()]

    def one_more(model: torch.nn.Module, opt: Optimizer) -> list[torch.Tensor]:
        for p, g in zip(model.parameters(), grads, strict=True):
            p.grad = g.clone()
        opt.step()
        return [p.detach().clone() for p in model.parameters()]

    expected = one_more(net, ours)
    fresh, fresh_opt, _, _ = pair(kind, True, monkeypatch)
    fresh.load_state_dict(saved[0])
    fresh_opt.load_state_dict(saved[1])
    for a, b in zip(one_more(fresh, fresh_opt), expected, strict=True):
        assert torch.equal(a, b)


def test_the_schedule_sets_lambda_lr_s_rates_and_resumes() -> None:
    factor = lambda s: lr_factor(s, total_steps=40, warmup_steps=5, kind="cosine")  # noqa: E731
    p = torch.nn.Parameter(torch.zeros(2))
    ours = AdamW([p], lr=0.003)
    ref = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.003)
    sched, ref_sched = LrSchedule(ours, factor), torch.optim.lr_scheduler.LambdaLR(ref, factor)
    rates = []
    for _ in range(40):
        assert ours.param_groups[0]["lr"] == ref.param_groups[0]["lr"]
        rates.append(ours.param_groups[0]["lr"])
        ref.step()  # no gradients: nothing moves; LambdaLR wants a step before its own
        sched.step()
        ref_sched.step()
    again = LrSchedule(AdamW([p], lr=0.003), factor)
    again.load_state_dict({"steps": 7})
    assert again.optimizer.param_groups[0]["lr"] == rates[7]


def test_grad_scaler_unscales_through_param_groups_and_skips_inf_steps() -> None:
    torch.manual_seed(1)
    p = torch.nn.Parameter(torch.randn(4))
    twin = torch.nn.Parameter(p.detach().clone())
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    ours, plain = AdamW([p], lr=0.1), AdamW([twin], lr=0.1)
    for x in (torch.randn(4), torch.full((4,), float("inf")), torch.randn(4)):
        scaler.scale((p * x).sum()).backward()
        scaler.step(ours)  # type: ignore[arg-type]
        scaler.update()
        ours.zero_grad()
        if torch.isfinite(x).all():  # the scaler skips the step whose gradient overflowed
            (twin * x).sum().backward()
            plain.step()
            plain.zero_grad()
    torch.testing.assert_close(p, twin)
    assert scaler.get_scale() < 1024.0


def test_make_optimizer_takes_the_configured_kind_and_trainable_parameters() -> None:
    net = build_model("dcase2017_mlp", ModelSpec(n_classes=3, n_mels=40))
    first = next(net.parameters())
    first.requires_grad_(False)
    sgd = make_optimizer(RunConfig.from_dict({"optimizer": "sgd", "momentum": 0.9}), net)
    assert isinstance(sgd, SGD) and sgd.param_groups[0]["nesterov"] is True
    assert all(p is not first for p in sgd.param_groups[0]["params"])
    assert isinstance(make_optimizer(RunConfig(), net), AdamW)


def test_training_never_imports_torch_s_compiler() -> None:
    """torch.optim's base class imports torch._dynamo (1.2 s a process); a run does not."""
    code = (
        "import sys, torch\n"
        "from asc_sweep.models import ModelSpec, build_model\n"
        "from asc_sweep.run.train import make_optimizer, LrSchedule\n"
        "from asc_sweep.sweep.config import RunConfig\n"
        "net = build_model('dcase2018_cnn', ModelSpec(n_classes=3, n_mels=40))\n"
        "opt = make_optimizer(RunConfig(), net)\n"
        "sched = LrSchedule(opt, lambda s: 1.0)\n"
        "net(torch.randn(2, 40, 50), torch.tensor([50, 40])).sum().backward()\n"
        "opt.step(); sched.step(); opt.zero_grad()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
