"""Adam's effective learning rate, the loss Hessian and the teacher-student task
(rnnlab.train.adam_lr, rnnlab.train.hessian, rnnlab.train.teacher, experiments/curse.py).

* ``unit_gradient_update`` equals a hand computation of Adam's moments and bias corrections
  after three steps with known gradients, and the step torch.optim.Adam really takes when the
  next gradient is 1 everywhere (a copy of the optimizer stepped once); ``step_size`` equals
  lr / (sqrt(v / (1 - b2^t)) + eps) by hand; ``statistic`` equals
  10^mean(log10(max(-u, 0) + 1e-8)) on known numbers; AdamW and amsgrad are refused.
* ``loss_hessian`` (torch.func.hessian on the flattened parameters) equals jacrev of the
  gradient and central finite differences of the autograd gradient on tiny dense and diagonal
  students; ``participation_ratio`` is 1 on a coordinate axis, k on a vector spread evenly over
  k coordinates, and scale-free.
* Every student's FFT forward (the impulse response convolved with the input) equals its
  step-by-step recurrence, outputs and gradients, to 1e-10; a student placed at the teacher's
  solution has loss 0 to rounding; the teachers' eigenvalue magnitudes lie in their ranges.
* experiments/curse.py refuses bad input in one line (exit 2, nothing written), and a tiny run
  writes its tables, figures and rows.
"""
import copy
import math

import pytest
import torch

from experiments import curse
from rnnlab.checks import ConfigError
from rnnlab.train import adam_lr
from rnnlab.train import hessian as hs
from rnnlab.train import teacher as ts


def adam_after(grads, lr=1e-2, betas=(0.9, 0.999), eps=1e-8):
    p = torch.nn.Parameter(torch.zeros(len(grads[0]), dtype=torch.float64))
    opt = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return p, opt


def test_unit_gradient_update_by_hand_and_by_stepping():
    grads = [[1.0, -2.0, 0.5], [3.0, -1.0, 0.0], [-0.5, -4.0, 1e-3]]
    lr, (b1, b2), eps = 1e-2, (0.9, 0.999), 1e-8
    p, opt = adam_after(grads, lr, (b1, b2), eps)
    m = [0.0] * 3
    v = [0.0] * 3
    for g in grads:
        m = [b1 * a + (1 - b1) * x for a, x in zip(m, g)]
        v = [b2 * a + (1 - b2) * x * x for a, x in zip(v, g)]
    t = len(grads) + 1
    by_hand = [-lr * ((b1 * a + 1 - b1) / (1 - b1 ** t)) /
               (math.sqrt((b2 * w + 1 - b2) / (1 - b2 ** t)) + eps) for a, w in zip(m, v)]
    u = adam_lr.unit_gradient_update(opt)[p]
    assert torch.allclose(u, torch.tensor(by_hand, dtype=torch.float64), rtol=1e-12, atol=0)
    # the same number is the step Adam takes when the next gradient is 1 everywhere
    q, twin = copy.deepcopy((p, opt))
    before = q.detach().clone()
    q.grad = torch.ones_like(q)
    twin.step()
    assert torch.allclose(q.detach() - before, u, rtol=1e-10, atol=1e-15)
    assert int(opt.state[p]["step"]) == len(grads)  # reading it changed nothing
    scale = [lr / (math.sqrt(w / (1 - b2 ** len(grads))) + eps) for w in v]
    assert torch.allclose(adam_lr.step_size(opt)[p], torch.tensor(scale, dtype=torch.float64),
                          rtol=1e-12)


def test_statistic_and_refusals():
    # the positive entry counts as 0 (plus the 1e-8 floor)
    u = torch.tensor([-1e-3, -1e-5, 2.0], dtype=torch.float64)
    expected = 10 ** ((math.log10(1e-3 + 1e-8) + math.log10(1e-5 + 1e-8) + math.log10(1e-8)) / 3)
    assert adam_lr.statistic(u) == pytest.approx(expected, rel=1e-12)
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ConfigError, match="AdamW"):
        adam_lr.unit_gradient_update(torch.optim.AdamW([p]))
    with pytest.raises(ConfigError, match="amsgrad"):
        adam_lr.step_size(torch.optim.Adam([p], amsgrad=True))


def tiny_data(teacher, T=12, batch=3):
    return teacher.sample(batch, T, torch.Generator().manual_seed(5))


@pytest.mark.parametrize("make", [
    lambda: ts.DenseStudent(2, seed=1),
    lambda: ts.DiagonalStudent(2, seed=1, parametrisation="cartesian"),
    lambda: ts.DiagonalStudent(2, seed=1, parametrisation="exp", gamma=True)])
