"""The logit-linear fit and effective robustness, on synthetic points with known answers."""

from __future__ import annotations

import math

import pytest

from dcbench.robustness import clopper_pearson, effective_robustness, fit_logit_linear, logit, sigmoid


def test_logit_and_sigmoid_are_inverse():
    for p in (0.01, 0.3, 0.5, 0.97):
        assert sigmoid(logit(p)) == pytest.approx(p)
    assert logit(0.0) < -9 and logit(1.0) > 9  # clipped, not infinite


def test_fit_recovers_a_known_line_in_logit_space():
    ids = [0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
    oods = [sigmoid(0.7 * logit(a) - 1.2) for a in ids]
    fit = fit_logit_linear(ids, oods)
    assert fit.slope == pytest.approx(0.7) and fit.intercept == pytest.approx(-1.2)
    assert fit.r2 == pytest.approx(1.0) and fit.n == 6
    assert fit.predict(0.85) == pytest.approx(sigmoid(0.7 * logit(0.85) - 1.2))


def test_least_squares_on_noisy_points_matches_the_closed_form():
    # logit-space points (x, y): (0, 0), (1, 1), (2, 3) -> slope 1.5, intercept -1/6
    ids, oods = [sigmoid(0), sigmoid(1), sigmoid(2)], [sigmoid(0), sigmoid(1), sigmoid(3)]
    fit = fit_logit_linear(ids, oods)
    assert fit.slope == pytest.approx(1.5) and fit.intercept == pytest.approx(-1 / 6)
    # residuals 1/6, -1/3, 1/6 -> ss_res 1/6; y mean 4/3 -> ss_tot 14/3; r2 = 1 - 1/28
    assert fit.r2 == pytest.approx(27 / 28)


def test_residual_of_a_point_above_the_line():
    fit = fit_logit_linear([0.5, sigmoid(2.0)], [0.5, sigmoid(1.0)])  # slope 0.5 through the origin
    result = effective_robustness(fit, id_accuracy=sigmoid(2.0), ood_correct=80, ood_n=100)
    assert result["predicted_ood"] == pytest.approx(sigmoid(1.0))
    assert result["effective_robustness"] == pytest.approx(0.8 - sigmoid(1.0))
    assert result["effective_robustness_low"] < result["effective_robustness"] < result["effective_robustness_high"]


def test_clopper_pearson_matches_scipy_and_the_edges():
    from scipy.stats import binomtest

    for k, n in [(0, 10), (3, 10), (10, 10), (57, 120)]:
        ref = binomtest(k, n).proportion_ci(confidence_level=0.995, method="exact")
        assert clopper_pearson(k, n, 0.995) == pytest.approx((ref.low, ref.high))
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0
    assert math.isclose(clopper_pearson(5, 10, 0.95)[0], 0.1870860, rel_tol=1e-5)


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="at least 2 baselines"):
        fit_logit_linear([0.9], [0.5])
    with pytest.raises(ValueError, match="same ID accuracy"):
        fit_logit_linear([0.9, 0.9], [0.5, 0.6])
    with pytest.raises(ValueError, match="successes"):
        clopper_pearson(11, 10)
