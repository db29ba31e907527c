"""remedies: the cures that act on the Jacobians (Pascanu et al. 2013's Omega, Engelken 2023's
gradient flossing) and an orthogonal recurrence, on a tanh RNN with PyTorch's init, and the
Lyapunov exponents flossing acts on.

Sources: Pascanu, Mikolov, Bengio 2013 (arXiv:1211.5063, eq. 9-10, Fig. 7); Engelken 2023
(arXiv:2312.17306, his GradientFlossing README example); Arjovsky, Shah, Bengio 2016 (orthogonal
and unitary recurrences); Molgedey 1992 (lambda_1 = 1/2 ln chi); docs/theory.md ("Remedies in
training") and docs/tolerances.md.

EXPECTED, stated before the runs:
1. Engelken's README network before flossing: N = 80, W_ij ~ N(0, g^2/N) with g = 1, input
   weights N(0, 1), no biases, i.i.d. input bits s_t in {0, 1} (P = 1/2), windows of 55 steps
   from h = 0 with the first 16 discarded. Its drive U_i s_t has variance 1/2 over units and
   time, but it is not a stationary Gaussian: the input variance is 1 or 0 at each step. Mean
   field for the network with W and U redrawn every step (annealed) follows the length map with
   the bits, q_t = g^2 E[tanh(sqrt(q_{t-1}) z)^2] + s_t, and lambda_1 = <1/2 ln chi(q_t)>_t =
   -0.3136 (``theory.switched_drive_rate``; a stationary drive of variance 1/2 would give
   -0.3569). Rows: (a) the README network itself (one fixed W, 20 networks x 20 windows) within
   t_19 = 3.45 standard errors of the 20-network mean (Student's t, the coverage of 3 sigma);
   (b) the annealed network at N = 80 and 160, extrapolated per seed as 2 l(160) - l(80)
   (experiments/figures/annealed.py), 20 seeds, within t_19 = 3.45 standard errors. (a) compares
   a quenched network of 80 units with the annealed theory, as the issue asked; (b) is the
   like-with-like row.
2. After ``floss.pre_steps`` = 500 flossing updates of that network (k = 16 exponents, window
   55 from h = 0, discard 16, Adam 1e-3, one fresh bit sequence per update, the run's fixed
   frame: rnnlab.train.flossing), judged like with like, with the objective's own estimator:
   (a) each of lambda_1 .. lambda_16 by that estimator (the same window, discard, start state
   h = 0 and frame draw), averaged over 400 fresh windows per network, lies at 0 within its
   standard error over 20 networks: the row is the largest |z_i| = |mean lambda_i| / SE_i over
   the 16, against the two-sided Student-t quantile (19 dof) with family-wise false-alarm rate
   0.27% for 16 comparisons (Bonferroni; 4.66). This is what the method aims
   at, not what it guarantees: Adam minimises E[mean_i l_i^2] = mean_i (E l_i)^2 + Var l_i, whose
   minimum need not have E l_i = 0, and 500 updates at 1e-3 need not have converged;
   (b) the flossing loss mean_i lambda_i^2 on those fresh windows equals the mean of the last 50
   training losses within t_19 = 3.45 standard errors of the per-network difference (each
   training loss is the same estimator on its own fresh window, before its update; the weights
   still move over those 50 updates, so a still-falling loss would make the fresh one smaller);
   (c) findings, never judged: the same networks' exponents by the exact engine over windows of
   55, 200, 1000 and 5000 steps from a settled state (500 steps from h = 0 first; the first
   10 + ceil(T/10) discarded), with standard errors over networks: the drift from the
   objective's zero to the asymptotic exponents. The objective is biased against these (the
   transient from h = 0 has larger phi'^2; an unaligned frame under-estimates lambda_1 and
   over-estimates the lower ones), so the asymptotic exponents are expected below 0 (on the
   sweep's N = 32 networks after 500 updates: about -0.025).
3. From the committed sweep (results/remedies, ``python experiments/train.py -m
   sweep=remedies``: temporal order, T in {25, 50, 100}, 3 seeds, Adam 1e-3, clip 1, N = 32,
   at most 2000 updates): Omega lowers the spread of the per-step norm ratios around 1: on 32
   fresh probe sequences, Omega (the mean of (||delta_{k+1} J_{k+1}|| / ||delta_{k+1}|| - 1)^2)
   of each trained Omega run against the run without it (same T and seed); a sign row on the
   mean difference (expected -1).
4. Orderings the papers claim, as the longest T solved by more than half of the seeds, reported
   pass or fail and never retuned: Omega with clipping >= clipping alone (Pascanu Fig. 7);
   flossing before training >= none and flossing before and during training >= none
   (Engelken); orthogonal >= none. Each a count of violations (expected 0).
The figure draws Engelken's network's spectrum before and after flossing (the objective and the
5000-step windows), its exponents after flossing against the window length, the success rate
against T per remedy with the committed GRU and IRNN runs (results/trainability/cells) as
references, and lambda_1 and lambda_4 and the decay rate against the update. ``--quick``: the
Engelken rows with 4 networks (2 flossed) and 50 flossing updates, and no sweep rows (it trains
nothing). Run alone:
``python experiments/figures/remedies.py [--quick]`` or
``python -m experiments.figures.remedies [--quick]``.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
import torch
from scipy.stats import t as student_t
from torch import nn

from experiments.figures import annealed
from experiments.figures.common import ROOT, is_quick, row, standalone, stderr, t_multiple
from experiments.figures.plots import remedies as plot
from rnnlab import tasks, theory
from rnnlab.engine.lyapunov import lyapunov_from_jacobians
from rnnlab.engine.model import phi_prime_from_h
from rnnlab.train import omega as omega_reg
from rnnlab.train.flossing import Flosser, drive, flossing_exponents
from rnnlab.train.loop import load_model, sample
from rnnlab.train.tables import collect, longest_solved, success_table

FIGURE = plot.FIGURE
SWEEP = ROOT / "results" / "remedies"
REFERENCES = ROOT / "results" / "trainability" / "cells"
REMEDIES = plot.REMEDIES
ORDERINGS = (("omega", "Pascanu et al. 2013, Fig. 7: Omega with clipping >= clipping alone"),
             ("floss_pre", "Engelken 2023: flossing before training >= no flossing"),
             ("floss_during", "Engelken 2023: flossing before and during >= no flossing"),
             ("orthogonal", "orthogonal W_hh >= tanh with PyTorch's init"))
G, N_README, WINDOW, DISCARD, BITS_DELAY = 1.0, 80, 55, 16, 10
SEEDS_MF = {"full": 20, "quick": 4}
WINDOWS = {"full": 20, "quick": 5}  # fresh windows per network
K, FLOSS_LR, FLOSS_STEPS = 16, 1e-3, {"full": 500, "quick": 50}
SEEDS_FLOSS = {"full": 20, "quick": 2}
RUN_IN_SETTLED = 500  # steps from h = 0 before a settled-state window
# window length: fresh windows per network, for the drift from the objective to the asymptote
DRIFT_WINDOWS = {"full": {55: 100, 200: 25, 1000: 5, 5000: 2},
                 "quick": {55: 10, 200: 3, 1000: 1, 5000: 1}}
FRESH = {"full": 400, "quick": 20}  # fresh windows per flossed network, the objective's estimator
LAST = 50  # the last flossing losses of training averaged for the loss row
FAMILY = 0.0027  # family-wise false-alarm rate of the z-score row
PROBE = 32
# the flossing run's configuration (rnnlab.train.flossing reads these TrainConfig fields): the
# README network is a plain tanh Elman cell driven by the delayed tasks' bit stream
FLOSSING = dict(floss_lr=FLOSS_LR, hidden_size=N_README, cell="elman", floss_k=K,
                task="delayed_copy", length=BITS_DELAY, floss_window=WINDOW, activation="tanh",
                floss_discard=DISCARD)
CURVE_T, CURVE_COLUMNS = 50, ("lyap_1", "lyap_4", "decay_rate")  # the curves drawn


def readme_rnn(seed: int, N: int = N_README) -> nn.RNN:
    """Engelken's README network in float64: W_ij ~ N(0, g^2/N), input weights N(0, 1), no
    biases (h_t = tanh(W h_{t-1} + U s_t))."""
    g = torch.Generator().manual_seed(seed)
    rnn = nn.RNN(1, N, nonlinearity="tanh", batch_first=True).double()
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(G / math.sqrt(N) * torch.randn(N, N, generator=g,
                                                              dtype=torch.float64))
        rnn.weight_ih_l0.copy_(torch.randn(N, 1, generator=g, dtype=torch.float64))
        rnn.bias_ih_l0.zero_()
        rnn.bias_hh_l0.zero_()
    return rnn


def bits(rng, steps: int) -> torch.Tensor:
    """(1, steps, 1) i.i.d. bits in {0, 1}: the delayed tasks' input stream."""
    return drive("delayed_copy", BITS_DELAY, steps, rng, torch.float64)


