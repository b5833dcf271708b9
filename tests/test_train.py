"""sdd_opt.train: the optimizer the trainer builds."""

import torch

from sdd_opt.config import TrainConfig
from sdd_opt.models.cnn1d import CNN1D
from sdd_opt.train import make_optimizer


def test_the_fused_sgd_matches_the_textbook_update():
    torch.manual_seed(0)
    cfg = TrainConfig(lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    a, b = CNN1D(width=8), CNN1D(width=8)
    b.load_state_dict(a.state_dict())
    start = a.conv1.weight.detach().clone()
    fused = make_optimizer(a, cfg, torch.device("cpu"))
    plain = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True, foreach=False)
    assert fused.defaults["fused"] is True
    for _ in range(20):
        grads = [torch.randn_like(p) for p in a.parameters()]
        for model, opt in ((a, fused), (b, plain)):
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert (a.conv1.weight - start).abs().max() > 0.1  # the steps did move the weights
