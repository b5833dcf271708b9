"""Successive halving over pruning levels: rung scores and the stop rule."""

import pytest

from sdd_opt.study.halving import Halving, reached, rung_score
from sdd_opt.study.measure import Measure


def curve(accs, rate=0.5):
    return [{"level": k, "sparsity": 1 - (1 - rate) ** k, "val_acc": a, "test_acc": a} for k, a in enumerate(accs)]


M = Measure(ref_acc=0.1)


def test_rung_score_clips_every_level_to_the_rung():
    fine, coarse = curve([0.8, 0.8, 0.8], rate=0.3), curve([0.8, 0.8], rate=0.6)
    # both hold 0.8 up to the rung at 40 %: the coarse schedule's 60 % level earns nothing extra
    assert rung_score(fine, 0.4, M) == pytest.approx(rung_score(coarse, 0.4, M))
    assert rung_score(curve([0.9, 0.9]), 0.4, M) > rung_score(fine, 0.4, M)
    assert reached(fine, 0.5) and not reached(fine, 0.6)


def test_the_bottom_of_a_rung_stops_and_the_top_goes_on():
    rule = Halving(rungs=(0.5,), eta=3, min_peers=3, measure=M)
    peers = [curve([0.8, 0.8, 0.8]), curve([0.85, 0.85]), curve([0.7, 0.7, 0.7])]
    assert rule.decide(curve([0.6]), peers) is None                    # level 0 crosses no rung
    why = rule.decide(curve([0.6, 0.6]), peers)                        # 50 %: ranks 4 of 4, top 1 goes on
    assert why and "50% rung" in why and "ranks 4 of 4" in why
    assert rule.decide(curve([0.9, 0.9]), peers) is None               # best of the rung
    assert rule.decide(curve([0.6, 0.6, 0.6]), peers) is None          # the rung was crossed one level earlier


def test_no_decision_without_enough_peers_at_the_rung():
    rule = Halving(rungs=(0.5, 0.75), eta=2, min_peers=2, measure=M)
    assert rule.decide(curve([0.5, 0.5]), [curve([0.9, 0.9])]) is None
    short = [curve([0.9]), curve([0.9])]                                # peers that never reached 50 %
    assert rule.decide(curve([0.5, 0.5]), short) is None
    assert rule.decide(curve([0.5, 0.5]), [curve([0.9, 0.9]), curve([0.95, 0.95])])