def spectrum(rnn: nn.RNN, x: torch.Tensor, k: int, transient: int, seed: int) -> np.ndarray:
    """lambda_1..lambda_k (nats per step) of the exact engine's QR along x (1, T, 1)."""
    with torch.no_grad():
        h = torch.stack(omega_reg.elman_states(rnn, x))[:, 0]
        return lyapunov_from_jacobians(rnn.weight_hh_l0, phi_prime_from_h(h, "tanh"), k,
                                       transient,
                                       generator=torch.Generator().manual_seed(seed)).numpy()


def readme_lambda_1(seed: int, N: int, weights: str, windows: int) -> float:
    """lambda_1 of one network averaged over ``windows`` fresh windows of WINDOW steps from
    h = 0 (DISCARD discarded): the README network (fixed) or the same with W and U redrawn at
    every step (redrawn; step 0 uses the network's own draw)."""
    rnn, rng = readme_rnn(seed, N), np.random.RandomState(seed)
    if weights == "fixed":
        return float(np.mean([spectrum(rnn, bits(rng, WINDOW), 1, DISCARD, seed)[0]
                              for _ in range(windows)]))
    gen = torch.Generator().manual_seed(10_000 + seed)
    total = 0.0
    with torch.no_grad():
        for _ in range(windows):
            x, h = bits(rng, WINDOW)[0, :, 0], torch.zeros(N, dtype=torch.float64)
            v = torch.randn(N, generator=gen, dtype=torch.float64)
            v /= v.norm()
            W, U = rnn.weight_hh_l0, rnn.weight_ih_l0[:, 0]
            for t in range(WINDOW):
                if t:
                    W = G / math.sqrt(N) * torch.randn(N, N, generator=gen, dtype=torch.float64)
                    U = torch.randn(N, generator=gen, dtype=torch.float64)
                h = torch.tanh(W @ h + U * x[t])
                v = (1 - h * h) * (W @ v)
                n = v.norm()
                v /= n
                if t >= DISCARD:
                    total += math.log(n) / (WINDOW - DISCARD)
    return total / windows


