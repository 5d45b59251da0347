"""The linearised network of METHODS §4.3: activations and normalisation layers
removed, max pooling replaced by average pooling, weights and biases kept. Its
input gradient W_j does not depend on x, so C = Ŵ Ŵᵀ compares classes globally."""

from __future__ import annotations

import copy

import torch
from torch import nn

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus)
NORMALISATIONS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


def linearize(model: nn.Module) -> nn.Module:
    """A copy of `model` with every activation / normalisation replaced by identity
    and max pooling by average pooling of the same geometry."""
    lin = copy.deepcopy(model).eval()
    for name, module in list(lin.named_modules()):
        replacement = None
        if isinstance(module, ACTIVATIONS + NORMALISATIONS):
            replacement = nn.Identity()
        elif isinstance(module, nn.MaxPool2d):
            replacement = nn.AvgPool2d(module.kernel_size, module.stride, module.padding)
        if replacement is not None:
            parent_name, _, child = name.rpartition(".")
            setattr(lin.get_submodule(parent_name) if parent_name else lin, child, replacement)
    return lin


def class_directions(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """W (L x n): row j = ∇_x of the linearised logit j (one backward pass per class)."""
    lin = linearize(model)
    x = torch.zeros(1, *input_shape, requires_grad=True)
    logits = lin(x)[0]
    rows = [torch.autograd.grad(logits[j], x, retain_graph=True)[0].flatten()
            for j in range(len(logits))]
    return torch.stack(rows)


def correlation_matrix(w: torch.Tensor) -> torch.Tensor:
    """C = Ŵ Ŵᵀ with rows L2-normalised: entries in [−1, 1]."""
    unit = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return unit @ unit.T


def class_groups(c: torch.Tensor) -> list[list[int]]:
    """Blocks of C_op = sign(C): correlation clustering by greedy merging. Two groups
    merge while their cross entries hold more +1 than −1 (ties broken by the sum of
    C itself), so each block gathers classes that are mostly positively correlated.
    (Connected components of C > 0 would chain almost everything into one block.)"""
    c_op = torch.where(c > 0, 1.0, -1.0)
    groups = [[i] for i in range(len(c))]
    while True:
        best, best_gain = None, (0.0, 0.0)
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                cross = (groups[a], groups[b])
                gain = (c_op[cross[0]][:, cross[1]].sum().item(), c[cross[0]][:, cross[1]].sum().item())
                if gain > best_gain:
                    best, best_gain = (a, b), gain
        if best is None:
            return sorted(sorted(g) for g in groups)
        a, b = best
        groups[a] = groups[a] + groups.pop(b)
