"""The :class:`NeuralPredictor` estimator (model and determinism: see :mod:`ncp_hpo.predictor`)."""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ncp_hpo.exceptions import CheckpointError, InvalidCodeError, PredictorNotFittedError
from ncp_hpo.predictor._checkpoint import check_tensors, read_checkpoint, write_checkpoint
from ncp_hpo.predictor._codes import as_code_batch, fit_data, resolve_heads, targets_to_array
from ncp_hpo.predictor._input_map import check_input_map, expand_codes, fold_input_map
from ncp_hpo.predictor._network import EnsembleMLP
from ncp_hpo.predictor._params import ParamsMixin
from ncp_hpo.predictor._score import PredictorScore
from ncp_hpo.predictor._training import TrainConfig, fresh_seed, torch_threads, train_module

__all__ = ["NeuralPredictor"]


class NeuralPredictor(ParamsMixin):
    """Multi-head MLP predictor of architecture metrics (paper Appendix E.1).

    Args:
        metric_names: column names when ``targets`` is an array (ignored for dicts, whose
            keys are the names; when given with a dict it selects and orders the columns).
        main_metric: the metric ``score`` ranks on and propagation maximises by default;
            default the first metric.
        heads: metric groups, one 128-wide head per group (upstream's seg config is
            ``[["mIoU"], ["mAcc", "aAcc"], ["flops", "params"]]``); every metric ends in its
            own ``128 -> 1`` output. Default: one head per metric.
        hidden: width of the shared layer (256).
        head_hidden: width of each head's layer (128).
        dropout: dropout probability after both hidden layers (0.5).
        activation: ``"swish"`` (SiLU, the paper's), ``"relu"`` or ``"tanh"``.
        epochs: training epochs (200).
        batch_size: mini-batch size (128).
        lr: peak learning rate of the one-cycle schedule (0.01).
        weight_decay: Adam's L2 weight decay (1e-7).
        pct_start: fraction of the steps spent warming up (0.3, upstream).
        div_factor: initial lr = ``lr / div_factor`` (10, upstream).
        final_div_factor: final lr = initial lr / ``final_div_factor`` (1e4, torch default).
        loss: ``"smooth_l1"`` (the paper's), ``"mse"`` or ``"l1"``, on standardised targets.
        n_members: ensemble size; ``predict(..., return_std=True)`` gives their spread.
        input_map: optional ``f x d`` matrix of extra linear input features (e.g. NAS-Bench-
            201's operation counts, ``NB201Space().input_features``): ``fit`` trains on the
            codes and ``codes @ input_map.T`` and then folds them into the first layer, so
            the fitted network still takes ``d``-dim codes (:mod:`._input_map`).
        seed: seed of the private generator (init, shuffling, dropout). ``None`` draws a
            fresh seed at each ``fit``; the one used is stored in ``seed_``.
        n_threads: torch intra-op threads used inside ``fit``/``predict`` (restored after);
            ``None`` leaves the global setting alone. One thread is fastest for this small
            model on a 2-core CPU (``benchmarks/predictor_speed.py``).
        verbose: print one line per 20 epochs.

    Fitted attributes: ``module_``, ``metric_names_``, ``main_metric_``, ``heads_``,
    ``n_features_in_``, ``seed_``, ``best_epoch_`` (per member; ``None`` without validation
    data), ``history_`` (``train_loss`` per epoch, ``val_mae`` per epoch and metric),
    ``fit_time_`` (seconds).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.uniform(0, 1, size=(256, 4))
        >>> y = {"acc": X @ [1.0, 2.0, 0.0, -1.0], "flops": X.sum(1)}
        >>> p = NeuralPredictor(epochs=20, seed=0).fit(X, y)
        >>> p.predict(X[:3]).shape
        (3, 2)
    """

    def __init__(
        self,
        *,
        metric_names: Sequence[str] | None = None,
        main_metric: str | None = None,
        heads: Sequence[Sequence[str]] | None = None,
        hidden: int = 256,
        head_hidden: int = 128,
        dropout: float = 0.5,
        activation: Literal["swish", "relu", "tanh"] = "swish",
        epochs: int = 200,
        batch_size: int = 128,
        lr: float = 0.01,
        weight_decay: float = 1e-7,
        pct_start: float = 0.3,
        div_factor: float = 10.0,
        final_div_factor: float = 1e4,
        loss: Literal["smooth_l1", "mse", "l1"] = "smooth_l1",
        n_members: int = 1,
        input_map: Any | None = None,
        seed: int | None = 0,
        n_threads: int | None = 1,
        verbose: bool = False,
    ) -> None:
        self.metric_names = metric_names
        self.main_metric = main_metric
        self.heads = heads
        self.hidden = hidden
        self.head_hidden = head_hidden
        self.dropout = dropout
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.loss = loss
        self.n_members = n_members
        self.input_map = input_map
        self.seed = seed
        self.n_threads = n_threads
        self.verbose = verbose

    # -- fitted state ---------------------------------------------------------------------
    def _check_fitted(self, what: str) -> EnsembleMLP:
        module = getattr(self, "module_", None)
        if module is None:
            raise PredictorNotFittedError(
                f"this NeuralPredictor is not fitted yet; call fit(codes, targets) or "
                f"NeuralPredictor.load(path) before {what}"
            )
        return module

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "module_", None) is not None

    @property
    def input_mean_(self) -> Tensor:
        """Per-dimension code mean used for standardisation, ``d``."""
        return self._check_fitted("input_mean_").input_mean

    @property
    def input_std_(self) -> Tensor:
        """Per-dimension code std used for standardisation, ``d``."""
        return self._check_fitted("input_std_").input_std

    @property
    def target_mean_(self) -> Tensor:
        """Per-metric target mean, ``m`` (order of ``metric_names_``)."""
        return self._check_fitted("target_mean_").target_mean

    @property
    def target_std_(self) -> Tensor:
        """Per-metric target std, ``m`` (order of ``metric_names_``)."""
        return self._check_fitted("target_std_").target_std

    def metric_index(self, name: str) -> int:
        """Column of metric ``name`` in predictions."""
        self._check_fitted("metric_index")
        try:
            return self.metric_names_.index(name)
        except ValueError:
            raise KeyError(
                f"the predictor has no metric {name!r}; it predicts {self.metric_names_}"
            ) from None

    # -- fit ----------------------------------------------------------------------------
    def fit(
        self,
        codes: Any,
        targets: Mapping[str, Any] | Any,
        *,
        val_codes: Any | None = None,
        val_targets: Mapping[str, Any] | Any | None = None,
        warm_start: bool = False,
    ) -> NeuralPredictor:
        """Train on ``codes`` (``n x d``) and ``targets`` (dict name -> ``n``, or ``n x m``).

        Args:
            codes: ``n x d`` codes (ints or floats).
            targets: ``{name: (n,)}`` or an ``n x m`` array (names from ``metric_names``).
            val_codes: optional ``n_val x d`` codes for checkpoint selection: each member
                keeps the weights of the epoch with the lowest validation MAE of the main
                metric (upstream's ``best_model.pth``).
            val_targets: targets of ``val_codes``, same format as ``targets``.
            warm_start: continue from the current weights instead of re-initialising
                (refits with more data, cross-task fine-tuning). The input standardisation
                is kept. With the same metric names the new target statistics are folded
                into the output layer, so the function in original units is unchanged
                before the first step; with other names (same count) the heads are reused
                as they are, in standardised units.

        Returns:
            ``self``.
        """
        self._validate_params()
        x_np, y_np, names, val = fit_data(codes, targets, val_codes, val_targets, self.metric_names)
        heads, head_of_metric = resolve_heads(self.heads, names)
        main = self.main_metric if self.main_metric is not None else names[0]
        if main not in names:
            raise ValueError(f"main_metric {main!r} is not among the metrics {names}")
        codes_np, amap = x_np, None
        if self.input_map is not None:  # train on the codes and their extra features
            amap = check_input_map(self.input_map, x_np.shape[1])
            x_np = expand_codes(x_np, amap)
            val = None if val is None else (expand_codes(val[0], amap), val[1])
            # a warm start continues the expanded network (absent after load: start cold)
            warm_start = warm_start and getattr(self, "expanded_module_", None) is not None
        d = x_np.shape[1]
        seed = int(self.seed) if self.seed is not None else fresh_seed()
        gen = torch.Generator().manual_seed(seed)
        if warm_start and self.is_fitted:
            module = self._warm_module(d, names, head_of_metric, y_np)
        else:
            module = self._new_module(d, head_of_metric)
            module.reset_parameters(gen)
            x_std = x_np.std(0)
            module.input_mean.copy_(torch.from_numpy(x_np.mean(0)))
            module.input_std.copy_(torch.from_numpy(np.where(x_std > 1e-12, x_std, 1.0)))
            module.set_target_stats(y_np)
        t0 = time.perf_counter()
        with torch_threads(self.n_threads):
            history, best_epoch = train_module(
                module, x_np, y_np, val, names.index(main), gen, self._train_config()
            )
        module.eval()
        module._frozen.clear()
        if amap is not None:
            self.expanded_module_ = module
            module = fold_input_map(module, amap, codes_np.mean(0), codes_np.std(0))
        self.module_ = module
        self.metric_names_ = names
        self.main_metric_ = main
        self.heads_ = heads
        self.n_features_in_ = codes_np.shape[1]
        self.seed_: int | None = seed
        self.history_ = {"train_loss": history.train_loss, "val_mae": history.val_mae}
        self.best_epoch_ = best_epoch
        self.fit_time_ = time.perf_counter() - t0
        return self

    def _new_module(self, d: int, head_of_metric: Sequence[int]) -> EnsembleMLP:
        """An uninitialised network of this estimator's shape for ``d`` inputs."""
        return EnsembleMLP(
            d,
            head_of_metric,
            n_members=int(self.n_members),
            hidden=int(self.hidden),
            head_hidden=int(self.head_hidden),
            dropout=float(self.dropout),
            activation=self.activation,
        )

    def _train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
            pct_start=float(self.pct_start),
            div_factor=float(self.div_factor),
            final_div_factor=float(self.final_div_factor),
            loss=str(self.loss),
            verbose=bool(self.verbose),
        )

    def _warm_module(
        self, d: int, names: list[str], head_of_metric: list[int], y: np.ndarray
    ) -> EnsembleMLP:
        base = self._check_fitted("fit(warm_start=True)")
        module = copy.deepcopy(self.expanded_module_ if self.input_map is not None else base)
        if d != module.w1.shape[1]:
            raise ValueError(
                f"warm_start needs codes with d = {self.n_features_in_} like the first fit; got {d}"
            )
        if (
            len(names) != len(self.metric_names_)
            or head_of_metric != module.head_of_metric.tolist()
        ):
            raise ValueError(
                f"warm_start needs the same number of metrics and heads as the fitted model "
                f"({self.metric_names_}, heads {self.heads_}); got {names}"
            )
        if module.n_members != int(self.n_members):
            raise ValueError(
                f"warm_start cannot change n_members ({module.n_members} -> {self.n_members})"
            )
        module.dropout = float(self.dropout)
        module.set_target_stats(y, keep_function=names == self.metric_names_)
        return module

    # -- predict ------------------------------------------------------------------------
    def standardize(self, codes: Tensor) -> Tensor:
        """Codes ``... x d`` -> standardised codes ``... x d`` (differentiable)."""
        m = self._check_fitted("standardize")
        return (codes - m.input_mean) / m.input_std

    def unstandardize(self, z: Tensor) -> Tensor:
        """Standardised codes ``... x d`` -> codes ``... x d`` (differentiable)."""
        m = self._check_fitted("unstandardize")
        return z * m.input_std + m.input_mean

    def forward_standardized(
        self, z: Tensor, *, members: bool = False, outputs: Sequence[int] | None = None
    ) -> Tensor:
        """Forward on standardised codes, in evaluation mode (no dropout), differentiable
        with respect to ``z`` (the weights are constants here; train through ``fit``).

        Args:
            z: standardised codes, ``batch_shape x d`` (float32).
            members: return every member's output instead of the ensemble mean.
            outputs: metric indices (``metric_index``) to compute, ``m'`` of them; only
                their heads run (propagation needs one or two of ``m`` outputs).

        Returns:
            standardised predictions, ``batch_shape x m`` (``batch_shape x m'`` with
            ``outputs``; ``n_members x ...`` with ``members=True``); multiply by
            ``target_std_`` and add ``target_mean_`` (of those outputs) for original units.
        """
        module = self._check_fitted("forward_standardized")
        if z.shape[-1] != self.n_features_in_:
            raise InvalidCodeError(
                f"expected standardised codes of shape (..., {self.n_features_in_}); "
                f"got {tuple(z.shape)}"
            )
        batch = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])
        if members:
            out = module(flat, outputs=outputs)  # E x N x m
            return out.reshape(module.n_members, *batch, out.shape[-1])
        out = module.frozen_forward(outputs)(flat)  # N x m
        return out.reshape(*batch, out.shape[-1])

    def input_gradient_fn(
        self, outputs: Sequence[int], weights: Sequence[float]
    ) -> Callable[[Tensor], Tensor]:
        """``g(z) = d/dz sum_j weights_j * forward_standardized(z)[..., outputs[j]]``.

        The gradient propagation needs, written out by hand (no autograd graph): a few
        matrix products per call. Evaluation mode, ensemble mean, weights as constants.

        Args:
            outputs: metric indices (``metric_index``), ``m'`` of them.
            weights: one coefficient per output.

        Returns:
            ``g``: ``N x d`` standardised codes (float32) -> ``N x d``.
        """
        module = self._check_fitted("input_gradient_fn")
        if len(outputs) != len(weights):
            raise ValueError(
                f"input_gradient_fn needs one weight per output; got {len(outputs)} outputs "
                f"and {len(weights)} weights"
            )
        return module.frozen_input_gradient(outputs, weights)

    def predict(self, codes: Any, *, return_std: bool = False, as_dict: bool = False) -> Any:
        """Predicted metrics in original units.

        Args:
            codes: ``d`` or ``n x d``.
            return_std: also return the ensemble's standard deviation (zeros for one member).
            as_dict: return ``{metric: array}`` instead of a matrix.

        Returns:
            ``n x m`` float64 array (``m`` for a single code), columns in ``metric_names_``
            order; ``(mean, std)`` with ``return_std``; dicts of ``n`` (or scalar) arrays with
            ``as_dict``.
        """
        module = self._check_fitted("predict")
        x, single = as_code_batch(codes, self.n_features_in_)
        with torch_threads(self.n_threads), torch.no_grad():
            out = module(self.standardize(x)) * module.target_std + module.target_mean  # E x n x m
            mean = out.mean(0)
            spread = out.shape[0] > 1 and out.shape[1] > 0  # an empty batch has no spread
            std = out.std(0, correction=1) if spread else torch.zeros_like(mean)
        mean_np, std_np = mean.double().numpy(), std.double().numpy()
        if single:
            mean_np, std_np = mean_np[0], std_np[0]

        def fmt(a: np.ndarray) -> Any:
            if as_dict:
                return {k: a[..., j] for j, k in enumerate(self.metric_names_)}
            return a

        return (fmt(mean_np), fmt(std_np)) if return_std else fmt(mean_np)

    def score(self, codes: Any, targets: Mapping[str, Any] | Any) -> PredictorScore:
        """MAE per metric (original units) and rank correlations of the main metric.

        ``targets`` must hold every metric the predictor was fitted on (same format as
        ``fit``; extra dict keys are ignored).
        """
        self._check_fitted("score")
        x, _ = as_code_batch(codes, self.n_features_in_)
        y, _ = targets_to_array(targets, x.shape[0], self.metric_names_)
        pred = np.atleast_2d(self.predict(x))
        return PredictorScore.of(pred, y, self.metric_names_, self.main_metric_)

    # -- save / load ----------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        params = self.get_params()
        for k in ("metric_names", "heads"):
            if params[k] is not None:
                params[k] = json.loads(json.dumps(params[k]))
        if params["input_map"] is not None:
            params["input_map"] = np.asarray(params["input_map"], dtype=np.float64).tolist()
        return {
            "params": params,
            "metric_names_": self.metric_names_,
            "main_metric_": self.main_metric_,
            "heads_": self.heads_,
            "n_features_in_": self.n_features_in_,
            "seed_": self.seed_,
            "best_epoch_": self.best_epoch_,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write weights and buffers as safetensors with the JSON config in its header.

        The file holds no pickled objects; :meth:`load` never executes code. A SHA-256 of
        the config and the tensors is stored beside them, so corruption of either is
        detected (it is a checksum, not a signature: it does not authenticate the file).

        Returns:
            the path written (``.safetensors`` is appended when it has no suffix).
        """
        return write_checkpoint(path, self._check_fitted("save"), self._config())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NeuralPredictor:
        """Read a checkpoint written by :meth:`save`.

        Raises:
            CheckpointError: unreadable file, unknown format, config or tensors that do not
                match (names, shapes, dtypes), non-finite values or a checksum mismatch.
            FileNotFoundError: no such file.
        """
        p = Path(path)
        cfg, tensors = read_checkpoint(p)
        try:
            self, module = cls._from_config(cfg)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{p} has an invalid config: {exc}") from None
        check_tensors(p, tensors, module)
        module.load_state_dict(tensors)
        module.eval()
        module._frozen.clear()
        self.module_ = module
        self.seed_ = cfg.get("seed_")
        self.best_epoch_ = cfg.get("best_epoch_")
        self.history_ = {"train_loss": [], "val_mae": []}
        return self

    @classmethod
    def _from_config(cls, cfg: Mapping[str, Any]) -> tuple[NeuralPredictor, EnsembleMLP]:
        """An unfitted-weights estimator and its empty module, from a checkpoint's config."""
        params = cfg["params"]
        if not isinstance(params, dict) or set(params) != set(cls._param_names()):
            raise ValueError(f"parameters {sorted(params)} do not match NeuralPredictor's")
        self = cls(**params)
        self._validate_params()
        names = [str(n) for n in cfg["metric_names_"]]
        heads_ = [[str(n) for n in g] for g in cfg["heads_"]]
        d = int(cfg["n_features_in_"])
        main = str(cfg["main_metric_"])
        if main not in names:
            raise ValueError(f"main metric {main!r} not in {names}")
        head_of = {n: i for i, g in enumerate(heads_) for n in g}
        if sorted(head_of) != sorted(names):
            raise ValueError(f"heads {heads_} do not partition metrics {names}")
        module = self._new_module(d, [head_of[n] for n in names])
        self.metric_names_ = names
        self.main_metric_ = main
        self.heads_ = heads_
        self.n_features_in_ = d
        return self, module
