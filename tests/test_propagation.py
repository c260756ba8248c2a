"""Label propagation over the code graph (models/propagation.py) and its use by the families."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ssavae.config import build_run_config
from ssavae.data.synthetic import make_synthetic
from ssavae.models import Batch
from ssavae.models.propagation import GraphLabels, certainty, class_balance, knn_graph, propagate
from ssavae.runs import build_model

from conftest import family_raw


def test_the_knn_graph_links_each_point_to_its_nearest_by_cosine_and_never_to_itself():
    angles = torch.tensor([0.0, 10.0, 90.0, 100.0]) * math.pi / 180
    f = torch.stack([angles.cos(), angles.sin()], 1) * torch.tensor([[1.0], [3.0], [0.5], [2.0]])  # norms differ
    for chunk in (1, 3, 1024):  # the graph is built in row chunks: any chunking gives the same
        w = knn_graph(f, k=1, power=3.0, chunk=chunk).toarray()
        s = math.cos(math.radians(10)) ** 3
        expected = np.array([[0, s, 0, 0], [s, 0, 0, 0], [0, 0, 0, s], [0, 0, s, 0]]) * 2  # S + S^T
        np.testing.assert_allclose(w, expected, rtol=1e-6)
    w = knn_graph(f, k=10).toarray()  # k larger than N - 1: every other point, none twice
    assert (np.diag(w) == 0).all() and np.allclose(w, w.T)


def test_propagation_solves_the_diffusion_on_a_chain_worked_by_hand():
    # chain 0 - 1 - 2, node 0 labeled 0, node 2 labeled 1, alpha 0.5: with a = alpha / sqrt(2),
    # (I - alpha W_n) z = e_0 gives z = (1 + a z1, a / (1 - 2 a^2), a z1) = (7/6, sqrt(2)/3, 1/6)
    w = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float))
    z = propagate(w, np.array([0, -1, 1]), 2, alpha=0.5, iters=50)
    r2 = math.sqrt(2)
    np.testing.assert_allclose(z, [[7 / 6, 1 / 6], [r2 / 3, r2 / 3], [1 / 6, 7 / 6]], atol=1e-6)
    # a class without labeled examples gets nothing; labels count 1 / |L_j| each
    z = propagate(w, np.array([0, 0, -1]), 3, alpha=0.5, iters=50)
    assert (z[:, 1:] == 0).all() and z[2, 0] > 0
    one = propagate(w, np.array([0, -1, -1]), 1, alpha=0.5, iters=50)
    np.testing.assert_allclose(z[:, 0], (one[:, 0] + propagate(w, np.array([-1, 0, -1]), 1, 0.5, 50)[:, 0]) / 2,
                               atol=1e-6)


def test_certainty_is_one_minus_normalized_entropy_and_the_class_balance_inverts_counts():
    p, hard, w = certainty(np.array([[7.0, 1.0], [1.0, 1.0], [0.0, 0.0], [2.0, -1.0]]))
    h = -(7 / 8 * math.log(7 / 8) + 1 / 8 * math.log(1 / 8))
    np.testing.assert_allclose(w, [1 - h / math.log(2), 0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(p[3], [1.0, 0.0])  # negative scores are clipped to 0
    assert list(hard[[0, 3]]) == [0, 0]
    np.testing.assert_allclose(class_balance(np.array([0, 0, 0, 1]), 3), [4 / 9, 4 / 3, 0.0])


def test_graph_labels_weigh_unlabeled_rows_only_and_the_loss_is_their_weighted_mean_ce():
    torch.manual_seed(0)
    f = torch.cat([torch.randn(10, 4) + 6 * torch.eye(4)[0], torch.randn(10, 4) + 6 * torch.eye(4)[1]])
    y = torch.full((20,), -1)
    y[0], y[10] = 0, 1
    g = GraphLabels(k=5, alpha=0.9)
    assert not g.ready
    g.refresh(f, y, 2)
    assert g.ready and g.weight[[0, 10]].eq(0).all() and (g.weight[y < 0] > 0).all()
    assert g.target[:10].eq(0).all() and g.target[10:].eq(1).all()  # two clear clusters
    logits, rows = torch.randn(6, 2), torch.tensor([0, 1, 2, 11, 12, 10])
    ce = F.cross_entropy(logits, g.target[rows], reduction="none")
    expected = (g.weight[rows] * ce).sum() / 4  # the 4 unlabeled rows
    assert torch.allclose(g.loss(logits, rows), expected)
    # the buffers travel in a state dict into a fresh (empty) instance
    fresh = GraphLabels()
    fresh.load_state_dict(g.state_dict())
    assert torch.equal(fresh.target, g.target) and torch.equal(fresh.weight, g.weight)


@pytest.mark.parametrize("family", ["ssavae", "m2", "aae_semi"])
def test_every_semi_supervised_family_learns_from_the_propagated_labels(family):
    cfg = build_run_config(family_raw(family, model={"graph_weight": 50.0, "graph_k": 5, "graph_start": 0}))
    ds = make_synthetic(40, 8)
    torch.manual_seed(0)
    model = build_model(cfg, ds)
    x = torch.from_numpy(ds.x_train).float() / 255
    y = torch.from_numpy(ds.y_train).clone()
    y[12:] = -1
    phase = model.graph_phase
    assert model.on_epoch_start(phase, 0, lambda: iter([(x[:20], y[:20]), (x[20:], y[20:])]))
    assert model.graph.ready and len(model.graph.target) == 40
    assert model.on_epoch_start("not-" + phase, 0, lambda: iter([])) == {}  # other phases: nothing
    step = next(s for p in model.phases() if p.name == phase for s in p.steps if s.data == "labeled")
    b = Batch(x[8:20], y[8:20], x[:8], y[:8], index=torch.arange(8, 20))
    torch.manual_seed(1)
    out = step.loss(b)
    assert out.logs["graph"] > 0
    model.graph.weight.zero_()  # no certainty anywhere: the term contributes nothing
    torch.manual_seed(1)
    again = step.loss(b)
    assert again.logs["graph"] == 0
    # the term enters the step's loss with its weight (aae_semi: times cls_weight, 1 here)
    assert torch.allclose(out.loss - again.loss, 50.0 * out.logs["graph"], rtol=1e-3, atol=2e-3)


def test_a_training_run_propagates_at_each_epoch_from_graph_start_and_logs_the_term(tmp_path):
    from ssavae.runlog import read_metrics
    from ssavae.runs import train

    cfg = build_run_config(family_raw("ssavae", model={"graph_weight": 1.0, "graph_k": 5, "graph_start": 1,
                                                       "decoder_epochs": 0},
                                      train={"epochs": 3}, data={"labels_per_class": 4}))
    result = train(cfg, tmp_path / "run")
    rows = [r for r in read_metrics(result.run_dir) if r.get("phase") == "vec"]
    by_epoch = {e: [r.get("vec/graph") for r in rows if r["epoch"] == e] for e in (0, 1, 2)}
    assert all(v is None for v in by_epoch[0])  # before graph_start: no labels, no term
    assert all(v is not None and v > 0 for e in (1, 2) for v in by_epoch[e])
    assert len(result.model.graph.target) == 128  # every training example has its label


def test_the_mean_teacher_averages_the_weights_and_runs_the_module_with_them():
    from ssavae.models.propagation import EMAWeights

    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    start = lin.weight.detach().clone()
    ema = EMAWeights({"lin": lin}, decay=0.9)
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.update()
    assert torch.allclose(ema.lin__weight, 0.9 * start + 0.1 * (start + 1.0))
    x = torch.randn(4, 3)
    assert torch.allclose(ema.call("lin", x), F.linear(x, ema.lin__weight, ema.lin__bias))
    assert not torch.allclose(ema.call("lin", x), lin(x))
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]  # the module keeps its own
    ema.copy_to()
    assert torch.equal(lin.weight, ema.lin__weight)
    ema.reset()
    with torch.no_grad():
        lin.weight.add_(1.0)
    assert not torch.equal(lin.weight, ema.lin__weight)


@pytest.mark.parametrize("family", ["ssavae", "m2", "aae_semi"])
def test_with_model_ema_the_teacher_follows_every_classifier_update_and_the_phase_ends_on_its_weights(
        tmp_path, monkeypatch, family):
    from ssavae.models.propagation import EMAWeights
    from ssavae.runs import train

    calls = []
    original = EMAWeights.update
    monkeypatch.setattr(EMAWeights, "update", lambda self: (calls.append(1), original(self)))
    model = {"ema": 0.9, "consistency_threshold": 0.0}
    if family == "ssavae":
        model["decoder_epochs"] = 0
    result = train(build_run_config(family_raw(family, model=model, train={"epochs": 2})), tmp_path / "run")
    m = result.model
    phase = next(p for p in m.phases() if p.name == m.graph_phase)
    per_batch = sum(1 for s in phase.steps if set(s.groups) & set(m.teacher_groups))  # aae_semi: 3
    assert m.teacher is not None and len(calls) == 2 * 4 * per_batch  # 4 batches per epoch, 2 epochs
    for name in m.teacher_groups:
        for pname, p in m.groups()[name].named_parameters():
            assert torch.equal(p, getattr(m.teacher, EMAWeights._key(name, pname)))
    plain = build_model(build_run_config(family_raw(family)), make_synthetic(16, 4))
    assert plain.teacher is None  # off by default


@pytest.mark.parametrize("family", ["ssavae", "m2", "aae_semi"])
def test_the_consistency_targets_come_from_the_mean_teacher(family):
    ds = make_synthetic(32, 4)
    model = build_model(build_run_config(family_raw(family, model={
        "ema": 0.9, "consistency_weight": 1.0, "consistency_threshold": 0.0})), ds)
    x = torch.from_numpy(ds.x_train).float() / 255
    y = torch.from_numpy(ds.y_train).clone()
    y[8:] = -1
    step = next(s for p in model.phases() if p.name == model.graph_phase for s in p.steps if s.data == "labeled")
    b = Batch(x, y, x[:8], y[:8], index=torch.arange(32))

    def consistency():
        torch.manual_seed(3)
        b.shared.clear()
        return float(step.loss(b).logs["consistency"])

    before = consistency()
    assert consistency() == before  # the same draws: the same term
    with torch.no_grad():
        for buf in model.teacher.buffers():
            buf.add_(torch.randn_like(buf))  # another teacher, the same student
    assert consistency() != pytest.approx(before, abs=1e-4)
