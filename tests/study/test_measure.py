"""The one search measure: front over every level, selected on validation, measured on test, log axis."""

import math

import pytest

from sdd_opt.study.measure import Measure, decades, hypervolume_2d, measure_of
from sdd_opt.study.spec import parse_study


def test_decades_of_weights_removed():
    assert decades(0.0) == 0.0 and decades(0.9) == pytest.approx(1.0) and decades(0.99) == pytest.approx(2.0)
    assert decades(1.0) == 6.0  # a fully pruned level stays finite


def test_front_is_selected_on_validation_and_measured_on_test():
    m = Measure(ref_acc=0.5)
    # (val, decades, test): b is dominated on validation although its test accuracy is the best
    a, b, c = (0.8, 1.0, 0.7), (0.75, 0.5, 0.9), (0.6, 2.0, 0.6)
    assert m.front([a, b, c]) == [c, a]
    assert m.hypervolume([a, b, c]) == pytest.approx(hypervolume_2d([(0.7, 1.0), (0.6, 2.0)], (0.5, 0.0)))
    assert m.hypervolume([a, b, c], accuracy="val") == pytest.approx(hypervolume_2d([(0.8, 1.0), (0.6, 2.0)], (0.5, 0.0)))
    # dense points (0 decades) and points below the floor add nothing
    assert m.hypervolume([(0.99, 0.0, 0.99), (0.4, 3.0, 0.4)]) == 0.0


def test_curve_hypervolume_rewards_accuracy_at_high_sparsity():
    m = Measure(ref_acc=0.1)
    def rows(accs):
        return [{"sparsity": 1 - 0.5 ** k, "val_acc": a, "test_acc": a} for k, a in enumerate(accs)]
    assert m.curve_hypervolume(rows([0.8, 0.8, 0.8])) > m.curve_hypervolume(rows([0.8, 0.8, 0.5]))
    assert m.curve_hypervolume(rows([0.8, 0.8, 0.8, 0.8])) > m.curve_hypervolume(rows([0.8, 0.8, 0.8]))
    assert m.curve_hypervolume([{"sparsity": 0.5, "val_acc": math.nan, "test_acc": 0.5}]) == 0.0


def test_reference_accuracy_is_the_collapse_floor_or_chance():
    data = {"name": "s", "base": {"data": {"name": "synthetic1d"}, "model": {"name": "mlp"}},
            "search_space": {"prune.rate": {"type": "float", "low": 0.2, "high": 0.4}}}
    assert measure_of(parse_study(data, "s")).ref_acc == pytest.approx(0.1)   # 10 classes
    assert measure_of(parse_study({**data, "collapse_floor": 0.3}, "s")).ref_acc == pytest.approx(0.3)