def test_hessian_against_jacrev_and_finite_differences(make):
    net = make()
    x, y = tiny_data(ts.Teacher.draw(3, 0.5, seed=2))
    H, layout = hs.loss_hessian(net, ts.loss, x, y)
    p, _ = hs.flat_parameters(net)

    def f(flat):
        return ts.loss(torch.func.functional_call(net, hs.unflatten(flat, layout), (x,)), y)

    J = torch.func.jacrev(torch.func.grad(f))(p)
    assert torch.allclose(H, J, rtol=1e-10, atol=float(1e-10 * J.abs().max()))
    h = 1e-5
    grad = torch.func.grad(f)
    fd = torch.stack([(grad(p + h * e) - grad(p - h * e)) / (2 * h)
                      for e in torch.eye(p.numel(), dtype=torch.float64)], 1)
    assert torch.allclose(H, fd, rtol=1e-5, atol=float(1e-6 * H.abs().max()))
    w, V = hs.spectrum(H)
    assert (w[:-1] >= w[1:]).all()
    assert torch.allclose(H @ V[:, 0], w[0] * V[:, 0], atol=float(1e-8 * w.abs().max()))


def test_participation_ratio_on_known_vectors():
    V = torch.zeros(6, 3, dtype=torch.float64)
    V[2, 0] = 1.0
    V[:4, 1] = 0.5
    V[:, 2] = 7.0  # spread evenly over all 6, any scale
    assert torch.allclose(hs.participation_ratio(V),
                          torch.tensor([1.0, 4.0, 6.0], dtype=torch.float64))


@pytest.mark.parametrize("name", list(curse.STUDENTS))
def test_fft_forward_is_the_recurrence(name):
    cls, kw = curse.STUDENTS[name]
    net = cls(5, seed=3, **kw)
    x, y = tiny_data(ts.Teacher.draw(4, 0.9, seed=1), T=40)
    fast, slow = net(x), net.recurrence(x)
    assert torch.allclose(fast, slow, atol=float(1e-10 * slow.detach().abs().max()))
    g_fast = torch.autograd.grad(ts.loss(fast, y), list(net.parameters()))
    g_slow = torch.autograd.grad(ts.loss(net.recurrence(x), y), list(net.parameters()))
    for a, b in zip(g_fast, g_slow):
        assert torch.allclose(a, b, rtol=1e-9, atol=float(1e-10 * b.abs().max()))


def test_students_at_the_teachers_solution_and_the_teachers_spectra():
    t = ts.Teacher.conjugate_pairs(seed=4)
    mags = t.eigenvalues().abs()
    assert ((mags >= 0.99) & (mags < 0.993)).all()
    x, y = t.sample(4, 300, torch.Generator().manual_seed(0))
    for net in (ts.DenseStudent.from_teacher(t), ts.DiagonalStudent.from_teacher(t),
                ts.DiagonalStudent.from_teacher(t, "polar"),
                ts.DiagonalStudent.from_teacher(t, "exp", gamma=True)):
        with torch.no_grad():
            assert ts.loss(net(x), y) < 1e-18 * ts.loss(torch.zeros_like(y), y)
    big = ts.Teacher.draw(10, 0.99, seed=0).eigenvalues().abs()
    assert ((big >= 0.99) & (big < 1.0)).all()


@pytest.mark.parametrize("argv, says", [
    (["--seeds", "0"], "--seeds 0"), (["--seeds", "1"], "at least 2"),
    (["--steps", "-3"], "--steps -3"), (["--redraw", "--quick"], "--redraw"),
    (["--every", "0"], "--every 0")])
def test_cli_refuses_in_one_line(tmp_path, capsys, argv, says):
    out = tmp_path / "out"
    assert curse.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert not out.exists()


def test_cli_refuses_a_file_as_out_and_a_redraw_without_tables(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert curse.main(["--out", str(f)]) == 2
    assert curse.main(["--redraw", "--out", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a folder" in err[0] and "missing" in err[1]


def test_tiny_run_writes_tables_figures_and_rows(tmp_path):
    status = curse.main(["--seeds", "2", "--steps", "20", "--every", "10", "--out",
                         str(tmp_path)])
    assert status in (0, 1)  # 20 steps: the rows need not hold
    for name in curse.TABLES + ("rows.csv", "run.json", "hessian.png", "adam_hessian.png",
                                "effective_lr_entries.png"):
        assert (tmp_path / name).is_file(), name
    import pandas as pd
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert rows.quantity.is_unique and set(rows.kind) == {"finding", "sign"}
    assert curse.main(["--redraw", "--out", str(tmp_path)]) == 0
