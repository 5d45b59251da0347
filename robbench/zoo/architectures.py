"""Feature extractors by id. Each maps x in [0,1] to a feature vector f(x) of size
`feature_dim`; input normalisation lives inside the network (METHODS §5)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from robbench.registry import Registry

# (in_channels, feature_dim or None for the trunk's natural width) -> network
ArchitectureFactory = Callable[[int, "int | None"], nn.Module]
ARCHITECTURES: Registry[ArchitectureFactory] = Registry("architecture")


class Normalize(nn.Module):
    """Per-channel standardisation; mean/std are buffers so checkpoints carry them."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((1, channels, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, channels, 1, 1), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        self.mean.copy_(x.mean(dim=(0, 2, 3), keepdim=True))
        self.std.copy_(x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3))


class FeatureNet(nn.Module):
    """normalise -> trunk -> optional linear embedding to `feature_dim`."""

    def __init__(self, in_channels: int, trunk: nn.Module, trunk_dim: int,
                 feature_dim: int | None) -> None:
        super().__init__()
        self.normalize = Normalize(in_channels)
        self.trunk = trunk
        self.embedding = nn.Linear(trunk_dim, feature_dim) if feature_dim else nn.Identity()
        self.feature_dim = feature_dim or trunk_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.trunk(self.normalize(x)))


@ARCHITECTURES.register("small-cnn")
def small_cnn(in_channels: int, feature_dim: int | None = None) -> FeatureNet:
    """For 8x8 digits: two 3x3 convs, one pool, a 128-unit hidden layer (~150k weights)."""
    trunk = nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
    )
    return FeatureNet(in_channels, trunk, 128, feature_dim)


@ARCHITECTURES.register("mnist-cnn")
def mnist_cnn(in_channels: int, feature_dim: int | None = None) -> FeatureNet:
    """For 28x28 MNIST: three small convs and a 128-unit hidden layer (~90k weights),
    sized so adversarial training fits in minutes on 2 CPU cores."""
    trunk = nn.Sequential(
        nn.Conv2d(in_channels, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(),
    )
    return FeatureNet(in_channels, trunk, 128, feature_dim)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()  # modules, so linearize() can remove them
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


@ARCHITECTURES.register("resnet18")
def resnet18(in_channels: int, feature_dim: int | None = None) -> FeatureNet:
    """CIFAR-style ResNet-18 (3x3 stem, no max pool), 512-d pooled features."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False),
                               nn.BatchNorm2d(64), nn.ReLU()]
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return FeatureNet(in_channels, nn.Sequential(*layers), 512, feature_dim)
