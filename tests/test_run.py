"""One measurement through ``rnnlab.measure.run.measure``: its modes and optional outputs.

- profile mode (the O(T) last-loss sweep) gives the last row of the pairs triangle exactly
  (1e-10 in log10) and ln rho for a linear W = rho Q (1e-9);
- the summed-loss profile equals the norm of the BPTT cotangent (checked in test_gradients);
- jacobian.parquet's lag-l spectral norm is rho^l for W = rho Q (1e-12 in log10);
- the theory record: mean-field rate = ln rho for a linear W = rho Q (1e-12), sigma_w and s2 as
  defined; lambda_1 = ln rho for the linear case (1e-9).
"""
import math

import numpy as np

from rnnlab.measure.config import DataSpec, MeasureSpec, ModelSpec, RunSpec
from rnnlab.measure.run import measure


def spec(**measure_kw):
    return RunSpec(seed=3, model=ModelSpec(activation="linear", init="orthogonal",
                                           spectral_radius=0.8, hidden_size=20, input_gain=0.5),
                   data=DataSpec(seq_len=60, batch_size=3, input_std=2.0),
                   measure=MeasureSpec(progress=False, **measure_kw))


def test_profile_mode_is_the_last_row_of_the_triangle():
    pairs = measure(spec(save_tensors=True))
    prof = measure(spec(mode="profile", save_tensors=True))
    assert abs(prof.fit["decay_rate"] - math.log(0.8)) < 1e-9
    last_row = pairs.tensors["log10_grad"][-1]
    assert np.abs(prof.tensors["log10_grad"][-1] - last_row).max() < 1e-10
    assert (prof.lags["n_pairs"] == 1).all()
    assert np.isfinite(prof.lags["log10_sum_grad_mean"]).all()
    # T = 60: lag 59 is the last one of the last loss
    assert len(prof.lags["lag"]) == 60


def test_jacobian_table_and_theory_record():
    m = measure(spec(jacobian=True, lyapunov=True))
    lags = m.jacobian["lag"]
    assert lags[-1] == 60
    assert np.allclose(m.jacobian["log10_spec_mean"], lags * math.log10(0.8), atol=1e-12)
    assert np.allclose(m.jacobian["log10_frob_mean"],
                       lags * math.log10(0.8) + 0.5 * math.log10(20), atol=1e-12)
    t = m.theory
    assert abs(t["sigma_w"] - 0.8) < 1e-12 and abs(t["s2"] - 1.0) < 1e-12
    assert abs(t["mean_field_rate"] - math.log(0.8)) < 1e-12
    assert abs(t["log_rho"] - math.log(0.8)) < 1e-12
    assert abs(t["lyapunov_1"] - math.log(0.8)) < 1e-9
