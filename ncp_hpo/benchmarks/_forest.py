"""Boosted-tree ensembles as flat node arrays: fit with scikit-learn, predict with numpy.

The surrogate oracle (:mod:`ncp_hpo.benchmarks._oracle`) fits scikit-learn's
:class:`~sklearn.ensemble.HistGradientBoostingRegressor` and stores the fitted trees as
flat arrays (:class:`Forest`: feature, threshold, children, leaf value per node), so a
cached oracle loads without pickle and predicts without scikit-learn.

scikit-learn has no public API for the nodes of a fitted ``HistGradientBoostingRegressor``;
:func:`hgb_trees` is the one place that reads them (private attributes
``_baseline_prediction``, ``_predictors`` and ``TreePredictor.nodes``).
:func:`fit_ensemble` checks every packed forest against scikit-learn's own predictions,
and ``tests/benchmarks/test_oracle.py`` pins the layout, so a change in scikit-learn
fails loudly instead of silently changing predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.benchmarks._oracle_model import Fidelity
from ncp_hpo.exceptions import DataError, NCPError

if TYPE_CHECKING:
    from ncp_hpo.benchmarks._oracle_model import OracleConfig

__all__ = ["FOREST_ARRAYS", "Forest", "cross_validate", "fit_ensemble", "hgb_trees"]


def hgb_trees(model: Any) -> tuple[float, list[np.ndarray]]:
    """``(baseline, [node array per tree])`` of a fitted single-output
    ``HistGradientBoostingRegressor``.

    Each node array is scikit-learn's structured ``PREDICTOR_RECORD_DTYPE`` (fields
    ``value``, ``feature_idx``, ``num_threshold``, ``left``, ``right``, ``is_leaf``,
    ``depth``, ``is_categorical`` ...). The only reader of scikit-learn private attributes.

    Raises:
        NCPError: a tree uses categorical splits (never fitted here) or the attributes are
            missing (scikit-learn changed its layout).
    """
    try:
        baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
        trees = [pred.nodes for it in model._predictors for pred in it]
    except AttributeError as exc:
        raise NCPError(
            f"cannot read HistGradientBoostingRegressor trees (scikit-learn layout changed?): {exc}"
        ) from None
    for nodes in trees:
        if np.any(nodes["is_categorical"]):
            raise NCPError("categorical splits are not supported")
    return baseline, trees


FOREST_ARRAYS = (
    "feature",
    "threshold",
    "left",
    "right",
    "value",
    "roots",
    "tree_group",
    "baseline",
)


@dataclass(frozen=True)
class Forest:
    """Boosted trees of ``n_groups`` models as flat node arrays.

    Leaves point to themselves with threshold ``+inf``, so a fixed number of ``depth``
    steps takes every sample to its leaf. Trees are ordered by ``tree_group``; a group's
    prediction is its baseline plus the sum of its trees' leaf values.
    """

    feature: np.ndarray  # int32 nodes
    threshold: np.ndarray  # float64 nodes
    left: np.ndarray  # int32 nodes
    right: np.ndarray  # int32 nodes
    value: np.ndarray  # float64 nodes
    roots: np.ndarray  # int32 trees
    tree_group: np.ndarray  # int32 trees, non-decreasing
    baseline: np.ndarray  # float64 groups
    depth: int
    n_features: int
    _starts: np.ndarray = field(init=False, repr=False)
    _child: np.ndarray = field(init=False, repr=False)
    _feature: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n_nodes, n_groups = len(self.value), len(self.baseline)
        ok = (
            len(self.feature) == len(self.threshold) == len(self.left) == len(self.right) == n_nodes
            and len(self.roots) == len(self.tree_group) > 0
            and n_groups > 0
            and self.depth >= 0
        )
        if ok:
            ok = bool(
                np.all((self.left >= 0) & (self.left < n_nodes))
                and np.all((self.right >= 0) & (self.right < n_nodes))
                and np.all((self.feature >= 0) & (self.feature < self.n_features))
                and np.all((self.roots >= 0) & (self.roots < n_nodes))
                and np.all(np.diff(self.tree_group) >= 0)
                and np.array_equal(np.unique(self.tree_group), np.arange(n_groups))
                and np.all(np.isfinite(self.value))
                and not np.any(np.isnan(self.threshold))
            )
        if not ok:
            raise DataError("inconsistent tree arrays in the oracle model")
        starts = np.searchsorted(self.tree_group, np.arange(n_groups)).astype(np.intp)
        object.__setattr__(self, "_starts", starts)
        child = np.stack([self.left, self.right], axis=1).ravel().astype(np.intp)
        object.__setattr__(self, "_child", child)
        object.__setattr__(self, "_feature", self.feature.astype(np.intp))

    @property
    def n_groups(self) -> int:
        return len(self.baseline)

    @classmethod
    def from_models(cls, models: list[Any], n_features: int) -> Forest:
        """Pack fitted ``HistGradientBoostingRegressor`` s (one group each)."""
        feats, thrs, lefts, rights, vals, roots, groups, base = [], [], [], [], [], [], [], []
        offset, depth = 0, 0
        for g, model in enumerate(models):
            baseline, trees = hgb_trees(model)
            base.append(baseline)
            for nodes in trees:
                leaf = nodes["is_leaf"].astype(bool)
                own = np.arange(len(nodes), dtype=np.int64) + offset
                feats.append(np.where(leaf, 0, nodes["feature_idx"]).astype(np.int32))
                thrs.append(np.where(leaf, np.inf, nodes["num_threshold"]).astype(np.float64))
                lefts.append(np.where(leaf, own, nodes["left"].astype(np.int64) + offset))
                rights.append(np.where(leaf, own, nodes["right"].astype(np.int64) + offset))
                vals.append(np.where(leaf, nodes["value"], 0.0).astype(np.float64))
                roots.append(offset)
                groups.append(g)
                depth = max(depth, int(nodes["depth"].max()))
                offset += len(nodes)
        return cls(
            feature=np.concatenate(feats),
            threshold=np.concatenate(thrs),
            left=np.concatenate(lefts).astype(np.int32),
            right=np.concatenate(rights).astype(np.int32),
            value=np.concatenate(vals),
            roots=np.asarray(roots, dtype=np.int32),
            tree_group=np.asarray(groups, dtype=np.int32),
            baseline=np.asarray(base, dtype=np.float64),
            depth=depth,
            n_features=n_features,
        )

    @classmethod
    def concat(cls, forests: list[Forest]) -> Forest:
        """One forest whose groups are those of ``forests`` in order."""
        offset, g0 = 0, 0
        parts: dict[str, list[np.ndarray]] = {k: [] for k in FOREST_ARRAYS}
        for f in forests:
            shifted = {
                "left": f.left + offset,
                "right": f.right + offset,
                "roots": f.roots + offset,
                "tree_group": f.tree_group + g0,
            }
            for k in FOREST_ARRAYS:
                parts[k].append(shifted.get(k, getattr(f, k)))
            offset += len(f.value)
            g0 += f.n_groups
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        for k in ("feature", "left", "right", "roots", "tree_group"):
            arrays[k] = arrays[k].astype(np.int32)
        return cls(
            **arrays,
            depth=max(f.depth for f in forests),
            n_features=forests[0].n_features,
        )

    def predict(self, x: np.ndarray, *, chunk_cells: int = 1 << 21) -> np.ndarray:
        """Raw predictions of every group: ``n x n_features`` -> ``n x n_groups``."""
        n, n_trees = len(x), len(self.roots)
        out = np.empty((n, self.n_groups), dtype=np.float64)
        step = max(1, chunk_cells // n_trees)
        roots = self.roots.astype(np.intp)
        for lo in range(0, n, step):
            xc = np.ascontiguousarray(x[lo : lo + step], dtype=np.float64)
            m = len(xc)
            # Flat walk: every (sample, tree) pair moves one level per step; ``_child`` holds
            # (left, right) pairs, so the next node is child[2 * node + went_right].
            offsets = np.repeat(np.arange(m, dtype=np.intp) * xc.shape[1], n_trees)
            node = np.tile(roots, m)
            flat = xc.ravel()
            for _ in range(self.depth):
                went_right = flat.take(offsets + self._feature.take(node)) > self.threshold.take(
                    node
                )
                node = self._child.take(2 * node + went_right)
            leaf = self.value.take(node).reshape(m, n_trees)
            out[lo : lo + m] = np.add.reduceat(leaf, self._starts, axis=1) + self.baseline
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in FOREST_ARRAYS}


def fit_ensemble(
    x: np.ndarray, y: np.ndarray, config: OracleConfig, seq: np.random.SeedSequence
) -> Forest:
    """``config.members`` boosted models on random row subsets, packed as one forest."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    n = len(y)
    size = max(2, round(float(config.subsample) * n))
    models = []
    for child in seq.spawn(config.members):
        rng = np.random.default_rng(child)
        rows = np.sort(rng.choice(n, size=size, replace=False)) if size < n else np.arange(n)
        model = HistGradientBoostingRegressor(
            max_iter=config.max_iter,
            learning_rate=config.learning_rate,
            max_leaf_nodes=config.max_leaf_nodes,
            min_samples_leaf=config.min_samples_leaf,
            l2_regularization=config.l2_regularization,
            early_stopping=False,
            random_state=int(rng.integers(2**31 - 1)),
        )
        model.fit(x[rows], y[rows])
        models.append(model)
    forest = Forest.from_models(models, x.shape[1])
    # Our array walk must reproduce scikit-learn's own predictions (guards against a
    # change of its private tree layout).
    ours = forest.predict(x[: min(n, 256)])
    theirs = np.stack([m.predict(x[: min(n, 256)]) for m in models], axis=1)
    if not np.allclose(ours, theirs, rtol=1e-9, atol=1e-9 * (1.0 + np.abs(theirs).max())):
        raise NCPError(
            "packing HistGradientBoostingRegressor trees failed (scikit-learn's tree layout "
            "changed?); max deviation "
            f"{np.abs(ours - theirs).max():.3g}"
        )
    return forest


