"""Per-sample results on disk, one directory per (model, checkpoint, threat model,
ε, seed). Every attack's rows are keyed by sample index, so a later run adds new
attacks or samples beside earlier ones and the worst case is recomputed per sample."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from robbench.attacks import AttackResult
from robbench.io import write_csv_atomic, write_text_atomic

ATTACK_COLUMNS = ["index", "success", "norm", "n_forward", "n_backward"]


def run_dir(runs_root: Path, model_id: str, sha256: str, norm: str, eps: float, seed: int) -> Path:
    return runs_root / model_id / sha256[:12] / f"{norm}-eps{eps:.6g}-seed{seed}"


@dataclass
class RunStore:
    root: Path

    # --- clean predictions -------------------------------------------------
    def save_clean(self, index: torch.Tensor, label: torch.Tensor, pred: torch.Tensor) -> None:
        frame = pd.DataFrame({"index": index.tolist(), "label": label.tolist(),
                              "pred": pred.tolist()})
        frame["correct"] = frame["label"] == frame["pred"]
        old = self.load_clean()
        if old is not None:
            frame = pd.concat([old[~old["index"].isin(frame["index"])], frame])
        write_csv_atomic(self.root / "clean.csv", frame.sort_values("index"))

    def load_clean(self) -> pd.DataFrame | None:
        path = self.root / "clean.csv"
        return pd.read_csv(path) if path.exists() else None

    # --- attacks -----------------------------------------------------------
    def attack_ids(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "attacks").glob("*.json"))

    def load_attack(self, attack_id: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        meta_path = self.root / "attacks" / f"{attack_id}.json"
        csv_path = self.root / "attacks" / f"{attack_id}.csv"
        if not meta_path.exists() or not csv_path.exists():
            return None
        return pd.read_csv(csv_path), json.loads(meta_path.read_text())

    def start_attack(self, attack_id: str, params: dict[str, Any]) -> pd.DataFrame:
        """Rows already computed with these exact parameters (empty when none)."""
        params = json.loads(json.dumps(params))  # as stored: tuples come back as lists
        found = self.load_attack(attack_id)
        if found is not None and found[1].get("params") == params:
            return found[0]
        self._write_attack(attack_id, pd.DataFrame(columns=ATTACK_COLUMNS),
                           {"params": params, "seconds": 0.0, "flags": []})
        return pd.DataFrame(columns=ATTACK_COLUMNS)

    def append_attack(self, attack_id: str, index: torch.Tensor, result: AttackResult,
                      seconds: float) -> None:
        frame, meta = self.load_attack(attack_id)
        new = pd.DataFrame({
            "index": index.tolist(), "success": result.success.tolist(),
            "norm": result.norm.tolist(), "n_forward": result.n_forward.tolist(),
            "n_backward": result.n_backward.tolist(),
        })
        frame = pd.concat([frame[~frame["index"].isin(new["index"])], new]) if len(frame) else new
        meta["seconds"] = meta["seconds"] + seconds
        meta["flags"] = sorted(set(meta["flags"]) | set(result.flags))
        # rows first, then meta: an interruption between the two loses no finished rows
        self._write_attack(attack_id, frame.sort_values("index"), meta)

    def _write_attack(self, attack_id: str, frame: pd.DataFrame, meta: dict[str, Any]) -> None:
        write_csv_atomic(self.root / "attacks" / f"{attack_id}.csv", frame)
        write_text_atomic(self.root / "attacks" / f"{attack_id}.json",
                          json.dumps(meta, indent=2, sort_keys=True) + "\n")

    # --- run metadata ------------------------------------------------------
    def save_meta(self, meta: dict[str, Any]) -> None:
        write_text_atomic(self.root / "meta.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")

    def load_meta(self) -> dict[str, Any] | None:
        path = self.root / "meta.json"
        return json.loads(path.read_text()) if path.exists() else None
