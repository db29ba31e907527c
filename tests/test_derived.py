"""Derived step Jacobians (``measure.jacobians=derived``, ``rnnlab.engine.derived``) against the
hand-written ones, in float64:

- J_k = ds_k/ds_{k-1} materialised by torch.func from each registered cell's step equals the
  hand-written map applied to the identity, to 1e-12 (every cell, every activation of Elman,
  GRU and LSTM with rnnlab's and PyTorch's inits, the LRU's ring);
- what the engine measures on them (every pair's ln ||dL_t/ds_k||, the LSTM's c part, the
  Lyapunov spectrum by QR, the Jacobian-product norms) equals the hand-written path to 1e-12,
  with burn-in; the maps through step's pull-back equal the materialised J_k (1e-12), whatever
  the chunk the memory budget allows;
- stacked torch modules (2-layer GRU and LSTM, whose derived step is the whole stack's) and
  the LSTM's h-only convention agree with the hand-written stack maps to 1e-12;
- the weight gradient by lag (1e-10 in log10 norms and shares) and the dense sensitivity of
  each gate block (1e-12 relative) from derived weight derivatives;
- a measurement run with measure.jacobians=derived writes the numbers of measure.jacobians=cell
  (1e-12), and a bad value is refused in one line.
"""
import math

import pytest
import torch
from torch import nn

from rnnlab.checks import ConfigError
from rnnlab.engine import adjoint, cells, derived
from rnnlab.engine.cells import lstm
from rnnlab.engine.lyapunov import lyapunov_from_maps, random_frame
from rnnlab.engine.sensitivity import sensitivity
from rnnlab.engine.torch_modules import module_trajectory
from rnnlab.engine.weightgrad import weight_grad_by_lag
from rnnlab.measure.config import DataSpec, MeasureSpec, ModelSpec, RunSpec
from rnnlab.measure.networks import draw
from rnnlab.measure.run import measure

TOL = 1e-12

CASES = [dict(cell="elman", activation=a) for a in ("tanh", "relu", "sigmoid", "linear")] + [
    dict(cell="elman", activation="tanh", init="orthogonal", spectral_radius=1.5),
    dict(cell="gru"), dict(cell="gru", init="pytorch", gate_bias=1.0),
    dict(cell="lstm"), dict(cell="lstm", init="chrono"),
    dict(cell="minimal"), dict(cell="lru"),
]


