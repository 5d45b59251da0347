"""Sharding an attack's samples over Ray tasks (`robbench eval --backend ray`).

Each task loads the model itself and attacks one shard of sample indices; results
come back per sample and are written to the run dir as each shard finishes, so the
merge is by sample index (counts summed, never shard means averaged) and an
interrupted sharded run resumes like a local one. Randomness is per sample
(seed, attack, sample index), so a sharded run reproduces the single-process
numbers exactly. Ray is optional: `pip install -e .[ray]`.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from robbench.attacks import Attack, AttackResult
from robbench.attacks.base import run_in_batches
from robbench.errors import RobbenchError
from robbench.zoo.lookup import load_model


def _attack_shard(model_id: str, checkpoint: str | None, attack: Attack, x: torch.Tensor,
                  y: torch.Tensor, idx: torch.Tensor, eps: float, seed: int, batch_size: int,
                  device: str) -> list[tuple[torch.Tensor, AttackResult, float]]:
    model = load_model(model_id, checkpoint, device).model
    out = list(run_in_batches(attack, model, x, y, idx, eps=eps, seed=seed,
                              batch_size=batch_size, device=device))
    for _, result, _ in out:
        result.x_adv = result.x_adv.cpu()
    return out


def sharded_attack(attack: Attack, model_id: str, checkpoint: str | None, x: torch.Tensor,
                   y: torch.Tensor, todo: torch.Tensor, eps: float, seed: int, batch_size: int,
                   device: str, shards: int, address: str | None
                   ) -> Iterator[tuple[torch.Tensor, AttackResult, float]]:
    """Yields (sample indices, result, seconds) per finished batch, shard by shard as
    the shards complete. `address`: a running cluster; None starts a local Ray."""
    try:
        import ray
    except ImportError:
        raise RobbenchError("--backend ray needs Ray: pip install -e '.[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RobbenchError(f"cannot start or reach Ray at {address or 'local'}: {exc}") from None
    task = ray.remote(_attack_shard)
    pending = [task.remote(model_id, checkpoint, attack, x[part], y[part], part, eps, seed,
                           batch_size, device)
               for part in torch.tensor_split(todo, shards) if len(part)]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield from ray.get(done[0])
