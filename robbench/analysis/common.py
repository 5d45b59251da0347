"""What every `robbench analyze` analysis shares: options, loading a zoo model with its
test points, batched features / attacks, the report, and the plot helpers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robbench.attacks import ATTACKS, Attack, AttackResult
from robbench.config import RUNS_DIR, THREAT_DEFAULTS
from robbench.datasets import DATASETS, load_split
from robbench.errors import RobbenchError
from robbench.evaluation.evaluator import resolve_device
from robbench.zoo.lookup import MODELS, load_model

DEFAULT_N = 100  # test points per analysis unless --n-examples says otherwise
BATCH = 256


@dataclass
class AnalysisOptions:
    n_examples: int | None = None  # None: DEFAULT_N (capped at the test split)
    data_root: str | None = None
    eps: list[float] | None = None  # meaning depends on the analysis (see its docstring)
    seed: int = 0
    device: str = "cpu"
    plot: Path | None = None
    steps: int | None = None  # override the attacks' steps (quick runs, tests)
    restarts: int | None = None  # override the attacks' restarts
    checkpoint: str | None = None  # another checkpoint for the (single) model; None: the zoo's
    runs_dir: Path = Path(RUNS_DIR)  # where analyses that feed the findings keep their record


@dataclass
class Report:
    what: str
    models: list[str]
    lines: list[str]  # human-readable summary, printed by the CLI
    data: dict[str, Any] = field(default_factory=dict)  # numbers, for --json
    plot: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"analysis": self.what, "models": self.models, **self.data, "plot": self.plot}


@dataclass
class Inputs:
    model_id: str
    model: torch.nn.Module
    dataset: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    x: torch.Tensor  # on the device
    y: torch.Tensor
    device: torch.device

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def single_model(model_ids: list[str], what: str) -> str:
    if len(model_ids) != 1:
        raise RobbenchError(f"--what {what} analyses one model; got {len(model_ids)} "
                            f"({', '.join(model_ids)})")
    return model_ids[0]


def load_inputs(model_id: str, opts: AnalysisOptions) -> Inputs:
    """The zoo model (eval mode) and the first N test points of its dataset."""
    entry = MODELS.get(model_id)
    spec = DATASETS.get(entry.dataset)
    device = resolve_device(opts.device)
    if opts.n_examples is not None and opts.n_examples <= 0:
        raise RobbenchError(f"--n-examples must be positive, got {opts.n_examples}")
    model = load_model(model_id, checkpoint=opts.checkpoint, device=device).model.eval()
    test = load_split(entry.dataset, "test", opts.data_root)
    n = min(DEFAULT_N, len(test)) if opts.n_examples is None else opts.n_examples
    if n > len(test):
        raise RobbenchError(f"--n-examples {n} exceeds the {len(test)} test images of {entry.dataset}")
    return Inputs(model_id, model, entry.dataset, tuple(spec.class_names), tuple(spec.input_shape),
                  test.x[:n].to(device), test.y[:n].to(device), device)


def protocol_eps(dataset: str, norm: str) -> float:
    return THREAT_DEFAULTS[dataset].eps(norm)


def one_eps(opts: AnalysisOptions, dataset: str, norm: str = "Linf") -> float:
    """The attack budget for analyses that need a single one: --eps or the protocol's."""
    if not opts.eps:
        return protocol_eps(dataset, norm)
    if len(opts.eps) != 1:
        raise RobbenchError(f"this analysis takes one --eps value, got {len(opts.eps)}")
    return opts.eps[0]


def attack(attack_id: str, opts: AnalysisOptions) -> Attack:
    """A registered attack with --steps / --restarts applied where it has those fields."""
    found = ATTACKS.get(attack_id)
    names = {f.name for f in dataclasses.fields(found)}
    overrides = {k: v for k, v in (("steps", opts.steps), ("restarts", opts.restarts))
                 if v is not None and k in names}
    return dataclasses.replace(found, **overrides) if overrides else found


def run_attack(atk: Attack, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
               seed: int) -> AttackResult:
    """The attack on every point (sample ids 0..N-1), in batches; results concatenated."""
    parts = [atk.run(model, x[i:i + BATCH], y[i:i + BATCH], eps=eps,
                     sample_ids=torch.arange(i, min(i + BATCH, len(y))), seed=seed)
             for i in range(0, len(y), BATCH)]
    out = AttackResult(
        x_adv=torch.cat([p.x_adv for p in parts]), success=torch.cat([p.success for p in parts]),
        norm=torch.cat([p.norm for p in parts]), n_forward=torch.cat([p.n_forward for p in parts]),
        n_backward=torch.cat([p.n_backward for p in parts]),
        flags=sorted({f for p in parts for f in p.flags}))
    if hasattr(parts[0], "reached"):
        out.reached = torch.cat([p.reached for p in parts])  # type: ignore[attr-defined]
    return out


@torch.no_grad()
def features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model.features(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(x[i:i + BATCH]).argmax(dim=1) for i in range(0, len(x), BATCH)])


# --- plots --------------------------------------------------------------------------------
def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_plot_path(path: Path | None) -> None:
    if path is not None and Path(path).suffix.lower() != ".png":
        raise RobbenchError(f"--plot must name a .png file, got {path}")


def save_figure(fig, path: Path | None, tight_layout: bool = True) -> str | None:
    """Writes the PNG (None: no file) and closes the figure. `tight_layout=False` for
    figures whose colour bar spans several axes (tight_layout cannot place it)."""
    plt = pyplot()
    if path is None:
        plt.close(fig)
        return None
    check_plot_path(path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight_layout:
        fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def heatmap(fig, ax, matrix: np.ndarray, row_labels, col_labels, *, title: str, xlabel: str,
            ylabel: str, cbar_label: str, cmap: str = "viridis", vmin=None, vmax=None,
            annotate: bool = True, fmt: str = "{:.2f}") -> None:
    """A labelled heatmap with a colour bar; NaN cells grey; values written in the cells
    when the matrix is small enough to read them."""
    plt = pyplot()
    cm = plt.get_cmap(cmap).with_extremes(bad="#d9d9d9")
    masked = np.ma.masked_invalid(np.asarray(matrix, dtype=float))
    im = ax.imshow(masked, cmap=cm, vmin=vmin, vmax=vmax)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(cbar_label)
    ax.set_xticks(range(len(col_labels)), labels=col_labels)
    ax.set_yticks(range(len(row_labels)), labels=row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if annotate and matrix.shape[0] <= 12 and matrix.shape[1] <= 12:
        lo, hi = im.get_clim()
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                v = matrix[i, j]
                if np.isfinite(v):
                    if cmap == "viridis":  # dark at the low end
                        dark = (v - lo) / max(hi - lo, 1e-12) < 0.5
                    else:  # diverging: dark at both ends
                        dark = abs(v) > 0.6 * max(abs(lo), abs(hi))
                    ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")


def format_matrix(matrix: np.ndarray, labels, fmt: str = "{:6.2f}") -> list[str]:
    width = max(len(fmt.format(0.0)), max(len(str(l)) for l in labels))
    head = " " * (max(len(str(l)) for l in labels) + 1) + " ".join(str(l).rjust(width) for l in labels)
    rows = [head]
    for label, row in zip(labels, matrix):
        cells = [("-" if not np.isfinite(v) else fmt.format(v)).rjust(width) for v in row]
        rows.append(str(label).rjust(max(len(str(l)) for l in labels)) + " " + " ".join(cells))
    return rows