def network(case, T=9, B=3, burn_in=2, seed=1):
    kw = dict(hidden_size=5, input_size=3, output_size=4, **case)
    if case["cell"] == "lru":
        kw.update(activation="linear", init="ring", r_min=0.5, r_max=0.95, max_phase=3.0,
                  normalize=True)
    return draw(ModelSpec(**kw), DataSpec(seq_len=T, batch_size=B, burn_in=burn_in), seed)


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| where finite; equal infinities (a dead relu unit's exponent) agree."""
    same = torch.isfinite(a) == torch.isfinite(b)
    inf_equal = ~torch.isfinite(a) & (a == b) | torch.isnan(a) & torch.isnan(b)
    assert bool(same.all()) and bool((torch.isfinite(a) | inf_equal).all())
    m = torch.isfinite(a)
    return (a[m] - b[m]).abs().max().item() if m.any() else 0.0


def hand_jacobian(maps, k: int, S: int, B: int) -> torch.Tensor:
    """J_k (B, S, S) from a hand-written map: J_k^T applied to every unit cotangent."""
    E = torch.eye(S, dtype=torch.float64)[:, None, :].expand(S, B, S).clone()
    maps.vjp_(k, E)  # E[i, b] = e_i^T J_k
    return E.transpose(0, 1)


def both(case, **kw):
    net = network(case, **kw)
    cell = cells.get(case["cell"])
    burn_in = kw.get("burn_in", 2)
    hand = cell.forward(net.params, net.x, net.h0, burn_in)
    auto = cell.forward(net.params, net.x, net.h0, burn_in, jacobians="derived")
    return net, hand, auto


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_step_jacobians_equal_the_hand_written_ones(case):
    net, hand, auto = both(case)
    layer = auto.maps.layers[0]
    B, S = net.x.shape[0], hand.maps.state_size
    assert auto.maps.state_size == S
    for k in range(net.y_target.shape[1]):
        J = layer.jacobian(k)
        assert (J - hand_jacobian(hand.maps, k, S, B)).abs().max().item() < TOL
        # the maps through step's pull-back and push-forward are the same matrices
        assert (J - hand_jacobian(auto.maps, k, S, B)).abs().max().item() < TOL
        Q = torch.randn(B, S, 2, dtype=torch.float64)
        assert (auto.maps.jvp(k, Q) - J @ Q).abs().max().item() < TOL


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_measurement_on_derived_maps(case):
    net, hand, auto = both(case, T=12)
    tr = {n: adjoint.trajectory(r, net.params, net.y_target, "xent")
          for n, r in (("hand", hand), ("auto", auto))}
    for part in [None, *hand.maps.parts]:
        a = adjoint.log_grad_norms(tr["hand"], part=part)
        b = adjoint.log_grad_norms(tr["auto"], part=part)
        m = torch.isfinite(a)
        assert torch.equal(m, torch.isfinite(b))
        assert (a[m] - b[m]).abs().max().item() < TOL
    T, B, S = tr["hand"].shape
    Q0 = random_frame(S, 3, (B,), generator=torch.Generator().manual_seed(0))
    lam = [lyapunov_from_maps(t.maps, T, 3, Q0=Q0) for t in tr.values()]
    assert gap(*lam) < TOL
    norms = [adjoint.jacobian_norms(t, 6)["ln_spec"] for t in tr.values()]
    assert gap(*norms) < 1e-10


def test_chunks_of_any_size_give_the_same_jacobians():
    case = dict(cell="lstm")
    net = network(case, T=7)
    cell = cells.get("lstm")
    full = derived.record_cell(cell, net.params, net.x, net.h0, 2)
    tiny = derived.record_cell(cell, net.params, net.x, net.h0, 2, budget=1)
    assert tiny.maps.layers[0].chunk == 1 and full.maps.layers[0].chunk == 7
    for k in (6, 0, 3):
        J, J1 = full.maps.layers[0].jacobian(k), tiny.maps.layers[0].jacobian(k)
        assert (J - J1).abs().max().item() < TOL


def test_h_only_convention_on_derived_maps():
    net, hand, auto = both(dict(cell="lstm"), T=10)
    ho = [lstm.h_only(r) for r in (hand, auto)]
    tr = [adjoint.trajectory(r, net.params, net.y_target, "mse") for r in ho]
    a, b = (adjoint.log_grad_norms(t) for t in tr)
    m = torch.isfinite(a)
    assert (a[m] - b[m]).abs().max().item() < TOL


@pytest.mark.parametrize("kind", [nn.GRU, nn.LSTM, nn.RNN])
def test_stacked_torch_modules(kind):
    torch.manual_seed(3)
    rnn = kind(3, 6, num_layers=2, batch_first=True).double()
    head = nn.Linear(6, 4).double()
    x = torch.randn(2, 11, 3, dtype=torch.float64)
    y = torch.randint(4, (2, 11))
    tr = [module_trajectory(rnn, x, y, head, jacobians=j) for j in ("cell", "derived")]
    assert tr[0].maps.state_size == tr[1].maps.state_size
    assert tr[0].maps.parts.keys() == tr[1].maps.parts.keys()
    for part in [None, *tr[0].maps.parts]:
        a, b = (adjoint.log_grad_norms(t, part=part) for t in tr)
        m = torch.isfinite(a)
        assert (a[m] - b[m]).abs().max().item() < TOL


def run_spec(jacobians, cell="gru"):
    return RunSpec(seed=4, model=ModelSpec(cell=cell, hidden_size=6, input_size=3,
                                           output_size=3),
                   data=DataSpec(seq_len=15, batch_size=2, burn_in=3),
                   measure=MeasureSpec(jacobians=jacobians, lyapunov=True, progress=False))


@pytest.mark.parametrize("cell", ["gru", "elman"])
def test_a_run_with_derived_jacobians_writes_the_same_numbers(cell):
    a, b = measure(run_spec("cell", cell)), measure(run_spec("derived", cell))
    for key, col in a.lags.items():
        assert abs(col - b.lags[key]).max() < TOL, key
    assert math.isclose(a.fit["decay_rate"], b.fit["decay_rate"], abs_tol=TOL)
    assert math.isclose(a.theory["lyapunov_1"], b.theory["lyapunov_1"], abs_tol=TOL)


def test_a_bad_jacobians_value_is_one_line():
    with pytest.raises(ConfigError, match="measure.jacobians='hand'.*'cell', 'derived'"):
        run_spec("hand").validate()
    spec = RunSpec(measure=MeasureSpec(jacobians="derived", weights="redrawn"))
    with pytest.raises(ConfigError, match="^measure.jacobians='derived' with measure.weights="
                                          "'redrawn': .*use measure.jacobians=cell$"):
        spec.validate()


WEIGHTED = [c for c in CASES if c["cell"] != "lru"]


@pytest.mark.parametrize("case", WEIGHTED, ids=lambda c: "-".join(map(str, c.values())))
def test_weight_gradient_by_lag_on_derived_maps(case):
    net, hand, auto = both(case, T=10)
    out = []
    for r in (hand, auto):
        traj = adjoint.trajectory(r, net.params, net.y_target, "xent")
        out.append(weight_grad_by_lag(traj))
    for key in ("log10_norm", "share_ge", "projection_share_ge", "log10_total_norm"):
        a, b = (torch.as_tensor(o[key]) for o in out)
        assert gap(a, b) < 1e-10, key


@pytest.mark.parametrize("case", [dict(cell="elman", activation="tanh"), dict(cell="gru"),
                                  dict(cell="lstm"), dict(cell="minimal")],
                         ids=lambda c: c["cell"])
def test_sensitivity_on_derived_maps(case):
    net = network(case, T=8, B=2, burn_in=3)
    a, b = (sensitivity(net.params, net.x, net.h0, 3, jacobians=j) for j in ("cell", "derived"))
    assert [r["parameter"] for r in a] == [r["parameter"] for r in b]
    for ra, rb in zip(a, b):
        assert math.isclose(ra["mean_sq_derivative"], rb["mean_sq_derivative"], rel_tol=1e-12)
        assert math.isclose(ra["mean_sq_state"], rb["mean_sq_state"], rel_tol=1e-12)


def test_a_cell_without_hand_written_maps_falls_back_and_says_so_once():
    from dataclasses import replace as dc_replace
    from functools import partial

    minimal = cells.get("minimal")
    params = partial(minimal.params, cell="minimal_auto")
    cells.register(dc_replace(minimal, name="minimal_auto", params=params, layer_forward=None,
                              layer_weights=None, record=None))
    try:
        def spec(cell):
            return RunSpec(seed=2, model=ModelSpec(cell=cell, hidden_size=5, input_size=3,
                                                   output_size=3),
                           data=DataSpec(seq_len=12, batch_size=2),
                           measure=MeasureSpec(progress=False))
        with pytest.warns(UserWarning, match="model.cell='minimal_auto' has no hand-written "
                                             "step Jacobians; they are derived") as said:
            auto = measure(spec("minimal_auto"))
            measure(spec("minimal_auto"))
        assert len([w for w in said if "minimal_auto" in str(w.message)]) == 1
        hand = measure(spec("minimal"))
        assert abs(auto.lags["log10_grad_mean"] - hand.lags["log10_grad_mean"]).max() < TOL
    finally:
        del cells.CELLS["minimal_auto"]


@pytest.mark.parametrize("case", [dict(cell="elman", activation="tanh"), dict(cell="gru"),
                                  dict(cell="lstm"), dict(cell="lru")],
                         ids=lambda c: c["cell"])
def test_pull_back_and_materialised_maps_agree(case):
    """A state too large for the budget goes through step's own pull-back and push-forward;
    a small one through materialised J_k: the two give the same measurement (1e-12)."""
    net = network(case, T=10)
    cell = cells.get(case["cell"])
    small = derived.record_cell(cell, net.params, net.x, net.h0, 2)
    pulled = derived.record_cell(cell, net.params, net.x, net.h0, 2, budget=1)
    assert small.maps.layers[0].materialised and not pulled.maps.layers[0].materialised
    tr = [adjoint.trajectory(r, net.params, net.y_target, "xent") for r in (small, pulled)]
    for part in [None, *tr[0].maps.parts]:
        assert gap(*(adjoint.log_grad_norms(t, part=part) for t in tr)) < TOL
    T, B, S = tr[0].shape
    Q0 = random_frame(S, 3, (B,), generator=torch.Generator().manual_seed(1))
    assert gap(*(lyapunov_from_maps(t.maps, T, 3, Q0=Q0) for t in tr)) < TOL
