"""Trainability: which RNNs learn long dependencies, what clipping does, the initial decay rates.

Figures: Pascanu, Mikolov, Bengio 2013 (arXiv:1211.5063), section 4 and their temporal-order runs;
Le, Jaitly, Hinton 2015 (IRNN); Hochreiter & Schmidhuber 1997 / Cho et al. 2014 (gated cells);
docs/theory.md. The papers' absolute numbers (T up to 200-400 after 10^5-10^6 updates) are far
beyond a 2-core CPU, so the claims are stated as ORDERINGS AT THIS SCALE, up front:

1. Gated cells and IRNN solve longer problems than a tanh RNN with PyTorch's default init: on
   temporal order (Adam lr 1e-3, clip 1, N = 32, batch 32, at most 2000 updates, T in {10, 25,
   50, 100}, 3 seeds), the longest T solved by a majority of seeds is larger for GRU, for LSTM
   and for IRNN than for tanh. One row per cell: the count of order violations (0 or 1). The
   same rows for Pascanu's adding task when its sweep is committed (sweep=trainability_adding:
   T in {10, 25, 50}).
2. Clipping helps tanh-family RNNs as T grows (Pascanu et al. 2013): with plain SGD lr 0.1 (where
   nothing else tames a large gradient; T in {10, 25, 50}, 3 seeds), for tanh (PyTorch init),
   Pascanu's smart tanh and IRNN: (a) at no T is the clipped success rate below the unclipped
   one (a count, expected 0), and (b) clipping raises the success rate at some T (the sign of
   the largest gain, expected +1).
3. The initial decay rate of ||dL/dh_k|| on temporal order (L = 200, N = 50, 10 seeds, lags
   1-50, last-step loss) matches the reference values for Pascanu et al.'s inits within their
   seed spread (docs/theory.md, tasks and training):
   sigmoid -4.043 +- 0.054, basic tanh -0.371 +- 0.051, smart tanh -0.072 +- 0.007 nats/step.
   Measured with the exact engine (rnnlab.horizon, float64) on 20 probe sequences per seed.

A claim that does not hold at this scale is reported as failed, with the evidence in the basis
column and the CSVs beside the figure; nothing is retuned until it passes. The full mode reads the
committed trainability sweeps (results/trainability/{cells,clipping,adding}/, made by
``python experiments/train.py -m sweep=trainability``, ``sweep=trainability_clipping`` and
``sweep=trainability_adding``);
``--quick`` trains a small grid in-process instead (T in {10, 25}, one seed, 500 updates: a
smoke run whose orderings need not hold). Run alone:
``python experiments/figures/trainability.py [--quick]`` (full: a few seconds; quick: about 20 s).
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from scipy.special import digamma  # noqa: E402
from _measure import row, standalone  # noqa: E402

from rnnlab.train.horizon import decay_rate, make_measure  # noqa: E402
from rnnlab.train.config import TrainConfig  # noqa: E402
from rnnlab.train.loop import build, sample, stream, train  # noqa: E402
from rnnlab.train.tables import (collect, longest_solved, run_row, runs_frame,  # noqa: E402
                                 success_table)

FIGURE = "trainability"
SWEEPS = Path(__file__).resolve().parents[2] / "results" / "trainability"
# the ordering claim is checked on every task whose sweep is committed
TASK_LABELS = {"temporal_order": "temporal order", "adding_pascanu": "adding (Pascanu)"}
ARMS = {"tanh": {}, "irnn": dict(activation="relu", init="identity"), "gru": dict(cell="gru"),
        "lstm": dict(cell="lstm"), "smart_tanh": dict(init="pascanu_smart_tanh")}
GATED = ("gru", "lstm", "irnn")
CLIPPED_ARMS = ("tanh", "smart_tanh", "irnn")
# Pascanu et al. 2013 (their RNN.py), temporal order, L = 200, 50 units, 10 seeds, lags 1-50
PUBLISHED = {"pascanu_sigmoid": (-4.043, 0.054), "pascanu_basic_tanh": (-0.371, 0.051),
             "pascanu_smart_tanh": (-0.072, 0.007)}
INIT_ARCH = {"pascanu_sigmoid": dict(activation="sigmoid", init="pascanu_sigmoid"),
             "pascanu_basic_tanh": dict(init="pascanu_basic_tanh"),
             "pascanu_smart_tanh": dict(init="pascanu_smart_tanh")}
L_INIT, N_INIT, SEEDS_INIT, PROBE, LAGS = 200, 50, 10, 20, 50


def quick_runs() -> pd.DataFrame:
    """The --quick grid, trained in-process: Adam arms and SGD with and without clipping."""
    base = dict(task="temporal_order", hidden_size=32, steps=500, eval_every=250, eval_size=500,
                test_size=2000)
    grid = [dict(arm=arm, optimizer="adam", lr=1e-3, clip=1.0) for arm in
            ("tanh", "irnn", "gru", "lstm")]
    grid += [dict(arm=arm, optimizer="sgd", lr=0.1, clip=clip) for arm in CLIPPED_ARMS
             for clip in (1.0, None)]
    rows = []
    for spec in grid:
        for T in (10, 25):
            cfg = TrainConfig(length=T, seed=0, **base, **ARMS[spec["arm"]],
                              **{k: v for k, v in spec.items() if k != "arm"}).validate()
            result = train(cfg, measure=make_measure(cfg.task), progress=False)
            rows.append(run_row(result.config, {**result.record(), "status": result.status}))
    return runs_frame(rows)


def initial_rates() -> pd.DataFrame:
    """The initial decay rate per Pascanu init and seed, by the exact engine (float64)."""
    rows = []
    for init, arch in INIT_ARCH.items():
        for seed in range(SEEDS_INIT):
            cfg = TrainConfig(task="temporal_order", length=L_INIT, hidden_size=N_INIT,
                              seed=seed, dtype="float64", **arch).validate()
            rnn, head = build(cfg)
            x, y = sample("temporal_order", PROBE, L_INIT, stream(seed, "probe"), torch.float64)
            rows.append({"init": init, "seed": seed,
                         "decay_rate": decay_rate(rnn, head, "temporal_order", x, y, LAGS)})
    return pd.DataFrame(rows)


def linearised_rates() -> pd.DataFrame:
    """The finite-N check behind the init rows: the slope over lags 1-50 of the mean
    ln ||v (a W_k) ... (a W_1)|| for N = 50 Gaussian W of std sigma (Pascanu's sigmoid: sigma 0.01,
    a = sigmoid'(0) = 1/4; basic tanh: sigma 0.1, a = 1), with ONE fixed W per network (as in
    an RNN) or a FRESH W each step (the i.i.d. product, whose exponent is ln(a sigma) +
    (psi(N/2) + ln 2)/2), 10 seeds x 20 random v, float64 numpy."""
    rows, lags = [], np.arange(1, LAGS + 1)
    for init, sigma, a in (("pascanu_sigmoid", 0.01, 0.25), ("pascanu_basic_tanh", 0.1, 1.0)):
        for fresh in (False, True):
            slopes = []
            for seed in range(SEEDS_INIT):
                rng = np.random.RandomState(seed)
                W = rng.normal(scale=sigma, size=(N_INIT, N_INIT))
                v, ln = rng.normal(size=(PROBE, N_INIT)), []
                for _ in lags:
                    v = a * v @ (rng.normal(scale=sigma, size=W.shape) if fresh else W)
                    ln.append(np.log(np.linalg.norm(v, axis=1)).mean())
                slopes.append(np.polyfit(lags, ln, 1)[0])
            rows.append({"init": init, "W": "fresh each step" if fresh else "one fixed W",
                         "mean": float(np.mean(slopes)), "std": float(np.std(slopes, ddof=1)),
                         "iid_theory": float(np.log(a * sigma)
                                             + 0.5 * (digamma(N_INIT / 2) + np.log(2)))})
    return pd.DataFrame(rows)


def _longest(longest: pd.DataFrame, arm: str, optimizer: str, clip: str,
             task: str = "temporal_order") -> int:
    sel = longest[(longest["arm"] == arm) & (longest["optimizer"] == optimizer)
                  & (longest["clip_label"] == clip) & (longest["task"] == task)]
    return int(sel["longest_T_solved"].iloc[0]) if len(sel) else 0


def ordering_rows(success: pd.DataFrame, longest: pd.DataFrame, seeds: int) -> list[dict]:
    rows = []
    for task, label in TASK_LABELS.items():
        adam = success[(success["optimizer"] == "adam") & (success["task"] == task)]
        if adam.empty:
            continue
        Ts = ", ".join(str(int(t)) for t in sorted(adam["length"].unique()))
        tanh = _longest(longest, "tanh", "adam", "clip 1", task)
        for arm in GATED:
            mine = _longest(longest, arm, "adam", "clip 1", task)
            rows.append(row(FIGURE, f"{label}, Adam, clip 1: longest T solved by {arm} > by "
                            "tanh (PyTorch init); order violations", 0.0, float(mine <= tanh),
                            0.0, kind="sign", seeds=int(adam["seeds"].max()),
                            basis=f"longest T solved by a majority of seeds: {arm} {mine}, "
                            f"tanh {tanh} (0: none), T in {{{Ts}}}, at most 2000 updates"))
    sgd = success[success["optimizer"] == "sgd"]
    for arm in CLIPPED_ARMS:
        g = sgd[sgd["arm"] == arm].pivot_table(index="length", columns="clip_label",
                                               values="success_rate")
        if not {"clip 1", "no clipping"} <= set(g.columns):
            continue
        gain = (g["clip 1"] - g["no clipping"]).dropna()
        text = ", ".join(f"T={int(t)}: {g.loc[t, 'clip 1']:.2f} vs {g.loc[t, 'no clipping']:.2f}"
                         for t in gain.index)
        n = int(sgd["seeds"].max())
        rows.append(row(FIGURE, f"temporal order, SGD 0.1, {arm}: T where clipping's success "
                        "rate is below no clipping's (count)", 0.0, float((gain < 0).sum()), 0.0,
                        kind="sign", seeds=n, basis=f"success rate clip 1 vs none: {text}"))
        best = float(gain.max())
        at = int(gain.idxmax()) if best > 0 else None
        rows.append(row(FIGURE, f"temporal order, SGD 0.1, {arm}: sign of the largest gain of "
                        "clipping in success rate over T", 1.0, float(np.sign(best)), 0.0,
                        kind="sign", seeds=n,
                        basis=f"largest gain {best:+.2f}" + (f" at T = {at}" if at else "")
                        + f"; {text}"))
    return rows


def init_rows(rates: pd.DataFrame, linear: pd.DataFrame) -> list[dict]:
    rows = []
    for init, (mean, std) in PUBLISHED.items():
        r = rates.loc[rates["init"] == init, "decay_rate"].to_numpy()
        lin = linear[linear["init"] == init]
        note = "" if lin.empty else "; linearised N = 50 check: " + ", ".join(
            f"{w} {m:+.3f} +- {sd:.3f}" for w, m, sd in zip(lin["W"], lin["mean"], lin["std"])) \
            + f", i.i.d. theory {lin['iid_theory'].iloc[0]:+.3f}"
        rows.append(row(FIGURE, f"temporal order L = {L_INIT}, N = {N_INIT}: initial decay rate, "
                        f"{init.removeprefix('pascanu_')} init (nats/step)", mean,
                        float(r.mean()), std, kind="consistency", seeds=len(r),
                        spread=float(r.std(ddof=1)),
                        basis=f"reference value for Pascanu et al. 2013's init (docs/theory.md, "
                        f"tasks and training): {mean} +- {std} over 10 seeds; tolerance: "
                        "their seed spread (std); ours from 10 fresh networks, 20 sequences "
                        f"each, lags 1-50, exact engine, float64{note}"))
    return rows


def figure(success: pd.DataFrame, rates: pd.DataFrame, out_dir: Path) -> None:
    from rnnlab.train.archs import ARCHS
    ARM_COLOURS = {a.name: a.colour for a in ARCHS.values()}
    ARM_LABELS = {a.name: a.label for a in ARCHS.values()}

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    adam = success[(success["optimizer"] == "adam") & (success["task"] == "temporal_order")]
    for arm, g in adam.groupby("arm"):
        g = g.sort_values("length")
        axes[0].plot(g["length"], g["success_rate"], marker="o", color=ARM_COLOURS.get(arm),
                     label=ARM_LABELS.get(arm, arm))
    axes[0].set_title("temporal order, Adam 1e-3, clip 1", fontsize=9)
    sgd = success[success["optimizer"] == "sgd"]
    for i, ((arm, clip), g) in enumerate(sgd.groupby(["arm", "clip_label"])):
        g = g.sort_values("length")
        # a small vertical offset per line, so equal success rates do not hide each other
        axes[1].plot(g["length"], g["success_rate"] + 0.012 * (i - 2.5),
                     marker="o" if clip == "clip 1" else "x",
                     ls="-" if clip == "clip 1" else "--", color=ARM_COLOURS.get(arm),
                     label=f"{ARM_LABELS.get(arm, arm)}, {clip}")
    axes[1].set_title("temporal order, SGD 0.1: clip 1 (solid) vs none (dashed)", fontsize=9)
    for ax, part in zip(axes[:2], (adam, sgd)):
        ax.set_xscale("log")
        ts = sorted(part["length"].unique())
        ax.set_xticks(ts, [str(int(t)) for t in ts])
        ax.minorticks_off()
        ax.set_xlabel("T")
        ax.set_ylabel("success rate (fraction of seeds)")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[2]
    for i, (init, (mean, std)) in enumerate(PUBLISHED.items()):
        r = rates.loc[rates["init"] == init, "decay_rate"]
        ax.errorbar([i - 0.1], [mean], yerr=[std], fmt="s", color="k", capsize=3,
                    label="reference values" if i == 0 else None)
        ax.errorbar([i + 0.1], [r.mean()], yerr=[r.std(ddof=1)], fmt="o", color="C3", capsize=3,
                    label="measured (exact engine)" if i == 0 else None)
    ax.set_yscale("symlog", linthresh=0.05)
    ax.set_xticks(range(len(PUBLISHED)), [k.removeprefix("pascanu_") for k in PUBLISHED])
    ax.set_ylabel("initial decay rate (nats/step), mean +- std")
    ax.set_title(f"temporal order, L = {L_INIT}, N = {N_INIT}, {SEEDS_INIT} seeds", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "trainability.png", dpi=130, bbox_inches="tight")
    plt.close(fig)


def run(out_dir: Path, quick: bool = False) -> list[dict]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if quick:
        runs = quick_runs()
    else:
        parts = [collect(SWEEPS / name)[0] for name in ("cells", "clipping")]
        if (SWEEPS / "adding").is_dir():
            parts.append(collect(SWEEPS / "adding")[0])
        if any(p.empty for p in parts):
            raise FileNotFoundError(f"no trainability sweep in {SWEEPS}: run python "
                                    "experiments/train.py -m sweep=trainability and "
                                    "sweep=trainability_clipping first")
        runs = pd.concat(parts, ignore_index=True)
    success = success_table(runs)
    longest = longest_solved(success)
    rates = initial_rates()
    linear = linearised_rates()
    linear.to_csv(out_dir / "initial_decay_linearised.csv", index=False, float_format="%.12g")
    success.to_csv(out_dir / "trainability_success.csv", index=False, float_format="%.6g")
    rates.to_csv(out_dir / "initial_decay.csv", index=False, float_format="%.12g")
    figure(success, rates, out_dir)
    seeds = int(success.loc[success["optimizer"] == "adam", "seeds"].max())
    return ordering_rows(success, longest, seeds) + init_rows(rates, linear)


if __name__ == "__main__":
    sys.exit(standalone(run, FIGURE))