def engelken_discard(window: int) -> int:
    """Steps not averaged of a window, by Engelken's rule 10 + ceil(window / 10) (16 of 55)."""
    return 10 + math.ceil(window / 10)


def settled_exponents(rnn: nn.RNN, rng, window: int, windows: int, seed: int) -> np.ndarray:
    """lambda_1..K (nats per step) of the exact engine averaged over ``windows`` fresh windows of
    ``window`` steps, each after RUN_IN_SETTLED steps from h = 0 (a settled state; not averaged,
    the frame starts after them), the first ``engelken_discard(window)`` discarded."""
    out = []
    for j in range(windows):
        x = bits(rng, RUN_IN_SETTLED + window)
        with torch.no_grad():
            h = torch.stack(omega_reg.elman_states(rnn, x))[RUN_IN_SETTLED:, 0]
            gen = torch.Generator().manual_seed(1000 * seed + j)
            out.append(lyapunov_from_jacobians(rnn.weight_hh_l0, phi_prime_from_h(h, "tanh"), K,
                                               engelken_discard(window), generator=gen).numpy())
    return np.mean(out, axis=0)


def objective_windows(rnn: nn.RNN, Q0: torch.Tensor, rng, windows: int,
                      run_in: int = 0) -> np.ndarray:
    """(windows, K): the flossing objective's own estimator on fresh bit windows: WINDOW steps
    after ``run_in`` from h = 0, DISCARD discarded, the run's frame Q0 (``flossing_exponents``)."""
    with torch.no_grad():
        return np.array([flossing_exponents(rnn, bits(rng, run_in + WINDOW), Q0, DISCARD,
                                            run_in).numpy() for _ in range(windows)])


