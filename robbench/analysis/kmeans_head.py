"""Are a model's penultimate features clustered by class? (ClusTR appendix B.1.)

The ClusTR paper motivates magnet-loss training by replacing the linear head of a
nominally trained network with a k-means head on its features, and reports the
accuracy falling from 95% to 21.6% on CIFAR-10: nominal features, it argues, are not
clustered by class. This analysis repeats the experiment on a zoo model:

- per-class k-means head: K clusters per class (k-means++, sklearn) fitted on the
  training split's features of that class; a test point takes the class of its
  nearest cluster centre (the hard limit of magnet's soft nearest-cluster rule);
- unsupervised k-means: K x classes clusters fitted on all training features, each
  labelled by the majority true class of its members; a second reading of the same
  question that needs no labels at fitting time.

Both are compared with the model's own decision rule on the same test points. The
result is stored in the results store (robbench.store.analyses), where the
leaderboards' findings read it."""

from __future__ import annotations

import numpy as np

from robbench.analysis.common import AnalysisOptions, Report, features, predict, single_model
from robbench.datasets import DATASETS, load_split
from robbench.errors import RobbenchError
from robbench.evaluation.evaluator import resolve_device, versions
from robbench.store.analyses import save_record
from robbench.store.runs import today
from robbench.zoo.lookup import MODELS, load_model

ANALYSIS = "kmeans-head"
CLUSTERS_PER_CLASS = 2  # K of the head
# What the paper reports (ResNet-18 on CIFAR-10); not in paper_results.csv, which holds
# robust-accuracy tables only.
PAPER_FIGURE = {"source": "ClusTR (Alfarra et al. 2021), appendix B.1", "dataset": "cifar10",
                "architecture": "resnet18", "model_acc": 95.0, "kmeans_head_acc": 21.6}
N_INIT = 10  # k-means restarts, best inertia kept


def per_class_head(f_train: np.ndarray, y_train: np.ndarray, k: int, seed: int,
                   num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres (C*k, d), class of each centre)."""
    from sklearn.cluster import KMeans

    centres, labels = [], []
    for c in range(num_classes):
        fc = f_train[y_train == c]
        if len(fc) < k:
            raise RobbenchError(f"class {c} has {len(fc)} training samples, fewer than K={k}")
        fit = KMeans(n_clusters=k, init="k-means++", n_init=N_INIT, random_state=seed).fit(fc)
        centres.append(fit.cluster_centers_)
        labels += [c] * k
    return np.concatenate(centres), np.array(labels)


def unsupervised_head(f_train: np.ndarray, y_train: np.ndarray, n_clusters: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres, majority class of each cluster's training members)."""
    from sklearn.cluster import KMeans

    fit = KMeans(n_clusters=n_clusters, init="k-means++", n_init=N_INIT, random_state=seed).fit(f_train)
    majority = np.array([np.bincount(y_train[fit.labels_ == c]).argmax() if (fit.labels_ == c).any()
                         else -1 for c in range(n_clusters)])
    return fit.cluster_centers_, majority


def nearest(f: np.ndarray, centres: np.ndarray, classes: np.ndarray) -> np.ndarray:
    d2 = (f ** 2).sum(1)[:, None] - 2 * f @ centres.T + (centres ** 2).sum(1)[None]
    return classes[d2.argmin(axis=1)]


def analyze(model_ids: list[str], opts: AnalysisOptions, k: int = CLUSTERS_PER_CLASS) -> Report:
    model_id = single_model(model_ids, ANALYSIS)
    entry = MODELS.get(model_id)
    device = resolve_device(opts.device)
    loaded = load_model(model_id, checkpoint=opts.checkpoint, device=device)
    model = loaded.model.eval()
    train = load_split(entry.dataset, "train", opts.data_root)
    test = load_split(entry.dataset, "test", opts.data_root)
    n = len(test) if opts.n_examples is None else opts.n_examples
    if not 0 < n <= len(test):
        raise RobbenchError(f"--n-examples must be in 1..{len(test)} (the test split of "
                            f"{entry.dataset}), got {n}")
    num_classes = len(DATASETS.get(entry.dataset).class_names)
    x_test, y_test = test.x[:n].to(device), test.y[:n].numpy()

    f_train = features(model, train.x.to(device)).double().cpu().numpy()
    f_test = features(model, x_test).double().cpu().numpy()
    y_train = train.y.numpy()
    own = predict(model, x_test).cpu().numpy()
    head = nearest(f_test, *per_class_head(f_train, y_train, k, opts.seed, num_classes))
    unsupervised = nearest(f_test, *unsupervised_head(f_train, y_train, k * num_classes, opts.seed))

    acc = lambda pred: round(100.0 * float((pred == y_test).mean()), 2)  # noqa: E731
    results = {"model_acc": acc(own), "kmeans_head_acc": acc(head),
               "unsupervised_kmeans_acc": acc(unsupervised),
               "agreement_with_model": round(100.0 * float((head == own).mean()), 2),
               # the paired counts behind the two accuracies (robbench.leaderboard.findings tests them)
               "only_model_correct": int(((own == y_test) & (head != y_test)).sum()),
               "only_head_correct": int(((head == y_test) & (own != y_test)).sum())}
    params = {"clusters_per_class": k, "n_init": N_INIT, "n_train": int(len(y_train)),
              "features": "penultimate (the wrapper's features())"}
    record = {"analysis": ANALYSIS, "model": model_id, "dataset": entry.dataset,
              "checkpoint_sha256": loaded.sha256, "seed": opts.seed, "n_examples": n,
              "params": params, "results": results, "versions": versions(device), "date": today()}
    path, written = save_record(opts.runs_dir, record)
    lines = [f"{model_id} ({entry.dataset}, checkpoint {loaded.sha256[:12]}): {n} test points, "
             f"k-means fitted on {len(y_train)} training features",
             f"  the model's own rule              : {results['model_acc']:.2f}%",
             f"  k-means head, K={k} per class       : {results['kmeans_head_acc']:.2f}% "
             f"(agrees with the model on {results['agreement_with_model']:.2f}%)",
             f"  unsupervised k-means, {k * num_classes} clusters : "
             f"{results['unsupervised_kmeans_acc']:.2f}% (clusters labelled by majority class)",
             f"  {PAPER_FIGURE['source']} ({PAPER_FIGURE['dataset']}, {PAPER_FIGURE['architecture']}): "
             f"{PAPER_FIGURE['model_acc']:g}% -> {PAPER_FIGURE['kmeans_head_acc']:g}% with a k-means head",
             f"record: {path}" if written else
             f"record: {path} kept (it covers more test points than this run)"]
    return Report(ANALYSIS, [model_id], lines, {"n_examples": n, **params, **results,
                                                "record": str(path), "written": written})
