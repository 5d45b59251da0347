"""Magnet loss, ClusTR and ClusTR+QTRADES training (METHODS §2.2).

Batches are neighbourhoods, not i.i.d. samples: a seed cluster drawn with
probability ∝ its running mean loss, plus the M−1 nearest clusters of other
classes, D samples from each. Within a batch the centres and σ² are the batch
estimates (so the loss has gradients through them, as in the magnet loss paper);
after every epoch the clusters are re-estimated by per-class k-means++ on the
training features with the model in eval mode, and stored in the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model_zoo.recipes.adversarial import eval_mode
from model_zoo.recipes.base import TrainContext, register_recipe


@torch.no_grad()
def all_features(ctx: TrainContext, batch_size: int = 512) -> torch.Tensor:
    with eval_mode(ctx.model):
        return torch.cat([ctx.model.features(ctx.train.x[i:i + batch_size].to(ctx.device))
                          for i in range(0, len(ctx.train), batch_size)])


SIGMA2_FLOOR = 1e-12


def batch_magnet_loss(f: torch.Tensor, cluster: torch.Tensor, cluster_class: torch.Tensor,
                      alpha: float) -> torch.Tensor:
    """Per-sample magnet loss with the batch's own cluster means and variance.
    `cluster` (n,) indexes the batch's clusters; `cluster_class` (m,) their classes."""
    m = len(cluster_class)
    onehot = F.one_hot(cluster, m).to(f.dtype)  # (n, m)
    means = (onehot.T @ f) / onehot.sum(0).clamp_min(1)[:, None]
    d2 = (f[:, None, :] - means[None]).pow(2).sum(-1)  # (n, m)
    own = d2.gather(1, cluster[:, None]).squeeze(1)
    # a batch of single-sample clusters has σ² = 0 (then 0/0 = NaN): floor it
    sigma2 = (own.sum() / max(len(f) - 1, 1)).clamp_min(SIGMA2_FLOOR)
    scores = -d2 / (2 * sigma2)
    other_class = cluster_class[None, :] != cluster_class[cluster][:, None]
    push = torch.logsumexp(scores.masked_fill(~other_class, float("-inf")), dim=1)
    return F.relu(alpha + own / (2 * sigma2) + push)


def neighbourhood(seed: int, centres: torch.Tensor, cluster_class: torch.Tensor,
                  nonempty: torch.Tensor, size: int) -> torch.Tensor:
    """The seed cluster followed by its size−1 nearest non-empty clusters of other
    classes (fewer when there are not enough)."""
    dist = (centres - centres[seed]).pow(2).sum(1)
    dist[(cluster_class == cluster_class[seed]) | ~nonempty] = float("inf")
    others = dist.argsort()[: size - 1]
    return torch.cat([torch.tensor([seed]), others[torch.isfinite(dist[others])]])


def qtrades_adversary(model, x: torch.Tensor, p_clean: torch.Tensor, eps: float,
                      step: float) -> torch.Tensor:
    """QTRADES' x_adv: from x' = clip(x + U(−ε, ε)), ONE signed step up
    ∇_{x'} CE(p(x'), p(x)), projected to the ε-ball and [0, 1]."""
    with eval_mode(model):
        start = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1).requires_grad_(True)
        ce = -(p_clean * F.log_softmax(model(start), dim=1)).sum()
        grad, = torch.autograd.grad(ce, start)
    return torch.min(torch.max(start.detach() + step * grad.sign(), x - eps), x + eps).clamp(0, 1)


def qtrades_term(model, x: torch.Tensor, eps: float, step: float) -> torch.Tensor:
    """CE(p(x_adv), p(x)) per sample, p the wrapper's softmax (stored centres)."""
    with torch.no_grad():
        p_clean = F.softmax(model(x), dim=1)
    x_adv = qtrades_adversary(model, x, p_clean, eps, step)
    return -(p_clean * F.log_softmax(model(x_adv), dim=1)).sum(1)


def warm_start(ctx: TrainContext) -> None:
    """ClusTR's warm start: CE training with a temporary linear head, then dropped."""
    head = nn.Linear(ctx.model.feature_dim, ctx.model.num_classes).to(ctx.device)
    opt = torch.optim.Adam(list(ctx.model.body.parameters()) + list(head.parameters()),
                           lr=ctx.args["warm_lr"])
    for epoch in range(ctx.args["warm_epochs"]):
        ctx.model.train()
        total = 0.0
        for x, y in ctx.batches(ctx.args["batch_size"]):
            loss = F.cross_entropy(head(ctx.model.features(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
        ctx.log(f"warm start epoch {epoch + 1}/{ctx.args['warm_epochs']}  CE {total / len(ctx.train):.4f}")


@register_recipe("magnet")
def train_magnet(ctx: TrainContext) -> None:
    model, args = ctx.model, ctx.args
    if args.get("warm_epochs", 0):
        warm_start(ctx)
    k, num_classes = model.clusters_per_class, model.num_classes
    m_clusters, d_per = args.get("clusters_per_batch", 12), args.get("samples_per_cluster", 20)
    lam = args.get("qtrades_lambda", 0.0)
    step_fraction = args.get("qtrades_step_fraction", 1.25)  # reference: 10/255 at ε = 8/255
    opt = torch.optim.Adam(model.body.parameters(), lr=args["lr"])
    running = torch.ones(num_classes * k)
    cluster_class = torch.arange(num_classes * k) // k
    y_train = ctx.train.y
    y_dev = y_train.to(ctx.device)
    feats = all_features(ctx)
    model.estimate_clusters(feats, y_dev)
    for epoch in range(args["epochs"]):
        ctx.epoch = epoch
        assign = model.assign_clusters(feats, y_dev).cpu()
        members = [torch.nonzero(assign == c).flatten() for c in range(num_classes * k)]
        nonempty = torch.tensor([len(mb) > 0 for mb in members])
        centres = model.centres.detach().flatten(0, 1).cpu()
        model.train()
        total, count = 0.0, 0
        for _ in range(max(1, len(ctx.train) // (m_clusters * d_per))):
            seed = int(torch.multinomial(running * nonempty, 1, generator=ctx.generator))
            chosen = neighbourhood(seed, centres, cluster_class, nonempty, m_clusters)
            idx, local = [], []
            for j, c in enumerate(chosen.tolist()):
                pick = torch.randint(len(members[c]), (d_per,), generator=ctx.generator)
                idx.append(members[c][pick])
                local.append(torch.full((d_per,), j))
            idx, local = torch.cat(idx), torch.cat(local).to(ctx.device)
            x, y = ctx.train.x[idx].to(ctx.device), y_train[idx].to(ctx.device)
            per_sample = batch_magnet_loss(model.features(x), local, cluster_class[chosen].to(ctx.device),
                                           model.alpha)
            loss = per_sample.mean()
            if lam:
                loss = loss + lam * qtrades_term(model, x, ctx.eps, step_fraction * ctx.eps).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            for j, c in enumerate(chosen.tolist()):  # running mean loss per cluster
                running[c] = 0.9 * running[c] + 0.1 * per_sample[local == j].mean().item() + 1e-6
            total, count = total + loss.item() * len(y), count + len(y)
        feats = all_features(ctx)  # re-estimated after every epoch, model in eval mode
        model.estimate_clusters(feats, y_dev)
        ctx.log_epoch(epoch, args["epochs"], total / count)