def floss_readme(seed: int, steps, run_in: int = 0):
    """Flosses README network ``seed`` (K exponents, window WINDOW from ``run_in`` steps after
    h = 0, discard DISCARD, Adam FLOSS_LR, the bit stream RandomState(seed)), yielding
    (updates so far, network, its Flosser) after each total in the increasing list ``steps``."""
    rnn = readme_rnn(seed)
    cfg = SimpleNamespace(**FLOSSING, seed=seed, floss_run_in=run_in)
    flosser, done = Flosser(cfg, rnn, np.random.RandomState(seed)), 0
    for total in steps:
        failed = flosser.run(total - done, 0)
        if failed:
            raise RuntimeError(f"README network {seed}, run-in {run_in}: {failed}")
        done = total
        yield total, rnn, flosser


def flossed(seed: int, mode: str) -> dict:
    """One README network before and after FLOSS_STEPS[mode] flossing updates: the settled
    exponents (windows of DRIFT_WINDOWS from a settled state) before and after, the flossing
    losses, and the objective's own estimator on FRESH[mode] fresh windows after."""
    check = np.random.RandomState(50_000 + seed)
    longest = max(DRIFT_WINDOWS[mode])
    before = settled_exponents(readme_rnn(seed), check, longest, DRIFT_WINDOWS[mode][longest],
                               seed)
    _, rnn, flosser = next(floss_readme(seed, [FLOSS_STEPS[mode]]))
    objective = objective_windows(rnn, flosser.Q0, check, FRESH[mode])
    settled = {w: settled_exponents(rnn, check, w, n, seed)
               for w, n in DRIFT_WINDOWS[mode].items()}
    return dict(before=before, losses=np.array(flosser.losses), objective=objective,
                settled=settled)


def remedy_of(r) -> str:
    """The remedy of one training run, from its configuration."""
    if r.get("orthogonal"):
        return "orthogonal"
    if r.get("regularizer") == "omega":
        return "omega"
    if r.get("regularizer") == "flossing":
        return "floss_pre" if int(r.get("floss_times", 0)) == 0 else "floss_during"
    return "none"


def probe_omega(run_dir: Path, T: int) -> float:
    """Omega (eq. 9-10) of a trained run's model on PROBE fresh temporal-order sequences (the
    same sequences for every run of this T)."""
    rnn, head, _ = load_model(run_dir / "model.pt")
    rnn, head = rnn.double(), head.double()
    x, y = sample("temporal_order", PROBE, T, np.random.RandomState(90_000 + T), torch.float64)
    _, value = omega_reg.omega_backward(rnn, head, tasks.spec("temporal_order"), x, y, 0.0)
    return value


def sweep_tables():
    """(runs of the remedies sweep with their remedy, success table per remedy and T, the
    curves) or None when the sweep is not committed."""
    runs, curves = collect(SWEEP)
    if runs.empty:
        return None
    runs = runs.assign(remedy=[remedy_of(r) for r in runs.to_dict("records")])
    return runs, curves


