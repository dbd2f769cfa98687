"""The runs' optimisers (AdamW, SGD) and learning-rate schedule, without ``torch.optim``'s base.

``torch.optim.Optimizer`` imports torch's compiler package (``torch._dynamo``) the first time
an optimiser is built or stepped: 1.2 s of every process that trains, which a process per run
(W&B's command mode, ``asc-sweep train``) pays every run, and the biggest part of such a
process's start after importing torch itself (BENCHMARKS.md, per-run overhead). These classes
make the same updates with the same kernels: torch's fused multi-tensor ``_fused_adamw_`` and
``_fused_sgd_`` (what ``torch.optim.AdamW(fused=True)`` calls) on CPUs and CUDA, and the
same formulas tensor by tensor elsewhere. Tests hold both paths to torch.optim's updates.

They keep the part of ``torch.optim``'s interface a run uses: ``param_groups`` (one group;
``GradScaler`` unscales through it), ``zero_grad``, ``step``, ``state_dict`` and
``load_state_dict`` (tensors and numbers only, for weights-only checkpoints). Parameters with
no gradient (frozen layers) are skipped, as torch does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

FUSED_DEVICES = ("cpu", "cuda")


class Optimizer:
    """One parameter group and per-parameter state; subclasses define :meth:`_update`."""

    def __init__(self, params: Iterable[torch.Tensor], **hyper: Any) -> None:
        self.params = list(params)
        self.param_groups: list[dict[str, Any]] = [{"params": self.params, **hyper}]
        self.state: dict[int, dict[str, torch.Tensor]] = {}

    @property
    def group(self) -> dict[str, Any]:
        return self.param_groups[0]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient, grouped by device and dtype
        (what one fused kernel call takes)."""
        groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, p in enumerate(self.params):
            if p.grad is not None:
                groups.setdefault((p.device, p.dtype), []).append(i)
        for (device, _), indices in groups.items():
            # torch's fused kernels take a parameter and its gradient in one layout (as autograd
            # makes them); anything else takes the tensor-by-tensor path
            fused = device.type in FUSED_DEVICES and all(
                _grad(self.params[i]).stride() == self.params[i].stride() for i in indices
            )
            self._update(indices, fused=fused)

    def _update(self, indices: list[int], *, fused: bool) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        hyper = {k: v for k, v in self.group.items() if k != "params"}
        return {"state": {i: dict(s) for i, s in self.state.items()}, "group": hyper}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.group.update(state["group"])
        self.state = {
            int(i): {k: v.to(self.params[int(i)].device) for k, v in s.items()}
            for i, s in state["state"].items()
        }


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov and Hutter, ICLR 2019), torch's update."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        *,
        lr: float,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay, betas=betas, eps=eps)

    def _update(self, indices: list[int], *, fused: bool) -> None:
        group = self.group
        lr, wd, eps = float(group["lr"]), float(group["weight_decay"]), float(group["eps"])
        beta1, beta2 = (float(b) for b in group["betas"])
        params = [self.params[i] for i in indices]
        states = [self._state(i) for i in indices]
        grads = [_grad(p) for p in params]
        avgs, squares = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        if fused:
            torch._fused_adamw_(
                params, grads, avgs, squares, [], steps,
                lr=lr, beta1=beta1, beta2=beta2, weight_decay=wd, eps=eps,
                amsgrad=False, maximize=False,
            )  # fmt: skip
            return
        for p, g, avg, sq, step in zip(params, grads, avgs, squares, steps, strict=True):
            t = float(step)
            p.mul_(1 - lr * wd)
            avg.lerp_(g, 1 - beta1)
            sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (sq.sqrt() / (1 - beta2**t) ** 0.5).add_(eps)
            p.addcdiv_(avg, denom, value=-lr / (1 - beta1**t))

    def _state(self, i: int) -> dict[str, torch.Tensor]:
        if i not in self.state:
            p = self.params[i]
            self.state[i] = {
                "step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        return self.state[i]


class SGD(Optimizer):
    """SGD with momentum (Nesterov's when ``nesterov``) and L2 weight decay, torch's update."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        *,
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        super().__init__(
            params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )

    def _update(self, indices: list[int], *, fused: bool) -> None:
        momentum = float(self.group["momentum"])
        if momentum <= 0:
            self._sgd(indices, [], first=False, fused=fused)
            return
        # A parameter's first step takes its gradient as the momentum buffer (torch's rule);
        # a layer unfrozen later starts its buffer then.
        new = [i for i in indices if i not in self.state]
        old = [i for i in indices if i in self.state]
        for i in new:
            self.state[i] = {"momentum_buffer": torch.empty_like(self.params[i])}
        for part, first in ((new, True), (old, False)):
            if part:
                buffers = [self.state[i]["momentum_buffer"] for i in part]
                self._sgd(part, buffers, first=first, fused=fused)

    def _sgd(
        self, indices: list[int], buffers: list[torch.Tensor], *, first: bool, fused: bool
    ) -> None:
        group = self.group
        lr, wd, momentum = (float(group[k]) for k in ("lr", "weight_decay", "momentum"))
        nesterov = bool(group["nesterov"])
        params = [self.params[i] for i in indices]
        grads = [_grad(p) for p in params]
        if fused:
            torch._fused_sgd_(
                params, grads, buffers,
                weight_decay=wd, momentum=momentum, lr=lr, dampening=0.0,
                nesterov=nesterov, maximize=False, is_first_step=first,
            )  # fmt: skip
            return
        for k, (p, g) in enumerate(zip(params, grads, strict=True)):
            d_p = g.add(p, alpha=wd) if wd else g
            if buffers:
                buf = buffers[k]
                if first:
                    buf.copy_(d_p)
                else:
                    buf.mul_(momentum).add_(d_p)
                d_p = d_p.add(buf, alpha=momentum) if nesterov else buf
            p.add_(d_p, alpha=-lr)


def _grad(p: torch.Tensor) -> torch.Tensor:
    if p.grad is None:
        raise ValueError("a parameter without a gradient reached the update")
    return p.grad


class LrSchedule:
    """The learning rate at each optimiser step: the group's peak rate times
    ``factor(step)`` (what ``torch.optim.lr_scheduler.LambdaLR`` does, per step)."""

    def __init__(self, optimizer: Optimizer, factor: Callable[[int], float]) -> None:
        self.optimizer, self.factor, self.steps = optimizer, factor, 0
        optimizer.group.setdefault("initial_lr", optimizer.group["lr"])
        self._apply()

    def step(self) -> None:
        self.steps += 1
        self._apply()

    def _apply(self) -> None:
        group = self.optimizer.group
        group["lr"] = group["initial_lr"] * self.factor(self.steps)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self._apply()
