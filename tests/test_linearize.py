import torch
from torch import nn

from robbench.zoo.architectures import ARCHITECTURES
from robbench.analysis.linearization import class_directions, class_groups, correlation_matrix, linearize
from robbench.defenses import DEFENSES


def random_softmax_model():
    torch.manual_seed(0)
    return DEFENSES.get("nominal")(ARCHITECTURES.get("small-cnn")(1, None), 10).eval()


def test_linearised_network_has_no_activation_and_no_max_pooling():
    lin = linearize(random_softmax_model())
    kinds = {type(m) for m in lin.modules()}
    assert nn.ReLU not in kinds and nn.MaxPool2d not in kinds and nn.AvgPool2d in kinds


def test_linearised_network_is_affine_with_the_class_directions_as_weights():
    model = random_softmax_model()
    w = class_directions(model, (1, 8, 8))
    lin, x = linearize(model), torch.rand(5, 1, 8, 8)
    offset = lin(torch.zeros(1, 1, 8, 8))
    assert torch.allclose(lin(x) - offset, x.flatten(1) @ w.T, atol=1e-4)


def test_linearising_leaves_the_original_model_untouched():
    model = random_softmax_model()
    x = torch.rand(3, 1, 8, 8)
    before = model(x)
    linearize(model)
    assert torch.equal(model(x), before)


def test_correlation_matrix_is_symmetric_with_unit_diagonal():
    c = correlation_matrix(torch.randn(6, 20))
    assert torch.allclose(c, c.T) and torch.allclose(c.diag(), torch.ones(6))
    assert c.abs().max() <= 1 + 1e-6


def test_class_groups_recover_the_blocks_of_a_signed_block_matrix():
    blocks = [[0, 2, 5], [1, 3], [4]]
    c = -torch.ones(6, 6) * 0.3
    for b in blocks:
        for i in b:
            for j in b:
                c[i, j] = 0.6
    assert class_groups(c) == blocks
