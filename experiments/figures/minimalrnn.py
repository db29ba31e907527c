"""minimalrnn: the decay rate of ||dL_t/dh_k|| of a minimalRNN against sigma_w, at gate bias
mu_b = 0 and 4, with Chen, Pennington and Schoenholz's mean-field rate 1/2 ln chi.

Source: Chen, Pennington, Schoenholz 2018 (arXiv:1806.05394); docs/cells.md ("minimalRNN").

EXPECTED (nats per step): z_t = U x_t with fresh x_t and D = N (per-unit input variance R = 1),
gate u = s(W h + W_z z + b) with W_ij ~ N(0, sigma_w^2/N), W_z ~ N(0, 1/N), b = mu_b. Mean field:
Q* = R E[(1-u)^2] / (1 - E[u^2]), chi = E[u^2] + sigma_w^2 (Q* + R) E[s'(e)^2], rate 1/2 ln chi:
-0.5822, -0.3175, -0.0591, +0.2006 at sigma_w = 0.5, 2, 4, 8 (mu_b = 0) and -0.0017 at
sigma_w = 4, mu_b = 4. Mean field is the N -> infinity limit of the network whose weights are
redrawn at every step (annealed), so each theory row measures exactly that
(``measure.weights=redrawn``) at N = 250 and 500 and extrapolates to N = infinity assuming a 1/N
finite-size term, r_inf = 2 r(500) - r(250), per seed; tolerance 3 standard errors of the 5-seed
mean of r_inf. The 1/N law was measured on redrawn networks (3 seeds, N = 200, 500, 1000): at
sigma_w = 8, mu_b = 0 the gap to mean field was 0.032, 0.0144, 0.0066 (N x gap 6.5, 7.2, 6.6);
at sigma_w = 6, mu_b = 4: 0.0076, 0.0027, 0.0010. Beside each theory row, two findings, never
judged: the finite-N term at N = 500 (r(250) - r(500), the same 1/N law), and the quenched -
annealed gap at N = 500, one fixed W (a real minimalRNN, whose gate input stays correlated in
time) minus redrawn on the same seeds (same step-0 weights, readout and data). Each rate is the
least-squares slope of ln r(t, k) over lags 1..50 (T = 100, 2 sequences per network, 300 burn-in
steps). Full mode about 12 minutes on one core; quick mode: sigma_w = 2 and 8 at N = 100 and
200. Run alone:
``python experiments/figures/minimalrnn.py [--quick]`` (or
``python -m experiments.figures.minimalrnn [--quick]``).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
from tqdm import tqdm

from experiments.figures.common import is_quick, network, row, standalone, stderr
from rnnlab import theory
from rnnlab.engine import adjoint as gradients
from rnnlab.engine.fit import fit_decay
from rnnlab.plotting import plt

FIGURE = "minimalrnn"
GAINS = {"full": [0.5, 1.0, 2.0, 4.0, 6.0, 8.0], "quick": [2.0, 8.0]}
MU_B = (0.0, 4.0)
SEEDS, T, BURN_IN, MAX_LAG = 5, 100, 300, 50
SIZES = {"full": (250, 500), "quick": (100, 200)}  # N: the extrapolation's two sizes
# (weights, which of the two sizes) of every network measured
RUNS = (("redrawn", 0), ("redrawn", 1), ("fixed", 1))


def rate(seed, sigma_w, mu_b, weights, N) -> float:
    _, traj = network(seed=seed, weights=weights, cell="minimal", gain=sigma_w,
                      spectral_radius=None, gate_bias=mu_b, hidden_size=N, input_size=N,
                      seq_len=T, batch_size=2, burn_in=BURN_IN)
    prof = gradients.pair_profile(traj, max_lag=MAX_LAG)
    return fit_decay(prof.lag, prof.ln_ratio, 1, MAX_LAG)["decay_rate"]


def mean_field(sigma_w, mu_b) -> float:
    return 0.5 * math.log(theory.minimal_chi(sigma_w, mu_b))


def measure(mode: str) -> pd.DataFrame:
    """One rate per gate bias, sigma_w, seed, weights (redrawn, fixed) and N, beside its
    mean-field rate."""
    is_quick(mode)
    sizes = SIZES[mode]
    points = [(mu, sw, s, w, sizes[i]) for mu in MU_B for sw in GAINS[mode]
              for s in range(SEEDS) for w, i in RUNS]
    df = pd.DataFrame([dict(N=n, mu_b=mu, sigma_w=sw, seed=s, weights=w,
                            rate=rate(s, sw, mu, w, n))
                       for mu, sw, s, w, n in tqdm(points, desc=FIGURE, mininterval=2.0)])
    df["mean_field_rate"] = [mean_field(sw, mu) for sw, mu in zip(df.sigma_w, df.mu_b)]
    return df


def quick_may_fail(r: dict) -> bool:
    """At quick sizes (N = 100 and 200) the 1/N law behind the extrapolation need not hold yet,
    so the theory rows are a smoke test there."""
    return r["kind"] == "theory"


def series(g: pd.DataFrame) -> dict:
    """Per seed: the redrawn rates at the two sizes, their N -> infinity extrapolation and the
    fixed-W rate at the larger size."""
    small, big = sorted(g.N.unique())
    pick = lambda w, n: g[(g.weights == w) & (g.N == n)].set_index("seed").rate
    annealed, annealed_small = pick("redrawn", big), pick("redrawn", small)
    return {"small": small, "big": big, "annealed": annealed, "annealed_small": annealed_small,
            "extrapolated": 2 * annealed - annealed_small, "quenched": pick("fixed", big)}


def rows(measured: pd.DataFrame) -> list[dict]:
    out = []
    for (mu, sw), g in measured.groupby(["mu_b", "sigma_w"]):
        r = series(g)
        inf, n, small = r["extrapolated"], r["big"], r["small"]
        name = f"mu_b = {mu:g}, sigma_w = {sw:g}"
        out.append(row(FIGURE, f"{name}: weights redrawn every step, N -> infinity, vs mean "
                       "field", mean_field(sw, mu), float(inf.mean()), 3 * stderr(inf),
                       kind="theory", seeds=len(inf), spread=float(inf.std(ddof=1)),
                       basis=f"mean field's own network (weights redrawn every step), "
                       f"2 r(N={n}) - r(N={small}) per seed (a 1/N finite-size term, measured: "
                       "module docstring); 3 standard errors of the seed mean"))
        finite = r["annealed_small"] - r["annealed"]
        out.append(row(FIGURE, f"{name}: finite-N term of the redrawn rate at N = {n}", 0.0,
                       float(finite.mean()), math.nan, kind="finding", seeds=len(finite),
                       spread=float(finite.std(ddof=1)),
                       basis=f"r(N={small}) - r(N={n}) = r(N={n}) - r(inf) under the 1/N law; "
                       f"redrawn r(N={n}) {r['annealed'].mean():+.4f}, standard error "
                       f"{stderr(finite):.4f}"))
        gap = (r["quenched"] - r["annealed"]).dropna()
        out.append(row(FIGURE, f"{name}: one fixed W minus redrawn at N = {n} (quenched - "
                       "annealed gap)", 0.0, float(gap.mean()), math.nan, kind="finding",
                       seeds=len(gap), spread=float(gap.std(ddof=1)),
                       basis=f"per-seed difference on the same seeds; fixed W "
                       f"{r['quenched'].mean():+.4f}, redrawn {r['annealed'].mean():+.4f}; "
                       f"standard error {stderr(gap):.4f}"))
    return out


def draw(measured: pd.DataFrame, out_dir: Path) -> None:
    measured.to_csv(out_dir / "minimalrnn.csv", index=False)
    fig, ax = plt.subplots(figsize=(7.5, 4.8), constrained_layout=True)
    s = np.linspace(0.3, 8.5, 120)
    for mu, color in zip(MU_B, ("C0", "C3")):
        ax.plot(s, [mean_field(v, mu) for v in s], "-", color=color, lw=1.2,
                label=f"mean field 1/2 ln chi, mu_b = {mu:g}")
        per = {sw: series(g) for sw, g in measured[measured.mu_b == mu].groupby("sigma_w")}
        x = np.array(list(per))
        for key, fmt, fill, text in (
                ("extrapolated", "o", color, "redrawn, N -> inf"),
                ("annealed", "^", "none", "redrawn, N = {n}"),
                ("quenched", "s", "none", "one fixed W, N = {n}")):
            vals = [per[v][key] for v in x]
            n = per[x[0]]["big"]
            ax.errorbar(x, [v.mean() for v in vals], yerr=[v.std(ddof=1) for v in vals],
                        fmt=fmt, mfc=fill, color=color, ms=5, capsize=2,
                        label=f"{text.format(n=n)}, mu_b = {mu:g}")
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set(xlabel="sigma_w (recurrent gate weights W_ij ~ N(0, sigma_w^2 / N))",
           ylabel="decay rate of ||dL_t/dh_k|| (nats per step)",
           title=f"minimalRNN, {SEEDS} seeds (mean +- std): mean field is the N -> inf limit of\n"
           "weights redrawn every step (filled); one fixed W (squares) is a finding")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, ncols=2)
    fig.savefig(out_dir / "minimalrnn.png", dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