def measure(mode: str) -> dict:
    quick = is_quick(mode)
    mf = [dict(seed=s, N=n, weights=w, rate=readme_lambda_1(s, n, w, WINDOWS[mode]))
          for s in range(SEEDS_MF[mode]) for w, n in
          (("redrawn", N_README), ("redrawn", 2 * N_README), ("fixed", N_README),
           ("fixed", 2 * N_README))]
    nets = [flossed(s, mode) for s in range(SEEDS_FLOSS[mode])]
    out = {"mode": mode, "mean_field": pd.DataFrame(mf),
           "before": np.array([n["before"] for n in nets]),
           "losses": np.array([n["losses"] for n in nets]),
           "objective": np.array([n["objective"] for n in nets]),
           "settled": {w: np.array([n["settled"][w] for n in nets])
                       for w in DRIFT_WINDOWS[mode]}}
    tables = None if quick else sweep_tables()
    if tables is not None:
        runs, curves = tables
        probe = []
        for r in runs.itertuples():
            if r.remedy in ("none", "omega"):
                probe.append(dict(remedy=r.remedy, length=r.length, seed=r.seed,
                                  omega=probe_omega(SWEEP / r.run, int(r.length))))
        out.update(runs=runs, curves=curves, probe=pd.DataFrame(probe),
                   references=collect(REFERENCES)[0])
    return out


def quick_may_fail(r: dict) -> bool:
    """Quick mode flosses 50 times, not 500, so its exponents need not reach 0 yet."""
    return "after flossing" in r["quantity"]


def rows(measured: dict) -> list[dict]:
    out = []
    mf_rate = theory.switched_drive_rate("tanh", G, 1.0, 0.5)
    table = measured["mean_field"]
    fixed = table[(table.weights == "fixed") & (table.N == N_README)].rate
    out.append(row(FIGURE, f"lambda_1 of Engelken's README network (N = {N_README}, one fixed W, "
                   f"bits, windows of {WINDOW}) vs mean field of the bit-driven length map",
                   mf_rate, float(fixed.mean()), t_multiple(len(fixed)) * stderr(fixed),
                   kind="theory", seeds=len(fixed), spread=float(fixed.std(ddof=1)),
                   estimator=f"per network QR lambda_1 over {WINDOWS[measured['mode']]} windows "
                   f"of {WINDOW} bit steps, averaged over networks",
                   se=f"SD over networks / sqrt(n) = {stderr(fixed):.2g}",
                   basis=f"tolerance {t_multiple(len(fixed)):.2f} SE (Student t, "
                   f"{len(fixed) - 1} dof, 99.73%); a stationary drive of variance 1/2 would "
                   f"give {theory.log_chi_rate('tanh', G, 0.5):+.4f}"))
    pair = table[(table.weights == "redrawn") | (table.N == 2 * N_README)]
    out += annealed.rows(FIGURE, "README network's lambda_1, bits", pair, mf_rate,
                         what="lambda_1", law="rate-vs-gain's docstring, for the backward rate")

    out += flossing_rows(measured)
    if "runs" not in measured:
        return out

    probe = measured["probe"].pivot_table(index=["length", "seed"], columns="remedy",
                                          values="omega")
    diff = (probe["omega"] - probe["none"]).dropna()
    out.append(row(FIGURE, "Omega on probe sequences after training: sign of (with Omega - "
                   "without), mean over T and seeds", -1.0, float(np.sign(diff.mean())), 0.0,
                   kind="sign", seeds=len(diff), spread=float(diff.std(ddof=1)),
                   estimator="per (T, seed) Omega of the run trained with it minus that of the "
                   "run trained without, on the same probe sequences, averaged",
                   se=f"SD of the differences / sqrt(n) = {stderr(diff):.2g}",
                   basis=f"with Omega {probe['omega'].mean():.4f}, without "
                   f"{probe['none'].mean():.4f} (mean of (ratio - 1)^2 over steps and "
                   f"sequences)"))
    longest = solved(measured["runs"]).set_index("remedy")["longest_T_solved"]
    for remedy, claim in ORDERINGS:
        out.append(row(FIGURE, f"{claim}: longest T solved by most seeds ({remedy} "
                       f"{longest[remedy]}, none {longest['none']})", 0.0,
                       float(longest[remedy] < longest["none"]), 0.0, kind="sign",
                       seeds=3, basis="a count of violations; T in {25, 50, 100}, 3 seeds, "
                       "2000 updates"))
    return out


