"""An L2 Lipschitz upper bound of a feature extractor f (METHODS §4.1): the product of
per-layer operator norms, L_f = Π_l ||layer_l||₂.

Per layer:
- Linear: exact spectral norm (largest singular value, SVD).
- Conv2d: the operator norm of the convolution as a linear map on the layer's actual
  input shape, by power iteration on AᵀA with A = conv2d and Aᵀ = conv_transpose2d
  (`conv_norm_power`). Power iteration converges from below; `conv_norm_fft` gives a
  certified upper bound (the zero-padded convolution is a compression of a circular
  one on a large enough torus, whose norm is the largest singular value over the
  DFT frequencies of the kernel; a stride only subsamples, norm ≤ 1). The bound
  used is `method="power"` (default, METHODS' choice; tight) or `method="fft"`
  (certified, looser); the report always gives both.
- The input normalisation (x − mean)/std: 1/min(std).
- BatchNorm (eval): max |γ|/sqrt(var + eps).
- ReLU, LeakyReLU (slope ≤ 1), Tanh: 1; Sigmoid: 1/4. Max pooling: 1 for
  non-overlapping windows, sqrt(Π ceil(k/s)) otherwise (each input lies in that many
  windows). Average pooling: linear, power iteration (autograd adjoint).
- Flatten, Identity, Dropout (eval): 1. Residual blocks: ||branch|| + ||shortcut||.
Any other module raises: an unknown layer has no bound, and guessing one would make
the certified radius unsound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from robbench.errors import RobbenchError
from robbench.zoo.architectures import BasicBlock, FeatureNet, Normalize

POWER_ITERS = 500
POWER_TOL = 1e-9


@dataclass
class LayerFactor:
    name: str
    kind: str
    value: float  # the factor used in the product
    method: str
    certified_value: float | None = None  # a certified upper bound, where it differs from value


@dataclass
class LipschitzBound:
    value: float
    certified_value: float  # the product with every factor replaced by a certified bound
    method: str
    layers: list[LayerFactor] = field(default_factory=list)

    def describe(self) -> str:
        used = ("power iteration (converged estimate of each conv's operator norm, from below)"
                if self.method == "power" else "certified circular-convolution (FFT) bound per conv")
        return (f"L_f = {self.value:.4g}: product of per-layer L2 operator norms over "
                f"{len(self.layers)} layers (linear: exact SVD; conv: {used}; input normalisation "
                f"1/min std; ReLU/max-pool 1-Lipschitz). Certified product (FFT bound per conv): "
                f"{self.certified_value:.4g}")

    def as_dict(self) -> dict:
        return {"value": self.value, "certified_value": self.certified_value, "method": self.method,
                "layers": [vars(f) for f in self.layers]}


# --- convolutions ---------------------------------------------------------------------
def _conv_maps(conv: nn.Conv2d, in_shape: tuple[int, ...]):
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise RobbenchError(f"Lipschitz bound: conv with padding {conv.padding!r} / mode "
                            f"{conv.padding_mode!r} is not supported")
    w = conv.weight.detach().double().cpu()
    out_hw = [(in_shape[-2 + i] + 2 * conv.padding[i] - conv.dilation[i] * (conv.kernel_size[i] - 1) - 1)
              // conv.stride[i] + 1 for i in range(2)]
    out_pad = [in_shape[-2 + i] - ((out_hw[i] - 1) * conv.stride[i] - 2 * conv.padding[i]
                                   + conv.dilation[i] * (conv.kernel_size[i] - 1) + 1) for i in range(2)]

    def forward(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)

    def adjoint(u: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(u, w, None, conv.stride, conv.padding, tuple(out_pad),
                                  conv.groups, conv.dilation)

    return forward, adjoint


def power_iteration(forward, adjoint, in_shape: tuple[int, ...], iters: int = POWER_ITERS,
                    tol: float = POWER_TOL, seed: int = 0) -> float:
    """||A||₂ by power iteration on AᵀA (float64, fixed seed)."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn((1, *in_shape), generator=gen, dtype=torch.float64)
    v /= v.norm()
    sigma = 0.0
    for _ in range(iters):
        u = forward(v)
        new = u.norm().item()
        w = adjoint(u)
        norm = w.norm()
        if norm == 0:
            return 0.0
        v = w / norm
        if abs(new - sigma) <= tol * max(new, 1e-30):
            sigma = new
            break
        sigma = new
    return forward(v).norm().item()


