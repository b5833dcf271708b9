import math

import pytest
import torch

from sdd_opt.config import load_config
from sdd_opt.distill import distillation_loss, teacher_config, teacher_key


def test_distillation_loss_matches_a_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.5]])
    t = torch.tensor([[0.2, 3.0, -1.0]])
    y = torch.tensor([0])
    alpha, T = 0.7, 4.0

    def softmax(v):
        e = [math.exp(x) for x in v]
        return [x / sum(e) for x in e]

    ps, pt = softmax([v / T for v in s[0].tolist()]), softmax([v / T for v in t[0].tolist()])
    kl = sum(a * math.log(a / b) for a, b in zip(pt, ps))
    ce = -math.log(softmax(s[0].tolist())[0])
    expected = alpha * T * T * kl + (1 - alpha) * ce
    assert distillation_loss(s, t, y, alpha, T).item() == pytest.approx(expected, rel=1e-5)


def test_alpha_zero_is_plain_cross_entropy_and_identical_logits_give_no_kl():
    s = torch.randn(8, 10)
    y = torch.randint(0, 10, (8,))
    ce = torch.nn.functional.cross_entropy(s, y)
    assert distillation_loss(s, torch.randn(8, 10), y, 0.0, 3.0).item() == pytest.approx(ce.item(), rel=1e-6)
    assert distillation_loss(s, s.clone(), y, 1.0, 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_teacher_is_the_dense_student_setup_with_the_teacher_l2():
    cfg = load_config(None, ["distill.enabled=true", "distill.teacher.weight_decay=0.01", "train.weight_decay=0"])
    t = teacher_config(cfg)
    assert t.train.weight_decay == 0.01 and t.prune.levels == 0 and not t.distill.enabled
    # the cache key follows what decides the teacher's weights, not the student's remedy
    same = load_config(None, ["distill.enabled=true", "distill.teacher.weight_decay=0.01", "distill.alpha=0.1",
                              "train.weight_decay=0.5", "train.device=cpu"])
    other = load_config(None, ["distill.enabled=true", "distill.teacher.weight_decay=0.02"])
    assert teacher_key(cfg) == teacher_key(same) != teacher_key(other)


def test_two_workers_needing_the_same_teacher_train_it_once(tmp_path, tiny_cfg):
    import threading
    import time

    from sdd_opt.distill import get_teacher

    cfg = tiny_cfg.model_copy(deep=True)
    cfg.distill.enabled, cfg.distill.teacher.cache_dir = True, str(tmp_path / "teachers")
    trained, sources = [], []

    def train_dense(tcfg, model):
        trained.append(1)
        time.sleep(0.3)  # the other worker arrives meanwhile

    def worker():
        sources.append(get_teacher(cfg, lambda: torch.nn.Linear(2, 2), train_dense, log=lambda *_: None)[1])

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trained) == 1 and sorted(s.split()[0] for s in sources) == ["cached", "trained"]