def flossing_rows(measured: dict) -> list[dict]:
    """The flossed README networks: the objective's own estimator on fresh windows at 0 and its
    loss against the last training losses (judged), the exponents over longer windows from a
    settled state (findings: the drift from the objective's zero to the asymptote)."""
    mode, out = measured["mode"], []
    objective = measured["objective"]  # (networks, windows, K)
    n, M, k = objective.shape
    per_net = objective.mean(1)  # (networks, K): each network's mean over its fresh windows
    se = per_net.std(0, ddof=1) / math.sqrt(n)
    z = per_net.mean(0) / se
    worst = int(np.argmax(np.abs(z)))
    estimator = (f"the flossing objective's estimator (QR over windows of {WINDOW} bit steps from "
                 f"h = 0, first {DISCARD} discarded, each network's own training frame Q0)")
    out.append(row(FIGURE, f"after flossing, the objective re-evaluated (lambda_1..{k} -> 0): "
                   f"max |z| of the mean exponents over {k}", 0.0, float(np.abs(z).max()),
                   float(student_t.isf(FAMILY / (2 * k), n - 1)), kind="theory", seeds=n,
                   spread=float(per_net.std(0, ddof=1)[worst]),
                   estimator=f"{estimator}, per network the mean of {M} fresh windows after "
                   f"{FLOSS_STEPS[mode]} updates, averaged over networks",
                   se="per exponent SD of the per-network means / sqrt(n); z = mean / SE",
                   basis=f"tolerance Student's t quantile ({n - 1} dof) at family-wise "
                   f"{FAMILY:.2%} over {k} (Bonferroni); worst i = "
                   f"{worst + 1}, mean {per_net.mean(0)[worst]:+.4f} +- {se[worst]:.4f}; "
                   f"lambda_1 {per_net.mean(0)[0]:+.4f} +- {se[0]:.4f}; mean over i "
                   f"{per_net.mean():+.4f}"))
    fresh = (objective ** 2).mean(2).mean(1)  # per network: mean over windows of mean_i l_i^2
    last = measured["losses"][:, -LAST:].mean(1)
    diff = fresh - last
    out.append(row(FIGURE, f"after flossing, the flossing loss mean_i lambda_i^2 on fresh "
                   f"windows vs the mean of the last {LAST} training losses", float(last.mean()),
                   float(fresh.mean()), t_multiple(n) * stderr(diff), kind="consistency",
                   seeds=n, spread=float(diff.std(ddof=1)),
                   estimator=f"{estimator}, per network the mean loss over {M} fresh windows "
                   f"minus the mean of its last {LAST} training losses (each on its own fresh "
                   "window, before its update), averaged over networks",
                   se=f"SD of the per-network differences / sqrt(n) = {stderr(diff):.2g}",
                   basis=f"tolerance {t_multiple(n):.2f} SE (Student t, {n - 1} dof, 99.73%)"))
    for window, settled in measured["settled"].items():
        windows = DRIFT_WINDOWS[mode][window]
        out.append(row(FIGURE, f"after flossing, lambda_1 over windows of {window} steps from a "
                       f"settled state (drift from the objective to the asymptote)", 0.0,
                       float(settled[:, 0].mean()), math.nan, kind="finding", seeds=len(settled),
                       spread=float(settled[:, 0].std(ddof=1)),
                       basis=f"estimator: exact-engine QR over {windows} fresh windows of "
                       f"{window} steps per network, each after {RUN_IN_SETTLED} steps from "
                       f"h = 0, first {engelken_discard(window)} discarded; n = {len(settled)} "
                       f"networks; SE = SD/sqrt(n) = {stderr(settled[:, 0]):.4f}; mean over "
                       f"i <= {k} {settled.mean():+.4f}, lambda_{k} "
                       f"{settled[:, -1].mean():+.4f} +- {stderr(settled[:, -1]):.4f}"))
    return out