def conv_norm_power(conv: nn.Conv2d, in_shape: tuple[int, ...], **kw) -> float:
    """Operator norm of the conv (bias dropped) on inputs of shape in_shape = (C, H, W)."""
    forward, adjoint = _conv_maps(conv, in_shape)
    return power_iteration(forward, adjoint, tuple(in_shape), **kw)


def conv_norm_fft(conv: nn.Conv2d, in_shape: tuple[int, ...]) -> float:
    """Certified upper bound: max over DFT frequencies of σ_max of the (c_out × c_in)
    kernel transfer matrix, on a torus of size H + k_eff − 1 (no wrap-around)."""
    w = conv.weight.detach().double().cpu()
    kh, kw = conv.kernel_size
    dh, dw = conv.dilation
    keff = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    dilated = torch.zeros(w.shape[0], w.shape[1], *keff, dtype=w.dtype)
    dilated[:, :, ::dh, ::dw] = w
    size = tuple(in_shape[-2 + i] + keff[i] - 1 + 2 * conv.padding[i] for i in range(2))
    spectrum = torch.fft.fft2(dilated, s=size).permute(2, 3, 0, 1)  # (N, N, c_out, c_in/groups)
    per_group = w.shape[0] // conv.groups
    best = 0.0
    for g in range(conv.groups):
        block = spectrum[:, :, g * per_group:(g + 1) * per_group]
        best = max(best, torch.linalg.matrix_norm(block, ord=2).max().item())
    return best


# --- the walk over the network ------------------------------------------------------------
def _input_shapes(net: nn.Module, input_shape: tuple[int, ...]) -> dict[nn.Module, tuple[int, ...]]:
    shapes: dict[nn.Module, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple) -> None:  # returns None: inputs unchanged
        shapes.setdefault(module, tuple(args[0].shape[1:]))

    hooks = [m.register_forward_pre_hook(record) for m in net.modules()]
    try:
        tensors = [*net.parameters(), *net.buffers()]
        with torch.no_grad():
            net(torch.zeros(1, *input_shape, device=tensors[0].device if tensors else "cpu"))
    finally:
        for h in hooks:
            h.remove()
    return shapes


