import pytest

from sdd_opt.curve import sdd_metrics, select_level

SP = [0.0, 0.2, 0.36, 0.49, 0.59, 0.67, 0.74, 0.79, 0.83, 0.87, 0.89, 0.91, 0.93]


def test_curve_with_a_dip_and_a_peak():
    acc = [0.76, 0.75, 0.74, 0.73, 0.72, 0.75, 0.79, 0.83, 0.85, 0.84, 0.80, 0.70, 0.40]
    m = sdd_metrics(SP, acc, threshold=0.01, within=0.01)
    assert m.sdd_present
    assert (m.dip_acc, m.dip_level, m.peak_acc, m.peak_level) == (0.72, 4, 0.85, 8)
    assert m.sdd_gap == pytest.approx(0.13)
    assert m.descent == pytest.approx(0.04)
    assert m.best_acc == 0.85 and m.best_sparsity == 0.83
    assert m.within_sparsity == 0.89  # 0.80 >= 0.76 - 0.01 at 0.89; 0.70 is not
    assert m.phases[0] == "light" and m.phases[3] == "critical" and m.phases[6] == "sweet"
    assert m.phases[-1] == "collapsed"


def test_monotone_curve_without_a_dip():
    acc = [0.88, 0.88, 0.879, 0.878, 0.877, 0.87, 0.86, 0.84, 0.80, 0.75, 0.70, 0.6, 0.5]
    m = sdd_metrics(SP, acc, threshold=0.01)
    assert not m.sdd_present
    assert m.sdd_gap == 0.0
    assert m.best_acc == 0.88 and m.best_sparsity == 0.2
    assert "critical" not in m.phases and "sweet" not in m.phases


def test_rise_without_a_prior_descent_is_not_sdd():
    acc = [0.70, 0.72, 0.74, 0.76, 0.78, 0.80, 0.81, 0.82, 0.83, 0.82, 0.81, 0.80, 0.5]
    m = sdd_metrics(SP, acc, threshold=0.01)
    assert m.sdd_gap > 0.05 and not m.sdd_present


def test_threshold_decides_presence():
    acc = [0.80, 0.79, 0.795, 0.80, 0.70]
    assert sdd_metrics(SP[:5], acc, threshold=0.005).sdd_present
    assert not sdd_metrics(SP[:5], acc, threshold=0.02).sdd_present


@pytest.mark.parametrize("rule, expected", [("final", 4), ("best", 2), ("within", 3)])
def test_select_rules(rule, expected):
    acc = [0.80, 0.78, 0.83, 0.795, 0.60]
    assert select_level(acc, SP[:5], rule, eps=0.01) == expected


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        sdd_metrics([0.0, 0.2], [0.5])