def solved(runs: pd.DataFrame) -> pd.DataFrame:
    """The longest T solved by more than half of the seeds (0: none), per remedy."""
    return longest_solved(success_table(runs, ["remedy"]), ["remedy"])


def settings_table(mode: str, networks: int) -> pd.DataFrame:
    """remedies_settings.csv: the README network's width, the flossed networks, the flossing
    updates and the objective's window."""
    return pd.DataFrame([{"N": N_README, "networks": networks, "floss_steps": FLOSS_STEPS[mode],
                          "window": WINDOW}])


def sweep_frames(runs: pd.DataFrame | None, curves: pd.DataFrame | None,
                 references: pd.DataFrame | None) -> dict:
    """success.csv (per remedy and T), remedies_references.csv (success per arch and T of the
    trainability cells sweep) and remedies_curves.csv (per remedy and update at T = 50, the seed
    means of lyap_1, lyap_4 and decay_rate); frames without rows when the sweep is not there."""
    if runs is None:
        return {"success.csv": pd.DataFrame(columns=["remedy", "length", "success_rate"]),
                "remedies_references.csv": pd.DataFrame(columns=["arch", "length",
                                                                 "success_rate"]),
                "remedies_curves.csv": pd.DataFrame(columns=["remedy", "length", "step",
                                                             *CURVE_COLUMNS])}
    at = curves.merge(runs[["run", "remedy"]], on="run")
    at = at[at.length == CURVE_T]
    means = pd.concat([at[at.remedy == remedy].groupby("step")[list(CURVE_COLUMNS)].mean()
                       .reset_index().assign(remedy=remedy, length=CURVE_T)
                       for remedy in REMEDIES], ignore_index=True)
    return {"success.csv": success_table(runs, ["remedy"]),
            "remedies_references.csv": success_table(references, ["arch"]),
            "remedies_curves.csv": means[["remedy", "length", "step", *CURVE_COLUMNS]]}


def tables(measured: dict) -> dict:
    """readme_lambda_1.csv (lambda_1 per seed, N and weights), flossed_spectrum.csv (per
    exponent the mean and sd over networks before flossing, of the objective after, and of the
    settled windows after), flossed_networks.csv (per network the objective and its loss beside
    the last training losses and the longest settled window's exponents),
    remedies_settings.csv, and sweep_frames (with probe_omega.csv where the sweep is there)."""
    before, objective = measured["before"], measured["objective"].mean(1)
    settled = measured["settled"]
    longest = max(settled)
    k = before.shape[1]
    table = {"i": np.arange(1, k + 1), "before_mean": before.mean(0),
             "before_std": before.std(0, ddof=1), "objective_mean": objective.mean(0),
             "objective_std": objective.std(0, ddof=1)}
    for w, values in settled.items():
        table[f"settled_{w}_mean"] = values.mean(0)
        table[f"settled_{w}_std"] = values.std(0, ddof=1)
    # per flossed network: the objective re-evaluated beside the settled long-window exponents
    per = {"seed": np.arange(len(objective)),
           "objective_loss": (measured["objective"] ** 2).mean(2).mean(1),
           f"last_{LAST}_losses": measured["losses"][:, -LAST:].mean(1)}
    per.update({f"objective_{j + 1}": objective[:, j] for j in range(k)})
    per.update({f"settled_{longest}_{j + 1}": settled[longest][:, j] for j in range(k)})
    out = {"readme_lambda_1.csv": measured["mean_field"],
           "flossed_spectrum.csv": pd.DataFrame(table),
           "flossed_networks.csv": pd.DataFrame(per),
           "remedies_settings.csv": settings_table(measured["mode"], len(objective))}
    if "runs" in measured:
        out["probe_omega.csv"] = measured["probe"]
        return out | sweep_frames(measured["runs"], measured["curves"], measured["references"])
    return out | sweep_frames(None, None, None)


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
