"""One-off: renames zoo model ids (manifest entry, checkpoint file, runs) without
touching a checkpoint's bytes, so every sha256 and every per-sample record stays
valid; only each run's meta.json is rewritten with the new id (and re-hashed).

    python tools/rename_zoo_model.py OLD=NEW [OLD=NEW ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from robbench.store.records import write_json_record
from robbench.store.runs import META, RunStore

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "model_zoo" / "manifest.json"


def rename(old: str, new: str) -> None:
    manifest = json.loads(MANIFEST.read_text())
    models = manifest["models"]
    if old not in models or new in models:
        raise SystemExit(f"cannot rename {old} to {new}: {old} missing or {new} taken")
    entry = models.pop(old)
    if entry["checkpoint"]:
        path = f"checkpoints/{new}.safetensors"
        subprocess.run(["git", "mv", f"model_zoo/{entry['checkpoint']}", f"model_zoo/{path}"],
                       cwd=ROOT, check=True)
        entry["checkpoint"] = path
    entry["command"] = entry["command"].replace(f"--model {old}", f"--model {new}")
    models[new] = entry
    manifest["models"] = dict(sorted(models.items()))
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    runs = ROOT / "runs"
    if (runs / old).is_dir():
        subprocess.run(["git", "mv", f"runs/{old}", f"runs/{new}"], cwd=ROOT, check=True)
        for meta_path in sorted((runs / new).glob(f"*/*/{META}")):
            meta = RunStore(meta_path.parent).load_meta()
            write_json_record(meta_path, {**meta, "model": new})
    print(f"{old} -> {new}")


if __name__ == "__main__":
    for pair in sys.argv[1:]:
        rename(*pair.split("="))
