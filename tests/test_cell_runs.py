"""Gated runs end to end: ``python experiments/decay.py model.cell=lstm|gru`` writes the usual
files, and its tensors.npz loads straight into torch.nn.LSTM / GRU.

The check: the loaded module and a torch.nn.Linear head, run by plain autograd on the saved x
from the saved h0 (and c0), give the same log10 ||dL_t/dh_t|| as the diagonal of the saved
log10_grad (1e-10), and lags.parquet of an LSTM run has the c columns.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def decay(tmp_path, *overrides):
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "decay.py"),
                          f"hydra.run.dir={tmp_path}", "measure.progress=false", *overrides],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.parametrize("cell,init", [("lstm", "pytorch"), ("gru", "chrono")])
def test_gated_run_files_load_into_torch_modules(tmp_path, cell, init):
    decay(tmp_path, f"model.cell={cell}", f"model.init={init}", "model.hidden_size=12",
          "data.seq_len=20", "data.batch_size=3", "data.h0_std=0.5", "data.burn_in=3",
          "model.loss=xent", "measure.save_tensors=true")
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["status"] == "completed" and run["params"]["model.cell"] == cell
    assert math.isfinite(run["decay_rate"]) and run["theory"]["keep_gate_rate"] < 0
    lags = pd.read_parquet(tmp_path / "lags.parquet")
    assert ("log10_grad_c_mean" in lags) == (cell == "lstm")
    z = np.load(tmp_path / "tensors.npz")
    N, D = 12, z["x"].shape[-1]
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](D, N, batch_first=True).double()
    module.load_state_dict({f"{k}_l0": torch.from_numpy(z[k]) for k in
                            ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
    head = torch.nn.Linear(N, z["V"].shape[0]).double()
    head.load_state_dict({"weight": torch.from_numpy(z["V"]), "bias": torch.from_numpy(z["c"])})
    h0 = torch.from_numpy(z["h0"])[None]
    state = (h0, torch.from_numpy(z["c0"])[None]) if cell == "lstm" else h0
    out, _ = module(torch.from_numpy(z["x"]), state)
    out = out.detach().requires_grad_()
    logits = head(out)
    y = torch.from_numpy(z["y_target"])
    L = -(y * torch.log_softmax(logits, -1)).sum()
    (g,) = torch.autograd.grad(L, out)
    log10_g = torch.log10(torch.linalg.vector_norm(g, dim=-1)).mean(0).numpy()
    assert np.abs(np.diag(z["log10_grad"]) - log10_g).max() < 1e-10
