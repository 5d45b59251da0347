"""Fixed centre generation: MM centres (METHODS §2.6) and repulsive prototypes (§2.5)."""

from __future__ import annotations

import math

import pytest
import torch

from robbench.defenses.centres import mm_centres, repulsive_prototypes


pytestmark = pytest.mark.usefixtures("one_thread")


def off_diagonal(gram: torch.Tensor) -> torch.Tensor:
    return gram[~torch.eye(len(gram), dtype=torch.bool)]


@pytest.mark.parametrize("dim", [10, 32])
def test_mm_centres_are_unit_vectors_with_inner_product_minus_one_over_l_minus_one(dim):
    mu = mm_centres(10, dim, scale=1.0)
    assert mu.shape == (10, dim)
    assert torch.allclose(mu.norm(dim=1), torch.ones(10), atol=1e-6)
    assert torch.allclose(off_diagonal(mu @ mu.T), torch.full((90,), -1 / 9), atol=1e-6)


def test_mm_centres_scaled_norm_equals_c_mm():
    assert torch.allclose(mm_centres(10, 16, scale=10.0).norm(dim=1), torch.full((10,), 10.0))


@pytest.mark.parametrize("num_classes,dim,optimum", [
    (6, 2, 0.5),    # regular hexagon: cos 60°
    (10, 5, 0.0),   # cross-polytope ±e_i is optimal for L ≤ 2d (Rankin)
])
def test_mm_centres_below_l_dimensions_approach_the_smallest_max_inner_product(num_classes, dim,
                                                                               optimum):
    mu = mm_centres(num_classes, dim, scale=1.0)
    assert torch.allclose(mu.norm(dim=1), torch.ones(num_classes), atol=1e-6)
    assert off_diagonal(mu @ mu.T).max().item() == pytest.approx(optimum, abs=1e-2)


def _initial_prototypes(num_classes: int, dim: int, seed: int) -> torch.Tensor:
    return torch.rand(num_classes, dim, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("distance,radius", [("linf", 0.5), ("linf", 1.0), ("l2", 3.0)])
def test_repulsive_prototypes_stay_within_the_radius(distance, radius):
    p = repulsive_prototypes(10, 30, distance, steps=100, radius=radius, seed=1)
    norm = p.abs().amax(1) if distance == "linf" else p.norm(dim=1)
    assert (norm <= radius + 1e-5).all()


@pytest.mark.parametrize("distance", ["linf", "l2"])
def test_repulsive_prototypes_end_farther_apart_than_they_start(distance):
    ord = math.inf if distance == "linf" else 2
    radius = 1.0 if distance == "linf" else math.sqrt(30)
    start = _initial_prototypes(10, 30, seed=3)
    p = repulsive_prototypes(10, 30, distance, steps=200, radius=radius, seed=3)

    def pairwise(q: torch.Tensor) -> torch.Tensor:
        return off_diagonal(torch.linalg.vector_norm(q[:, None] - q[None], ord=ord, dim=-1))

    assert pairwise(p).sum() > pairwise(start).sum()
    assert pairwise(p).min() > pairwise(start).min()


def test_repulsive_prototypes_are_deterministic_given_the_seed():
    assert torch.equal(repulsive_prototypes(5, 8, steps=20, seed=7),
                       repulsive_prototypes(5, 8, steps=20, seed=7))
