"""Proposal rules: given the history and a score model, rank candidate codes.

Each proposer is framework-free (numpy in, numpy out), so the Optuna samplers and the
Ax generation nodes share it. NCP's math lives in :func:`ncp_hpo.propagation.propagate`;
the proposers only choose starts, weights and the order of the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ncp_hpo.search._history import History, code_key
from ncp_hpo.search._history import unique_rows as _unique_rows
from ncp_hpo.search._settings import PredictorDefaults
from ncp_hpo.search._surrogate import ScoreModel
from ncp_hpo.search._tradeoff import check_lam, flops_penalty, log_flops, standardize, uses_flops
from ncp_hpo.spaces import CodeSpace

_STRATEGIES = ("continuous", "winner_takes_all")

__all__ = [
    "GuidedNCPProposer",
    "NCPProposer",
    "NetAdaptProposer",
    "NeuralPredictorProposer",
    "Proposer",
    "objective_weights",
]


def objective_weights(k: int, rng: np.random.Generator) -> np.ndarray:
    """Scalarisation weights of ``k`` objectives: ``[1]`` for one, else a random point of the
    simplex (a new trade-off on every proposal spreads the proposals along the front)."""
    if k == 1:
        return np.ones(1)
    return rng.dirichlet(np.ones(k))


def _check_int(owner: object, name: str, low: int) -> None:
    value = getattr(owner, name)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{type(owner).__name__}: {name} must be an int >= {low}, got {value!r}")


def _check_float(owner: object, name: str, *, positive: bool) -> None:
    value = getattr(owner, name)
    ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    ok = ok and np.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        raise ValueError(
            f"{type(owner).__name__}: {name} must be a finite number "
            f"{'> 0' if positive else '>= 0'}, got {value!r}"
        )


@dataclass
class Proposer:
    """Base: ``propose(history, model, rng) -> m x d`` candidate codes, best first.

    A subclass's field defaults are its settings; its ``predictor_defaults`` are the
    online predictor and refit schedule it runs with unless the user overrides them
    (:class:`~ncp_hpo.search._settings.SourceSettings` applies them).

    Args:
        space: the code space.
        lam: weight of the exact-FLOPs penalty (paper's lambda); 0 disables it. Only used
            where the space has exact FLOPs.
        held_dims: code dimensions the predictor knew nothing of before the study (the
            inputs a prior was widened to, e.g. a training recipe's learning rate): random
            codes take them from the best trial, and a propagated code moves them at most
            ``held_reach`` grid steps from its start, so the gradient the study's few trials
            taught is followed a step at a time, never extrapolated to a bound.
        held_reach: how far (grid steps) one propagation moves a held dimension.
    """

    predictor_defaults: ClassVar[PredictorDefaults] = PredictorDefaults()

    space: CodeSpace
    lam: float = 0.0
    held_dims: tuple[int, ...] = ()
    held_reach: int = 8
    info: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def propose(self, history: History, model: ScoreModel, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    # helpers shared by the baselines ----------------------------------------------------
    def __post_init__(self) -> None:
        if not isinstance(self.space, CodeSpace):
            raise TypeError(f"space must be a CodeSpace, got {type(self.space).__name__}")
        self.lam = check_lam(self.lam)
        held = tuple(self.held_dims)
        if any(isinstance(i, bool) or not isinstance(i, int | np.integer) for i in held) or any(
            not 0 <= i < self.space.dim for i in held
        ):
            raise ValueError(
                f"{type(self).__name__}: held_dims must be dimensions 0..{self.space.dim - 1} "
                f"of the code, got {self.held_dims!r}"
            )
        self.held_dims = tuple(int(i) for i in held)
        _check_int(self, "held_reach", 0)

    def _random_codes(self, n: int, history: History, rng: np.random.Generator) -> np.ndarray:
        """``n`` uniformly random codes (``n x d``); ``held_dims`` from the best trial."""
        codes = self.space.sample(n, seed=rng)
        if self.held_dims and n:
            inc = history.incumbents(max_count=1)
            if len(inc):
                idx = list(self.held_dims)
                codes[:, idx] = inc[0][idx]
        return codes

    def _within_reach(self, codes: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """``codes`` (``... x n x d``, row ``i`` propagated from ``starts[i]``) with each held
        dimension clipped to ``held_reach`` grid steps of its start's value."""
        if not self.held_dims:
            return codes
        idx = list(self.held_dims)
        reach = self.held_reach * np.asarray(self.space.grid_step(), dtype=np.float64)[idx]
        out = np.array(codes, copy=True)
        origin = starts[:, idx]
        out[..., idx] = np.clip(out[..., idx], origin - reach, origin + reach).astype(out.dtype)
        return out

    def _log_flops(self, codes: np.ndarray) -> np.ndarray:
        if not uses_flops(self.lam, self.space):
            return np.zeros(len(codes))
        return log_flops(self.space, codes)

    def _utility(
        self,
        codes: np.ndarray,
        history: History,
        model: ScoreModel,
        weights: np.ndarray,
    ) -> np.ndarray:
        """Weighted standardised predicted objectives minus ``lam`` x standardised log-FLOPs;
        codes predicted to violate a constraint rank after every predicted-feasible one."""
        util = self._metric_only(codes, history, model, weights)
        if uses_flops(self.lam, self.space):
            lf = self._log_flops(codes)
            ref_lf = self._log_flops(history.codes) if history.n > 1 else lf
            util = util - flops_penalty(self.lam, lf, ref_lf)
        return _penalize(util, model.violation(codes))

    def _metric_only(
        self, codes: np.ndarray, history: History, model: ScoreModel, w: np.ndarray
    ) -> np.ndarray:
        """Weighted standardised predicted objectives (no FLOPs, no constraints)."""
        pred = model.scores(codes)
        ref = history.scores[:, : pred.shape[1]] if history.n > 1 else pred
        return standardize(pred, ref) @ w[: pred.shape[1]]


@dataclass
class NeuralPredictorProposer(Proposer):
    """Wen et al. (2020): predict a large random pool and propose its best codes.

    Args:
        pool_size: random codes scored per proposal (10,000 in the paper).
        top_k: candidates returned (the base sampler takes the first unseen one).
    """

    pool_size: int = 10_000
    top_k: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int(self, "pool_size", 1)
        _check_int(self, "top_k", 1)

    def propose(self, history: History, model: ScoreModel, rng: np.random.Generator) -> np.ndarray:
        pool = self._random_codes(self.pool_size, history, rng)
        w = objective_weights(len(model.outputs), rng)
        util = self._utility(pool, history, model, w)
        order = np.argsort(-util, kind="stable")[: self.top_k]
        self.info = {"pool_size": self.pool_size, "best_utility": float(util[order[0]])}
        return pool[order]


@dataclass
class NetAdaptProposer(Proposer):
    """NetAdapt-style greedy walk (Yang et al., 2018; paper Table 10).

    From the incumbent, every one-unit move of one dimension (``space.neighbors``) is scored
    by the predictor; moves that raise the predicted metric and lower FLOPs come first, then
    the best predicted metric gain per extra FLOP, then the rest by predicted gain. The walk
    continues from the best move for ``max_steps`` steps, so a fully explored neighbourhood
    still yields unseen candidates.
    """

    max_steps: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int(self, "max_steps", 1)

    def propose(self, history: History, model: ScoreModel, rng: np.random.Generator) -> np.ndarray:
        inc = history.incumbents(max_count=1)
        current = inc[0] if len(inc) else self._random_codes(1, history, rng)[0]
        w = objective_weights(len(model.outputs), rng)
        ranked: list[np.ndarray] = []
        for _ in range(self.max_steps):
            nbrs = self.space.neighbors(current)
            both = np.concatenate([current[None], nbrs])
            util = self._metric_only(both, history, model, w)
            gain = util[1:] - util[0]
            infeasible = model.violation(nbrs) > 0
            gain = np.where(infeasible, -np.inf, gain)
            if self.space.has_exact_flops:
                f = np.asarray(self.space.flops(both), dtype=np.float64).reshape(-1)
                dflops = (f[1:] - f[0]) / max(f[0], 1.0)
            else:
                dflops = np.zeros(len(nbrs))
            order = _netadapt_order(gain, dflops, self.lam)
            ranked.append(nbrs[order])
            current = nbrs[order[0]]
        self.info = {"steps": self.max_steps}
        return np.concatenate(ranked)


def _penalize(util: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Move predicted-infeasible codes below every predicted-feasible one (least violation
    first among them)."""
    if not violation.any():
        return util
    floor = util.min() - 1.0
    return np.where(violation > 0, floor - violation / violation.max(), util)


def _netadapt_order(gain: np.ndarray, dflops: np.ndarray, lam: float) -> np.ndarray:
    """Rank moves: win-win first (by gain), then gain per relative FLOP, then by gain.

    With ``lam == 0`` FLOPs are ignored and moves are ranked by predicted gain alone.
    """
    if lam == 0:
        return np.argsort(-gain, kind="stable")
    win = (gain > 0) & (dflops <= 0)
    costly = (gain > 0) & (dflops > 0)
    key = np.where(win, 2e12 + gain, np.where(costly, 1e12 + gain / dflops, gain))
    return np.argsort(-key, kind="stable")


@dataclass
class NCPProposer(Proposer):
    """Network Coding Propagation from the incumbent(s) (paper Algorithm 1).

    Starts are the incumbents (the best trial, or the Pareto set), one-unit perturbations of
    them (diversity), and a few random codes; all are propagated at once by
    :func:`ncp_hpo.propagation.propagate` with the paper's settings. Candidates are the
    final codes, best predicted utility first, then every other code the trajectories
    passed through; if every final code is already evaluated or running, the finals are
    propagated further (up to ``max_rounds`` times) before falling back to the trajectory.

    The predictor is one network of the paper's architecture, refitted after every trial
    (the base's ``predictor_defaults``).

    Args:
        strategy: ``"continuous"`` or ``"winner_takes_all"``.
        iterations: propagation iterations per round (70).
        lr: learning rate on the standardised code (3).
        n_starts: codes propagated per proposal.
        n_random_starts: how many of them are uniformly random.
        max_rounds: propagation rounds before the trajectory fallback.
    """

    strategy: str = "continuous"
    iterations: int = 70
    lr: float = 3.0
    n_starts: int = 32
    n_random_starts: int = 4
    max_rounds: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.strategy not in _STRATEGIES:
            raise ValueError(
                f"{type(self).__name__}: strategy must be one of {_STRATEGIES}, "
                f"got {self.strategy!r}"
            )
        for name, low in (("iterations", 1), ("n_starts", 1), ("n_random_starts", 0)):
            _check_int(self, name, low)
        _check_int(self, "max_rounds", 1)
        _check_float(self, "lr", positive=True)

    def propose(self, history: History, model: ScoreModel, rng: np.random.Generator) -> np.ndarray:
        from ncp_hpo.propagation import Objective, propagate

        weights = objective_weights(len(model.outputs), rng)
        names = model.predictor.metric_names_
        objectives = [
            Objective(predictor=model.predictor, metric=names[o], weight=float(w) * s)
            for o, w, s in zip(model.outputs, weights, model.sign, strict=True)
            if w > 0
        ]
        starts = self._starts(history, rng)
        use_flops = uses_flops(self.lam, self.space)
        seen = history.seen()
        finals, visited = [], []
        for _ in range(self.max_rounds):
            res = propagate(
                objectives,
                self.space,
                starts,
                strategy=self.strategy,  # type: ignore[arg-type]
                iterations=self.iterations,
                lr=self.lr,
                lam=self.lam if use_flops else 0.0,
                flops_source="exact" if use_flops else "none",
                stop_at_target=False,
            )
            codes = self._within_reach(res.codes, starts)
            finals.append(codes)
            if res.trajectory is not None:
                visited.append(
                    self._within_reach(res.trajectory.rounded, starts).reshape(-1, self.space.dim)
                )
            if any(code_key(c) not in seen for c in codes):
                break
            # every final code is taken: keep propagating from perturbed finals
            starts = self._perturb(codes, rng)
        final = _unique_rows(np.concatenate(finals))
        util = self._utility(final, history, model, weights)
        ranked = final[np.argsort(-util, kind="stable")]
        rest = _unique_rows(np.concatenate(visited)) if visited else final[:0]
        if len(rest):
            util_rest = self._utility(rest, history, model, weights)
            rest = rest[np.argsort(-util_rest, kind="stable")]
        self.info = {"starts": len(starts), "rounds": len(finals), "weights": weights.tolist()}
        return np.concatenate([ranked, rest])

    def _starts(self, history: History, rng: np.random.Generator) -> np.ndarray:
        n_rand = min(self.n_random_starts, self.n_starts)
        inc = history.incumbents(max_count=max(1, (self.n_starts - n_rand) // 2))
        start = self.space.paper_start() if len(inc) == 0 else None
        if start is not None:  # no trials yet (prior mode): the paper's start
            inc = start[None]
        parts = [inc]
        n_pert = self.n_starts - n_rand - len(inc)
        if len(inc) and n_pert > 0:
            parts.append(self._perturb(inc[rng.integers(0, len(inc), size=n_pert)], rng))
        n_fill = self.n_starts - sum(len(p) for p in parts)
        parts.append(self._random_codes(max(n_fill, 0), history, rng))
        return np.concatenate(parts).astype(np.int64)

    def _perturb(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random one-unit move of each code (``space.neighbors``)."""
        out = []
        for c in codes:
            nbrs = self.space.neighbors(c)
            out.append(nbrs[rng.integers(len(nbrs))])
        return np.asarray(out, dtype=np.int64).reshape(-1, self.space.dim)


@dataclass
class GuidedNCPProposer(NCPProposer):
    """NCP guided by an ensemble's upper confidence bound, with local refinement.

    Once per predictor fit (``model.version``), ``n_starts`` codes (incumbents, one-unit
    perturbations of them, random codes) are propagated by :func:`propagate` exactly as in
    :class:`NCPProposer`; the candidate *pool* is then the final codes, every code the
    trajectories passed through, the one-unit neighbours of the finals (local refinement
    of the propagated codes) and ``n_random`` uniform codes, and their ensemble
    predictions are cached. On every proposal the one-unit neighbours of the top
    ``n_incumbents`` incumbents join the pool (the incumbents move between fits), and all
    candidates are ranked by the upper confidence bound ``(mean - mu) / sd + kappa * std /
    sd`` per objective (``mu``, ``sd``: the history's scores; ``std``: the ensemble
    members' spread), weighted as in :class:`NCPProposer` and minus the FLOPs term.

    Args:
        n_incumbents: incumbents whose neighbourhoods are scored on every proposal.
        kappa: weight of the ensemble spread (0: predicted mean only).
        n_random: uniform codes added to the pool at each fit (global exploration).

    Measured alternatives, off by default (none beat the defaults on NAS-Bench-201
    development seeds; ``benchmarks/results/nas-bench-201-ncp-dev.md``):

    Args:
        hops: also score the ``hops``-move neighbourhood of the best incumbent (1: off).
        trust_radius: rank candidates more than this many moves from all of the top
            ``n_trust`` incumbents after every candidate inside (0: off).
        n_trust: incumbents that centre the trust region.
        thompson: rank by one random ensemble member's prediction (drawn per proposal)
            instead of the upper confidence bound.
        niche: pick the local-search incumbents at least this many moves apart (0: off).

    Its predictor (``predictor_defaults``) is a 5-member ensemble (64/32 units, dropout 0.1,
    100 epochs), refitted once ``max(refit_every, 0.3 n)`` new trials completed since the
    fit on ``n``.
    """

    predictor_defaults: ClassVar[PredictorDefaults] = PredictorDefaults(
        predictor_params={
            "hidden": 64,
            "head_hidden": 32,
            "n_members": 5,
            "dropout": 0.1,
            "epochs": 100,
        },
        refit_growth=0.3,
    )

    iterations: int = 30
    n_starts: int = 16
    n_random_starts: int = 2
    n_incumbents: int = 4
    kappa: float = 2.0
    n_random: int = 1000
    hops: int = 1
    trust_radius: int = 0
    n_trust: int = 8
    thompson: bool = False
    niche: int = 0
    _member: int = field(default=0, init=False, repr=False)
    _pool_key: tuple[int, int] | None = field(default=None, init=False, repr=False)
    _pool: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, low in (("n_incumbents", 0), ("n_random", 0), ("hops", 1), ("n_trust", 1)):
            _check_int(self, name, low)
        _check_int(self, "trust_radius", 0)
        _check_int(self, "niche", 0)
        _check_float(self, "kappa", positive=False)

    def propose(self, history: History, model: ScoreModel, rng: np.random.Generator) -> np.ndarray:
        weights = objective_weights(len(model.outputs), rng)
        self._member = int(rng.integers(1 << 30))
        key = (id(model.predictor), model.version)
        if self._pool_key != key or not self._pool:
            self._pool = self._build_pool(history, model, rng, weights)
            self._pool_key = key
        inc = self._local_centres(history)
        local = [self.space.neighbors(c) for c in inc]
        if self.hops > 1 and len(inc):
            ring = local[0]
            for _ in range(self.hops - 1):
                ring = _unique_rows(np.concatenate([self.space.neighbors(c) for c in ring]))
                local.append(ring)
        if local:
            block = self._score(_unique_rows(np.concatenate(local)), model)
            cand = {k: np.concatenate([self._pool[k], block[k]]) for k in block}
        else:
            cand = self._pool
        util = self._ucb(cand, history, weights)
        if self.trust_radius > 0 and history.n:
            centres = history.incumbents(max_count=self.n_trust)
            inside = self._moves_to(cand["codes"], centres) <= self.trust_radius
            if inside.any():
                util = np.where(inside, util, util.min() - 1.0 + util - util.max())
        order = np.argsort(-util, kind="stable")
        self.info = {"pool": len(self._pool["codes"]), "weights": weights.tolist()}
        return cand["codes"][order]

    def _local_centres(self, history: History) -> np.ndarray:
        """The top ``n_incumbents`` incumbents; with ``niche > 0``, each at least ``niche``
        moves from every better one kept (one centre per basin, best first)."""
        if self.niche <= 0 or history.n == 0:
            return history.incumbents(max_count=self.n_incumbents)
        ranked = history.incumbents(max_count=history.n)
        kept = [ranked[0]]
        for c in ranked[1:]:
            if len(kept) >= self.n_incumbents:
                break
            if self._moves_to(c[None], np.asarray(kept))[0] >= self.niche:
                kept.append(c)
        return np.asarray(kept)

    def _moves_to(self, codes: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """``n``: fewest one-unit moves (estimated as differing dimensions over the
        dimensions one move changes) from each of ``codes`` to any of ``centres``."""
        per_move = max(1, int(np.count_nonzero(self.space.neighbors(centres[0])[0] != centres[0])))
        diff = (codes[:, None, :] != centres[None, :, :]).sum(-1).min(1)
        return -(-diff // per_move)

    def _build_pool(
        self,
        history: History,
        model: ScoreModel,
        rng: np.random.Generator,
        weights: np.ndarray,
    ) -> dict[str, np.ndarray]:
        from ncp_hpo.propagation import Objective, propagate

        names = model.predictor.metric_names_
        objectives = [
            Objective(predictor=model.predictor, metric=names[o], weight=float(w) * s)
            for o, w, s in zip(model.outputs, weights, model.sign, strict=True)
            if w > 0
        ]
        use_flops = uses_flops(self.lam, self.space)
        starts = self._starts(history, rng)
        res = propagate(
            objectives,
            self.space,
            starts,
            strategy=self.strategy,  # type: ignore[arg-type]
            iterations=self.iterations,
            lr=self.lr,
            lam=self.lam if use_flops else 0.0,
            flops_source="exact" if use_flops else "none",
            stop_at_target=False,
        )
        codes = self._within_reach(res.codes, starts)
        parts = [codes]
        if res.trajectory is not None:
            parts.append(
                self._within_reach(res.trajectory.rounded, starts).reshape(-1, self.space.dim)
            )
        parts += [self.space.neighbors(c) for c in _unique_rows(codes)]
        parts.append(self._random_codes(self.n_random, history, rng))
        return self._score(_unique_rows(np.concatenate(parts).astype(np.int64)), model)

    def _score(self, codes: np.ndarray, model: ScoreModel) -> dict[str, np.ndarray]:
        """Everything the ranking needs about ``codes`` that does not change until a refit."""
        members = model.member_scores(codes)  # E x n x k
        mean = members.mean(0)
        std = members.std(0, ddof=1) if len(members) > 1 else np.zeros_like(mean)
        return {
            "codes": codes,
            "mean": mean,
            "std": std,
            "members": members.transpose(1, 0, 2),  # n x E x k
            "violation": model.violation(codes),
            "log_flops": self._log_flops(codes),
        }

    def _ucb(self, cand: dict[str, np.ndarray], history: History, w: np.ndarray) -> np.ndarray:
        mean, std = cand["mean"], cand["std"]
        if self.thompson:  # one random member's prediction (drawn per proposal)
            members = cand["members"]
            mean = members[:, self._member % members.shape[1]]
            std = np.zeros_like(mean)
        k = mean.shape[1]
        ref = history.scores[:, :k] if history.n > 1 else mean
        sd = ref.std(0) if len(ref) > 1 else np.ones(k)
        sd = np.where(sd > 1e-12, sd, 1.0)
        util = ((mean - ref.mean(0)) / sd + self.kappa * std / sd) @ w[:k]
        if uses_flops(self.lam, self.space):
            ref_lf = self._log_flops(history.codes) if history.n > 1 else cand["log_flops"]
            util = util - flops_penalty(self.lam, cand["log_flops"], ref_lf)
        return _penalize(util, cand["violation"])