class _Walker:
    def __init__(self, shapes, method: str) -> None:
        self.shapes, self.method = shapes, method

    def factors(self, module: nn.Module, name: str) -> list[LayerFactor]:
        if isinstance(module, FeatureNet):
            return (self.factors(module.normalize, f"{name}normalize")
                    + self.factors(module.trunk, f"{name}trunk.")
                    + self.factors(module.embedding, f"{name}embedding"))
        if isinstance(module, nn.Sequential):
            return [f for i, child in enumerate(module) for f in self.factors(child, f"{name}{i}.")]
        if isinstance(module, BasicBlock):
            branch = math.prod(f.value for m, n in ((module.conv1, "conv1"), (module.bn1, "bn1"),
                                                    (module.conv2, "conv2"), (module.bn2, "bn2"))
                               for f in self.factors(m, n))
            short = math.prod([f.value for f in self.factors(module.shortcut, "shortcut")] or [1.0])
            return [LayerFactor(name.rstrip("."), "residual block", branch + short,
                                "||branch|| + ||shortcut||")]
        if module not in self.shapes and not isinstance(module, (nn.Identity, nn.Flatten)):
            raise RobbenchError(f"Lipschitz bound: module {name!r} was not reached by a forward pass")
        return [self.leaf(module, name.rstrip("."))]

    def leaf(self, module: nn.Module, name: str) -> LayerFactor:
        kind = type(module).__name__
        if isinstance(module, nn.Linear):
            sigma = torch.linalg.matrix_norm(module.weight.detach().double(), ord=2).item()
            return LayerFactor(name, kind, sigma, "exact (SVD)")
        if isinstance(module, nn.Conv2d):
            shape = self.shapes[module]
            power = conv_norm_power(module, shape)
            fft = conv_norm_fft(module, shape)
            if self.method == "fft":
                return LayerFactor(name, kind, fft, "certified FFT bound", fft)
            return LayerFactor(name, kind, power, "power iteration (conv2d / conv_transpose2d)", fft)
        if isinstance(module, Normalize):
            return LayerFactor(name, kind, 1.0 / module.std.detach().abs().min().item(), "1 / min std")
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if module.training:
                raise RobbenchError("Lipschitz bound: BatchNorm in training mode; call model.eval()")
            scale = 1.0 / torch.sqrt(module.running_var.detach().double() + module.eps)
            if module.affine:
                scale = scale * module.weight.detach().double().abs()
            return LayerFactor(name, kind, scale.max().item(), "max |gamma| / sqrt(var + eps)")
        if isinstance(module, (nn.ReLU, nn.Tanh, nn.Identity, nn.Flatten, nn.Dropout)):
            return LayerFactor(name, kind, 1.0, "1-Lipschitz")
        if isinstance(module, nn.LeakyReLU):
            return LayerFactor(name, kind, max(1.0, abs(module.negative_slope)), "max(1, |slope|)")
        if isinstance(module, nn.Sigmoid):
            return LayerFactor(name, kind, 0.25, "max derivative 1/4")
        if isinstance(module, nn.MaxPool2d):
            k = _pair(module.kernel_size)
            s = _pair(module.stride or module.kernel_size)
            d = _pair(module.dilation)
            cover = math.prod(math.ceil((d[i] * (k[i] - 1) + 1) / s[i]) for i in range(2))
            return LayerFactor(name, kind, math.sqrt(cover) if cover > 1 else 1.0,
                               "sqrt(windows per input)" if cover > 1 else "1 (non-overlapping windows)")
        if isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            shape = self.shapes[module]
            value = power_iteration(lambda v: module(v), lambda u: _vjp(module, shape, u), shape)
            return LayerFactor(name, kind, value, "power iteration (linear)")
        raise RobbenchError(f"Lipschitz bound: no bound for layer {name!r} ({kind}); supported: "
                            "Linear, Conv2d, Normalize, BatchNorm, ReLU, LeakyReLU, Tanh, Sigmoid, "
                            "max/avg pooling, Flatten, residual BasicBlock")


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _vjp(module: nn.Module, shape: tuple[int, ...], u: torch.Tensor) -> torch.Tensor:
    x = torch.zeros((1, *shape), dtype=u.dtype, requires_grad=True)
    with torch.enable_grad():
        grad, = torch.autograd.grad(module(x), x, u)
    return grad


def lipschitz_bound(net: nn.Module, input_shape: tuple[int, ...], method: str = "power") -> LipschitzBound:
    """L_f for `net` (a zoo FeatureNet, an nn.Sequential, ...) on inputs of `input_shape`."""
    if method not in ("power", "fft"):
        raise RobbenchError(f"Lipschitz method must be 'power' or 'fft', not {method!r}")
    net = net.eval()
    shapes = _input_shapes(net, tuple(input_shape))
    factors = _Walker(shapes, method).factors(net, "")
    value = math.prod(f.value for f in factors)
    certified = math.prod(f.certified_value if f.certified_value is not None else f.value
                          for f in factors)
    return LipschitzBound(value=value, certified_value=certified, method=method, layers=factors)