def cross_validate(
    x: np.ndarray, y: np.ndarray, config: OracleConfig, seed: int, metric: str
) -> Fidelity:
    from scipy.stats import kendalltau, spearmanr
    from sklearn.model_selection import KFold

    pred = np.empty_like(y)
    spread = np.empty_like(y)
    folds = KFold(config.cv_folds, shuffle=True, random_state=seed).split(x)
    seqs = np.random.SeedSequence([seed, 1]).spawn(config.cv_folds)
    for (tr, te), seq in zip(folds, seqs, strict=True):
        raw = fit_ensemble(x[tr], y[tr], config, seq).predict(x[te])
        pred[te], spread[te] = raw.mean(1), raw.std(1)
    err = np.abs(pred - y)
    if config.members > 1 and np.ptp(spread) > 0:
        se = float(spearmanr(spread, err).statistic)
    else:
        se = float("nan")
    return Fidelity(
        metric=metric,
        spearman=float(spearmanr(y, pred).statistic),
        kendall=float(kendalltau(y, pred).statistic),
        mae=float(err.mean()),
        rmse=float(np.sqrt(np.mean((pred - y) ** 2))),
        folds=config.cv_folds,
        rows=len(y),
        spread_mean=float(spread.mean()),
        spread_error_spearman=se,
    )
