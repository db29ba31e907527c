"""modern: what came after the vanishing gradient. The long-lag rate of ||dh_t/dh_k|| of the
recurrences whose gates see the input only (RG-LRU, minGRU, minLSTM, sLSTM's forget path, Mamba's
selective scan S6), at
their published initialisations, against closed forms from those initialisations; the exact rows
that make them what they are; and the gradient through the inputs of causal attention, flat in
the lag, beside a recurrence's.

Sources: De et al. 2024 (RG-LRU, arXiv:2402.19427), Feng et al. 2024 (minGRU, minLSTM,
arXiv:2410.01201), Beck et al. 2024 (sLSTM, arXiv:2405.04517), Gu & Dao 2023 (Mamba,
arXiv:2312.00752), Vaswani et al. 2017 (attention);
docs/cells.md ("modern recurrences") and docs/input-sensitivity.md.

EXPECTED. Every diagonal cell has dh_t/dh_{t-1} = diag(a_t) with 0 < a_t < 1 (sLSTM: the
(c e^m, n e^m) block, diag s(f~_t), with R = 0), so ||dh_t/dh_k||_2 = max_i prod_{s=k+1..t} a_{i,s}
and its long-lag rate is the slowest unit's mean log factor max_i E[ln a_i] (nats per step), a
closed form in each network's weights at white input x_t ~ N(0, input_std^2 I): the gate
pre-activation of unit i is Gaussian, so E[ln a_i] is a one-dimensional Gauss-Hermite quadrature
(``rnnlab.theory``: ``rglru_log_keep`` from a_0 and the gate; ``mingru_log_keep``,
``minlstm_log_keep`` from the gates' pre-activations; sLSTM's ln s(f~) from its forget bias and
weights; ``mamba_log_keep``, A E[softplus] from dt's bias and weights and A; each cell's
``theory`` hook gives ``diag_rate``).

1. Theory rows, one per cell: over 20 networks (N = 16, D = 8, input_std = 1.5, B = 8,
   T = 1000, the shape of the cells' tests, where the estimator's bias was measured; Mamba: N = 8
   channels, d_state = 4, input_std = 4, as its test) the mean of
   (measured - closed form) is 0 within t_19 = 3.45 standard errors (from the networks' spread).
   The measured rate is the least-squares slope of the batch mean of ln ||dh_{T-1}/dh_{T-1-l}||_2
   over T/2 <= l <= T, with the norm max_i sum ln a_{i,s} from the recorded factors (row 2 makes
   that the engine's number). A max over units of noisy sums may be biased; simulated for the
   RG-LRU at this shape: -1.0e-5 +- 0.7e-5 nats/step, a fifth of the standard error
   (tests/test_modern_rglru.py).
2. Exact rows: ||dh_{T-1}/dh_{T-1-l}||_2 from the engine's Jacobian products
   (``adjoint.jacobian_norms``) equals max_i prod a_{i,s} from the recorded factors, every lag to
   50, max |difference| in ln < 1e-12 (float64); sLSTM with R = 0: every entry of ds_k/dh_{k-1}
   (derived by torch.func from its step) is exactly 0.0; causal attention with W_Q = 0:
   log10 ||dy_t/dx_k|| = log10 (||W_V||_F / (t + 1)) for every k <= t within 1e-12; the
   diagonal fast path (``rnnlab.engine.diagonal``: prefix sums of ln|a| and blocked products)
   equals the dense sweep (``adjoint``) in every ln ||dL_t/dh_k|| / ||dL_t/dh_t|| to 1e-12
   (relative where |value| > 1 nat; float64), for each diagonal cell and the LRU.
3. The picture: a recurrence's ||dy_t/dx_k|| (a one-layer cell with a linear readout, measured
   by ``rnnlab.input_sensitivity``) decays as exp(rate (t - k)); attention's is flat.
4. Findings, never judged: the depth x time map of 8-layer stacks at init (``model.layers=8``;
   N = D = 16, input_std = 1, T = 30, 4 sequences, 5 networks; Mamba with d_state = 4), plain,
   with rmsnorm, with the residual, and with both (``rnnlab.engine.stacks``, pre-norm): log10
   ||do^l_t/dx_k|| of each layer's output o^l. Two numbers per stack, mean over networks with
   its standard error: how much the gradient through the inputs falls by DEPTH (layer 8 minus
   layer 1 at lag 0, decades) and by LAG (lag 20 minus lag 0 at layer 8, decades).

Quick mode: 5 networks at T = 300 (the theory rows are then a smoke test). Run alone:
``python experiments/figures/modern.py [--quick]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from experiments.figures.common import drawn, is_quick, row, standalone, stderr, t_multiple
from experiments.figures.plots import modern as plot
from rnnlab.engine import adjoint, cells, diagonal, stacks
from rnnlab.engine.attention import CausalSelfAttention
from rnnlab.engine.input_sensitivity import input_sensitivity
from rnnlab.train import sequence

FIGURE = plot.FIGURE
# the cells measured and each one's published nonlinearity and init (its conf/model YAML)
PRESETS = {"rglru": dict(activation="linear", init="ring"),
           "mingru": dict(activation="linear", init="pytorch"),
           "minlstm": dict(activation="linear", init="pytorch"),
           "slstm": dict(activation="tanh", init="xlstm"),
           # the shape of its test (tests/test_modern_mamba.py): with dt in [0.001, 0.1] the
           # slowest entry (A = -1) leads ||dh_t/dh_k|| only at long lags
           "mamba": dict(activation="linear", init="mamba", hidden_size=8, d_state=4,
                         input_std=4.0)}
SHAPE = dict(hidden_size=16, input_size=8, output_size=2, batch_size=8, input_std=1.5,
             burn_in=0)
NETWORKS = {"full": 20, "quick": 5}
LENGTH = {"full": 1000, "quick": 300}
EXACT_LAGS = 50
EXACT_TOL = 1e-12
CURVE_LAGS = 60  # lags of the input-sensitivity panel
INPUT_SHAPE = dict(B=4, D=8, N=16, C=4)
# the depth x time map: 8-layer stacks of every cell (and the GRU, the classic gated cell)
DEPTH_CELLS = {**{c: {k: v for k, v in p.items() if k in ("activation", "init")}
                  for c, p in PRESETS.items()},
               "gru": dict(activation="tanh", init="pytorch")}
DEPTH_CELLS["mamba"]["d_state"] = 4
VARIANTS = {"plain": dict(norm="none", residual=False),
            "rmsnorm": dict(norm="rmsnorm", residual=False),
            "residual": dict(norm="none", residual=True),
            "rmsnorm + residual": dict(norm="rmsnorm", residual=True)}
DEPTH = dict(layers=8, hidden_size=16, input_size=16, output_size=4, seq_len=30, batch_size=4,
             burn_in=0, input_std=1.0)
DEPTH_NETWORKS = {"full": 5, "quick": 2}
DEPTH_LAG = 20


def factors(layer) -> torch.Tensor:
    """The recorded diagonal factors a (T, B, N) of a cell's step maps: dh_t/dh_{t-1} = diag(a_t)
    (sLSTM: its (c e^m, n e^m) block's s(f~_t))."""
    return layer.sf if hasattr(layer, "sf") else layer.a


def network(cell: str, seed: int, T: int):
    net, model, data = drawn(seed=seed, cell=cell, seq_len=T, **{**SHAPE, **PRESETS[cell]})
    rec = cells.get(cell).forward(net.params, net.x, net.h0)
    return net, model, data, rec


def spectral_log_norms(a: torch.Tensor) -> np.ndarray:
    """ln ||dh_{T-1}/dh_{T-1-l}||_2 = max_i sum_{s=T-l}^{T-1} ln a_{i,s}, l = 0..T, per sequence
    (T + 1, B)."""
    back = torch.cumsum(torch.log(a).flip(0), 0)  # [l - 1]: sum over the last l steps
    ln = back.max(-1).values
    return torch.cat([torch.zeros_like(ln[:1]), ln]).numpy()


def init_rates(mode: str) -> pd.DataFrame:
    """Per cell and network: the long-lag slope, the closed form, the curve's batch mean."""
    T, rows = LENGTH[mode], []
    lags = np.arange(T + 1)
    far = lags >= T // 2
    points = [(c, s) for c in PRESETS for s in range(NETWORKS[mode])]
    for cell, seed in tqdm(points, desc=f"{FIGURE}: init rates", mininterval=2.0):
        net, model, data, rec = network(cell, seed, T)
        ln = spectral_log_norms(factors(rec.maps.layers[0])).mean(1)
        theory = cells.get(cell).theory(net.params, model, data)
        rows.append(dict(cell=cell, seed=seed, T=T, slope=np.polyfit(lags[far], ln[far], 1)[0],
                         theory=theory["diag_rate"], curve=ln[::max(1, T // 100)]))
    return pd.DataFrame(rows)


def exact_diagonal(cell: str) -> float:
    """max |ln ||dh_{T-1}/dh_{T-1-l}||_2 (engine) - ln max_i prod a_{i,s} (factors)|, l <= 50."""
    net, _, _, rec = network(cell, seed=0, T=EXACT_LAGS + 10)
    traj = adjoint.trajectory(rec, net.params, net.y_target, "mse")
    engine = adjoint.jacobian_norms(traj, EXACT_LAGS)["ln_spec"].numpy()
    mine = spectral_log_norms(factors(rec.maps.layers[0]))[:EXACT_LAGS + 1]
    return float(np.abs(engine - mine).max())


FAST_CELLS = {**{c: p for c, p in PRESETS.items() if c != "slstm"},
              "lru": dict(activation="linear", init="ring", r_min=0.5, r_max=0.99,
                          max_phase=3.0)}


def fast_equals_dense(cell: str) -> float:
    """max over pairs k <= t of |fast - dense| / max(1, |dense|) for the ln ratio
    ||dL_t/dh_k|| / ||dL_t/dh_t|| (T = 200, 4 sequences); inf if they differ in which pairs
    are finite."""
    net, _, _ = drawn(seed=0, cell=cell, seq_len=200, **{**SHAPE, "batch_size": 4,
                                                         **FAST_CELLS[cell]})
    traj = adjoint.forward(net.params, net.x, net.h0, net.y_target)
    assert diagonal.applies(traj), cell
    fast = diagonal.log_grad_norms(traj, ratio=True)
    dense = adjoint.log_grad_norms(traj, ratio=True)
    if not torch.equal(torch.isfinite(fast), torch.isfinite(dense)):
        return float("inf")
    ok = torch.isfinite(dense)
    return ((fast[ok] - dense[ok]).abs() / dense[ok].abs().clamp(min=1)).max().item()


def slstm_zero_block() -> float:
    """max |entry| of ds_k/dh_{k-1} over every step, sLSTM with R = 0, from the Jacobians derived
    by torch.func from its step (independent of its hand-written maps)."""
    net, _, _, _ = network("slstm", seed=0, T=20)
    rec = cells.get("slstm").forward(net.params, net.x, net.h0, jacobians="derived")
    layer, N = rec.maps.layers[0], net.params.hidden_size
    return max(layer.jacobian(k)[:, :, :N].abs().max().item() for k in range(net.x.shape[1]))


def attention_flat(T: int) -> tuple[float, pd.DataFrame]:
    """Causal attention with W_Q = 0: max |log10 ||dy_t/dx_k|| - log10(||W_V||_F / (t + 1))| over
    k <= t, and its lag table."""
    s = INPUT_SHAPE
    g = torch.Generator().manual_seed(0)
    layer = CausalSelfAttention(s["D"], s["C"], generator=g)
    with torch.no_grad():
        layer.W_Q.zero_()
    x = torch.randn(s["B"], T, s["D"], dtype=torch.float64, generator=g)
    out = input_sensitivity(layer, x)
    t = np.arange(T)[:, None]
    expected = np.log10(torch.linalg.matrix_norm(layer.W_V).item() / (t + 1)) + 0 * t.T
    causal = np.tril(np.ones((T, T), dtype=bool))
    return float(np.abs(out.log10_grad - expected)[causal].max()), out.lags


class Readout(torch.nn.Module):
    """A trainable cell module with a linear readout, (B, T, D) -> (B, T, C): its steps from
    ``init_state`` and what its readout sees (``rnnlab.train.sequence``)."""

    def __init__(self, cell: str, s: dict):
        super().__init__()
        self.cell = cells.get(cell).module(s["D"], s["N"], {}, torch.float64)
        self.head = torch.nn.Linear(s["N"], s["C"], dtype=torch.float64)

    def forward(self, x):
        h = torch.stack([state[0] for state in sequence.unroll(self.cell, x)], 1)
        return self.head(sequence.readout_input(self.cell, h, x))


def input_curves(T: int) -> pd.DataFrame:
    """The lag tables of ||dy_t/dx_k|| of attention (W_Q drawn and W_Q = 0) and of each cell with
    a linear readout, at PyTorch's default head, one network each."""
    s, frames = INPUT_SHAPE, []
    x = torch.randn(s["B"], T, s["D"], dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    models = {"attention (W_Q drawn)": CausalSelfAttention(s["D"], s["C"])}
    models.update({cell: Readout(cell, s) for cell in PRESETS})
    for name, model in models.items():
        frames.append(input_sensitivity(model, x).lags.assign(model=name))
    return pd.concat(frames, ignore_index=True)


def depth_time(mode: str) -> pd.DataFrame:
    """Per cell, variant, network, layer and lag: the mean over pairs and sequences of
    log10 ||do^l_t/dx_k|| (``stacks.input_maps``)."""
    frames = []
    points = [(c, v, s) for c in DEPTH_CELLS for v in VARIANTS
              for s in range(DEPTH_NETWORKS[mode])]
    for cell, variant, seed in tqdm(points, desc=f"{FIGURE}: depth x time", mininterval=2.0):
        net, _, d = drawn(seed=seed, cell=cell, **DEPTH, **DEPTH_CELLS[cell], **VARIANTS[variant])
        maps = stacks.input_maps(net.params, net.x, net.h0, d.burn_in)
        for l, m in enumerate(maps.layers, 1):
            frames.append(m.lags[["lag", "log10_grad_mean"]].assign(
                cell=cell, variant=variant, seed=seed, layer=l))
    return pd.concat(frames, ignore_index=True)


def depth_falls(depth: pd.DataFrame) -> pd.DataFrame:
    """Per cell, variant and network: the fall by depth (layer L minus layer 1 at lag 0) and by
    lag (lag DEPTH_LAG minus lag 0 at layer L), decades."""
    L, rows = DEPTH["layers"], []
    for (cell, variant, seed), g in depth.groupby(["cell", "variant", "seed"], sort=False):
        at = g.set_index(["layer", "lag"])["log10_grad_mean"]
        rows.append(dict(cell=cell, variant=variant, seed=seed,
                         by_depth=at[(L, 0)] - at[(1, 0)],
                         by_lag=at[(L, DEPTH_LAG)] - at[(L, 0)]))
    return pd.DataFrame(rows)


def measure(mode: str) -> dict:
    is_quick(mode)
    flat, flat_lags = attention_flat(CURVE_LAGS)
    return {"rates": init_rates(mode), "depth": depth_time(mode),
            "exact": {**{f"diag:{c}": exact_diagonal(c) for c in PRESETS if c != "slstm"},
                      **{f"fast:{c}": fast_equals_dense(c) for c in FAST_CELLS},
                      "slstm_zero": slstm_zero_block(), "attention_flat": flat},
            "inputs": pd.concat([input_curves(CURVE_LAGS),
                                 flat_lags.assign(model="attention (W_Q = 0)")],
                                ignore_index=True)}


def quick_may_fail(r: dict) -> bool:
    """Five networks at T = 300: the theory rows are a smoke test there."""
    return r["kind"] == "theory"


def rows(measured: dict) -> list[dict]:
    out = []
    rates = measured["rates"]
    for cell, g in rates.groupby("cell", sort=False):
        d = (g.slope - g.theory).to_numpy()
        n, T = len(d), int(g["T"].iloc[0])
        out.append(row(FIGURE, f"{cell}: long-lag rate of ||dh_t/dh_k|| at init minus its closed "
                       "form max_i E[ln a_i] (nats/step)", 0.0, float(d.mean()),
                       t_multiple(n) * stderr(d), kind="theory", seeds=n, spread=d.std(ddof=1),
                       estimator=f"slope of the batch mean of ln ||dh_(T-1)/dh_(T-1-l)||_2 over "
                       f"{T // 2} <= l <= {T}, minus the network's closed form",
                       se="sd over networks / sqrt(n)",
                       basis=f"tolerance t_(n-1) = {t_multiple(n):.2f} SE; mean closed form "
                       f"{g.theory.mean():.5f}"))
    exact = measured["exact"]
    for key, value in exact.items():
        if key.startswith("diag:"):
            cell = key[5:]
            out.append(row(FIGURE, f"{cell}: ||dh_t/dh_k||_2 (engine) = max_i prod a_i,s, max "
                           f"|diff| in ln over lags <= {EXACT_LAGS}", 0.0, value, EXACT_TOL,
                           kind="exact", basis="float64 rounding over 50 steps"))
        if key.startswith("fast:"):
            out.append(row(FIGURE, f"{key[5:]}: diagonal fast path = dense sweep, max relative "
                           "|diff| of every ln ratio (T = 200)", 0.0, value, EXACT_TOL,
                           kind="exact", basis="float64 rounding of two summation orders"))
    out.append(row(FIGURE, "slstm, R = 0: max |entry| of ds_k/dh_(k-1) (derived by torch.func)",
                   0.0, exact["slstm_zero"], 0.0, kind="exact",
                   basis="h_t reads h_(t-1) only through R: exactly zero"))
    out.append(row(FIGURE, "attention, W_Q = 0: max |log10 ||dy_t/dx_k|| - log10(||W_V||_F / "
                   "(t + 1))| over k <= t", 0.0, exact["attention_flat"], EXACT_TOL,
                   kind="exact", basis="uniform weights 1/(t + 1): float64 rounding"))
    L = DEPTH["layers"]
    for (cell, variant), g in depth_falls(measured["depth"]).groupby(["cell", "variant"],
                                                                      sort=False):
        n = len(g)
        for key, what in (("by_depth", f"by depth: layer {L} minus layer 1 at lag 0"),
                          ("by_lag", f"by lag: lag {DEPTH_LAG} minus lag 0 at layer {L}")):
            v = g[key].to_numpy()
            out.append(row(FIGURE, f"{cell}, {L} layers, {variant}: log10 ||do^l_t/dx_k|| falls "
                           f"{what} (decades)", 0.0, float(v.mean()), float("nan"),
                           kind="finding", seeds=n,
                           spread=v.std(ddof=1) if n > 1 else None,
                           basis="a finding at init (N = D = 16, T = 30), not judged; "
                           f"mean over {n} networks"
                           + (f", SE {stderr(v):.3f}" if n > 1 else "")))
    return out


def tables(measured: dict) -> dict:
    """modern_rates.csv (per cell and network: slope, closed form), modern_curves.csv (the batch
    mean of ln ||dh_(T-1)/dh_(T-1-l)||_2 against l, mean over networks, and the closed-form line),
    modern_inputs.csv (lag tables of ||dy_t/dx_k||: attention and one-layer cells), modern_depth.csv
    (log10 ||do^l_t/dx_k|| per cell, variant, layer and lag, mean over networks) and
    modern_depth_falls.csv (per network: the falls by depth and by lag)."""
    rates = measured["rates"]
    curves = []
    for cell, g in rates.groupby("cell", sort=False):
        T = int(g["T"].iloc[0])
        stride = max(1, T // 100)
        lag = np.arange(0, T + 1, stride)
        curve = np.stack(g.curve.to_list())
        curves.append(pd.DataFrame({"cell": cell, "lag": lag, "ln_norm": curve.mean(0),
                                    "ln_norm_std": curve.std(0, ddof=1),
                                    "closed_form": g.theory.mean() * lag}))
    depth = measured["depth"]
    mean = depth.groupby(["cell", "variant", "layer", "lag"], sort=False)["log10_grad_mean"]
    return {"modern_rates.csv": rates.drop(columns="curve"),
            "modern_curves.csv": pd.concat(curves, ignore_index=True),
            "modern_inputs.csv": measured["inputs"],
            "modern_depth.csv": mean.mean().reset_index(),
            "modern_depth_falls.csv": depth_falls(depth)}


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
