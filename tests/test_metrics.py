"""dcgan.metrics: FID, KID, PRDC, inception score and the class-histogram mode report, each
checked against an independent closed form or a brute-force loop, plus the errors bad input
gets. Pure NumPy and fast (a few seconds)."""
from __future__ import annotations

import ast
import inspect
import math
import tracemalloc

import numpy as np
import pytest

from dcgan import metrics


def _rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(size=(d, 2 * d))
    return x @ x.T / (2 * d) + 0.1 * np.eye(d)


def _denman_beavers_sqrt(a: np.ndarray, iters: int = 60) -> np.ndarray:
    """A square root of a (not necessarily symmetric) matrix with no eigenvalues on the closed
    negative real axis, by the Denman-Beavers iteration: no eigen-decomposition involved."""
    y, z = a.copy(), np.eye(a.shape[0])
    for _ in range(iters):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y


def _fid_closed_diag(mu1, s1, mu2, s2) -> float:
    """FID of Gaussians with diagonal covariances diag(s1), diag(s2)."""
    return float(np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2)))


# ----------------------------------------------------------------------------- module
def test_metrics_imports_only_numpy_and_stdlib():
    tree = ast.parse(inspect.getsource(metrics))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert "scipy" not in roots and roots <= {"__future__", "numbers", "typing", "numpy"}, roots
    assert set(metrics.__all__) == {"feature_stats", "fid_from_stats", "fid", "kid", "prdc",
                                    "inception_score", "class_histogram", "mode_report"}


# ----------------------------------------------------------------------------- FID
def test_feature_stats_matches_mean_and_unbiased_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    mu, sigma = metrics.feature_stats(x)
    assert mu.dtype == sigma.dtype == np.float64 and mu.shape == (4,) and sigma.shape == (4, 4)
    x64 = x.astype(np.float64)
    brute = sum(np.outer(r - x64.mean(0), r - x64.mean(0)) for r in x64) / (len(x64) - 1)
    np.testing.assert_allclose(mu, x64.mean(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sigma, brute, rtol=1e-10, atol=1e-14)
    mu1, s1 = metrics.feature_stats(x[:, :1])  # one feature: still (1,) and (1, 1)
    assert mu1.shape == (1,) and s1.shape == (1, 1)
    assert s1[0, 0] == pytest.approx(np.var(x64[:, 0], ddof=1), rel=1e-12)


def test_fid_diagonal_gaussians_closed_form():
    rng = np.random.default_rng(1)
    d = 7
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    got = metrics.fid_from_stats(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(_fid_closed_diag(mu1, s1, mu2, s2), rel=1e-10)


def test_fid_commuting_covariances_closed_form():
    # S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute, so (S1 S2)^1/2 = Q diag(sqrt(ab)) Q^T
    rng = np.random.default_rng(2)
    d = 6
    q = _rotation(d, rng)
    a, b = rng.uniform(0.05, 4.0, d), rng.uniform(0.05, 4.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    assert np.abs(s1 @ s2 - s2 @ s1).max() < 1e-10
    got = metrics.fid_from_stats(mu1, s1, mu2, s2)
    assert got == pytest.approx(_fid_closed_diag(mu1, a, mu2, b), rel=1e-9)


def test_fid_general_covariances_against_denman_beavers():
    rng = np.random.default_rng(3)
    d = 8
    s1, s2 = _random_spd(d, rng), _random_spd(d, rng)
    assert np.abs(s1 @ s2 - s2 @ s1).max() > 1e-2  # really not commuting
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    root = _denman_beavers_sqrt(s1 @ s2)  # Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2)
    np.testing.assert_allclose(root @ root, s1 @ s2, rtol=1e-9, atol=1e-12)
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)
    assert metrics.fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-9)
    # only the symmetric part of a covariance counts
    skew = np.triu(rng.normal(size=(d, d)), 1) * 1e-3
    skew = skew - skew.T
    got = metrics.fid_from_stats(mu1, s1 + skew, mu2, s2 - skew)
    assert got == pytest.approx(ref, rel=1e-9)


def test_fid_identical_stats_is_zero_and_fid_is_symmetric():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(0.3, 1.5, size=(200, 16))
    mu, sigma = metrics.feature_stats(a)
    assert abs(metrics.fid_from_stats(mu, sigma, mu, sigma)) < 1e-8
    assert abs(metrics.fid(a, a)) < 1e-8
    # rank-deficient covariance (fewer samples than features): clipped eigenvalues, still ~0
    mu_s, sigma_s = metrics.feature_stats(a[:5])
    assert 0.0 <= metrics.fid_from_stats(mu_s, sigma_s, mu_s, sigma_s) < 1e-6
    ab, ba = metrics.fid(a, b), metrics.fid(b, a)
    assert ab > 1.0 and ab == pytest.approx(ba, rel=1e-9)
    assert isinstance(ab, float)


def test_fid_of_samples_approaches_closed_form():
    # Two samples of 20,000 from known 4-D Gaussians; over 20 seeds the estimate's spread was
    # about 0.015 around the closed form (0.648), so 0.08 is a ~5-sigma tolerance.
    rng = np.random.default_rng(5)
    d, n = 4, 20_000
    q = _rotation(d, rng)
    mu1, mu2 = np.zeros(d), np.array([0.5, -0.3, 0.2, 0.1])
    a, b = np.array([1.0, 2.0, 0.5, 1.5]), np.array([1.5, 1.0, 0.5, 2.0])
    x = rng.normal(size=(n, d)) * np.sqrt(a) @ q.T + mu1  # covariance Q diag(a) Q^T
    y = rng.normal(size=(n, d)) * np.sqrt(b) @ q.T + mu2
    expected = _fid_closed_diag(mu1, a, mu2, b)
    assert abs(metrics.fid(x, y) - expected) < 0.08


# ----------------------------------------------------------------------------- KID
def _mmd2_brute(x, y, degree=3, gamma=None, coef0=1.0) -> float:
    g = 1.0 / x.shape[1] if gamma is None else gamma

    def k(u, v):
        return (g * float(np.dot(u, v)) + coef0) ** degree

    m = len(x)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return kxx + kyy - 2 * kxy


@pytest.mark.parametrize("kw", [{}, {"degree": 2, "gamma": 0.7, "coef0": 0.5}])
def test_kid_matches_brute_force_when_the_subset_is_the_whole_set(kw):
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(9, 3)), rng.normal(0.4, 1.2, size=(9, 3))
    ref = _mmd2_brute(x, y, **kw)
    mean, std = metrics.kid(x, y, subsets=1, subset_size=9, **kw)
    assert mean == pytest.approx(ref, rel=1e-10) and std == 0.0
    # subsets of the whole set are permutations of it: every subset gives the same MMD²
    mean, std = metrics.kid(x, y, subsets=4, subset_size=50, **kw)
    assert mean == pytest.approx(ref, rel=1e-10) and std < 1e-10 * abs(ref)


def test_kid_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
    c = rng.normal(0.5, 1.0, size=(1000, 8))
    same, _ = metrics.kid(a, b, subsets=20, subset_size=200)
    shifted, shifted_std = metrics.kid(a, c, subsets=20, subset_size=200)
    assert shifted > 0.5 and shifted > 3 * shifted_std
    assert abs(same) < 0.05 * shifted
    # the seed picks the subsets: same seed, same result; another seed, another one
    assert metrics.kid(a, c, subsets=3, subset_size=100, seed=1) == \
        metrics.kid(a, c, subsets=3, subset_size=100, seed=1)
    assert metrics.kid(a, c, subsets=3, subset_size=100, seed=1) != \
        metrics.kid(a, c, subsets=3, subset_size=100, seed=2)


# ----------------------------------------------------------------------------- PRDC
def _prdc_brute(real, fake, k):
    """Naeem et al. 2020 with explicit loops; a ball holds points strictly closer than its
    radius, the distance to the k-th nearest other point of the same set."""
    def dist(u, v):
        return math.sqrt(sum((float(p) - float(q)) ** 2 for p, q in zip(u, v)))

    def radii(s):
        return [sorted(dist(s[i], s[j]) for j in range(len(s)) if j != i)[k - 1]
                for i in range(len(s))]

    rr, fr = radii(real), radii(fake)
    n, m = len(real), len(fake)
    drf = [[dist(real[i], fake[j]) for j in range(m)] for i in range(n)]
    precision = sum(any(drf[i][j] < rr[i] for i in range(n)) for j in range(m)) / m
    recall = sum(any(drf[i][j] < fr[j] for j in range(m)) for i in range(n)) / n
    density = sum(drf[i][j] < rr[i] for i in range(n) for j in range(m)) / (k * m)
    coverage = sum(min(drf[i]) < rr[i] for i in range(n)) / n
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_matches_brute_force(k):
    rng = np.random.default_rng(8 + k)
    real = rng.normal(size=(40, 3))
    fake = rng.normal(0.6, 0.8, size=(30, 3))
    ref = _prdc_brute(real, fake, k)
    got = metrics.prdc(real, fake, k=k)
    assert set(got) == {"precision", "recall", "density", "coverage"}
    for key in ref:
        assert got[key] == pytest.approx(ref[key], abs=1e-12), key
    # not a degenerate case: every fraction strictly between 0 and 1
    assert all(0 < got[key] < 1 for key in ("precision", "recall", "coverage"))


def test_prdc_blocks_of_rows_give_the_same_result_and_bound_memory(monkeypatch):
    rng = np.random.default_rng(9)
    real, fake = rng.normal(size=(40, 3)), rng.normal(0.6, 1.3, size=(30, 3))
    ref = _prdc_brute(real, fake, 4)
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 7 * 40 + 3)  # 7-row blocks, a ragged last
    got = metrics.prdc(real, fake, k=4)
    for key in ref:
        assert got[key] == pytest.approx(ref[key], abs=1e-12), key
    # 4,000 x 4,000 distances are 128 MB in float64; in blocks of 2^18 elements the peak of
    # memory allocated stays far below that
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 1 << 18)
    real, fake = rng.normal(size=(4000, 4)), rng.normal(size=(4000, 4))
    tracemalloc.start()
    try:
        metrics.prdc(real, fake, k=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, peak
    # the default block, 2^22 elements (32 MiB of float64 per temporary), keeps 10,000 x 10,000
    # to well under a few hundred MB
    monkeypatch.undo()
    assert metrics._BLOCK_ELEMENTS <= 1 << 22


def test_prdc_ties_on_a_lattice_follow_the_strict_ball():
    # integer points: squared distances are exact, so points on a ball's edge are real ties;
    # like the authors' code (and the brute force), the edge is outside the ball
    g = np.array([(i, j) for i in range(6) for j in range(5)], dtype=np.float64)
    for shift in ([0.0, 1.0], [1.0, 0.0]):
        real, fake = g[::2], g[1::3] + np.array(shift)
        for k in (1, 2, 4):
            ref = _prdc_brute(real, fake, k)
            got = metrics.prdc(real, fake, k=k)
            for key in ref:
                assert got[key] == pytest.approx(ref[key], abs=1e-12), (shift, k, key)


def test_prdc_identical_and_disjoint_sets():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(60, 5))
    k = 4
    same = metrics.prdc(x, x.copy(), k=k)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    # each real ball holds its own copy and its k-1 nearer neighbours (the k-th is on the edge)
    assert 1.0 <= same["density"] <= (k + 1) / k
    far = metrics.prdc(x, rng.normal(100.0, 1.0, size=(50, 5)), k=k)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


# ----------------------------------------------------------------------------- inception score
def _is_brute(p: np.ndarray, splits: int) -> list:
    out = []
    size = len(p) // splits
    for s in range(splits):
        part = p[s * size:(s + 1) * size]
        py = [sum(row[c] for row in part) / len(part) for c in range(p.shape[1])]
        kls = [sum(row[c] * math.log(row[c] / py[c]) for c in range(p.shape[1]) if row[c] > 0)
               for row in part]
        out.append(math.exp(sum(kls) / len(kls)))
    return out


def test_inception_score_uniform_and_one_hot():
    k = 10
    mean, std = metrics.inception_score(np.full((50, k), 1.0 / k), splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    one_hot = np.eye(k)[np.tile(np.arange(k), 7)]  # 70 confident predictions, 7 per class
    mean, std = metrics.inception_score(one_hot, splits=1)
    assert abs(mean - k) < 1e-6 and std == 0.0
    # one class only: confident but no diversity
    assert metrics.inception_score(np.eye(k)[np.zeros(20, int)], splits=2)[0] == \
        pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("splits", [1, 4])
def test_inception_score_matches_brute_force(splits):
    rng = np.random.default_rng(11)
    p = rng.dirichlet(np.full(6, 0.3), size=40)
    p[3] = np.eye(6)[2]  # a row with exact zeros (0 log 0 = 0)
    ref = _is_brute(p, splits)
    mean, std = metrics.inception_score(p, splits=splits)
    assert mean == pytest.approx(np.mean(ref), rel=1e-10)
    assert std == pytest.approx(np.std(ref), rel=1e-8, abs=1e-12)
    assert 1.0 < mean < 6.0
    # rows a little off 1 (float32 softmax) are renormalised: the same score
    scaled = metrics.inception_score(p * (1 + 5e-4), splits=splits)
    assert scaled[0] == pytest.approx(mean, rel=1e-12)


# ----------------------------------------------------------------------------- class histogram
def test_class_histogram_from_labels_and_probabilities():
    h = metrics.class_histogram(np.array([0, 1, 1, 3]), n_classes=5)
    assert h.dtype == np.float64
    np.testing.assert_array_equal(h, [0.25, 0.5, 0.0, 0.25, 0.0])
    np.testing.assert_array_equal(metrics.class_histogram([2, 2, 0, 1, 2]), [0.2, 0.2, 0.6])
    probs = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.0, 0.9, 0.1]])
    hp = metrics.class_histogram(probs)
    np.testing.assert_array_equal(hp, [0.25, 0.5, 0.25])
    np.testing.assert_array_equal(metrics.class_histogram(probs, 3), hp)
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 7, size=500)
    hr = metrics.class_histogram(labels, 7)
    assert hr.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(hr, [np.mean(labels == c) for c in range(7)], rtol=0, atol=1e-15)


def test_mode_report_known_histograms():
    k = 10
    uniform = metrics.mode_report(np.full(k, 1.0 / k))
    assert uniform["missing"] == [] and abs(uniform["kl_to_uniform"]) < 1e-12
    assert uniform["fractions"] == pytest.approx([0.1] * k)
    collapsed = metrics.mode_report(np.eye(k)[3])
    assert collapsed["kl_to_uniform"] == pytest.approx(math.log(k), rel=1e-12)
    assert collapsed["missing"] == [c for c in range(k) if c != 3]
    h = [0.47, 0.4, 0.07, 0.06]  # default threshold 0.25 / 4 = 0.0625: only class 3 is below
    rep = metrics.mode_report(h)
    assert rep["missing"] == [3]
    assert rep["kl_to_uniform"] == pytest.approx(sum(p * math.log(4 * p) for p in h), rel=1e-12)
    assert all(isinstance(v, float) for v in rep["fractions"]) and rep["fractions"] == h
    assert metrics.mode_report(h, threshold=0.2)["missing"] == [2, 3]
    assert metrics.mode_report(h, threshold=0.065)["missing"] == [3]
    assert metrics.mode_report(h, threshold=0.0)["missing"] == []


def test_mode_report_of_class_histogram_pipeline():
    labels = np.array([0] * 45 + [1] * 50 + [2] * 4 + [3] * 1)
    rep = metrics.mode_report(metrics.class_histogram(labels, 4))
    assert rep["missing"] == [2, 3] and rep["kl_to_uniform"] > 0.3


# ----------------------------------------------------------------------------- bad input
_X = np.random.default_rng(13).normal(size=(20, 3))
_NAN = _X.copy()
_NAN[4, 1] = np.nan
_P = np.full((20, 4), 0.25)
_MU, _S = np.zeros(3), np.eye(3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: metrics.feature_stats(_X[:, 0]), "2-D"),
        (lambda: metrics.feature_stats(_X[:1]), "at least 2 samples"),
        (lambda: metrics.feature_stats(_NAN), "NaN"),
        (lambda: metrics.fid(_X, _X[:, :2]), "must match"),
        (lambda: metrics.fid(_X[None], _X), "2-D"),
        (lambda: metrics.fid(_X, _NAN), "NaN"),
        (lambda: metrics.fid(_X[:1], _X), "at least 2"),
        (lambda: metrics.fid_from_stats(_MU, _S, np.zeros(2), np.eye(2)), "dimensions"),
        (lambda: metrics.fid_from_stats(_MU, np.eye(2), _MU, _S), "sigma1"),
        (lambda: metrics.fid_from_stats(_MU, _S[:2], _MU, _S), "square"),
        (lambda: metrics.fid_from_stats(_MU[None], _S, _MU, _S), "1-D"),
        (lambda: metrics.fid_from_stats(_MU, _S, _MU, _S * np.nan), "finite"),
        (lambda: metrics.kid(_X[:, 0], _X), "2-D"),
        (lambda: metrics.kid(_X, _X[:, :2]), "must match"),
        (lambda: metrics.kid(_NAN, _X), "NaN"),
        (lambda: metrics.kid(_X, _X[:1]), "at least 2"),
        (lambda: metrics.kid(_X, _X, subset_size=1), "subset_size"),
        (lambda: metrics.kid(_X, _X, subsets=0), "subsets"),
        (lambda: metrics.kid(_X, _X, degree=0), "degree"),
        (lambda: metrics.kid(_X, _X, gamma=-1.0), "gamma"),
        (lambda: metrics.prdc(_X[:, 0], _X), "2-D"),
        (lambda: metrics.prdc(_X, _X[:, :2]), "must match"),
        (lambda: metrics.prdc(_X, _NAN), "NaN"),
        (lambda: metrics.prdc(_X, _X[:5], k=5), "k=5"),
        (lambda: metrics.prdc(_X[:1], _X, k=1), "at least 2"),
        (lambda: metrics.prdc(_X, _X, k=0), "k must"),
        (lambda: metrics.inception_score(_P[0]), "2-D"),
        (lambda: metrics.inception_score(_P * 1.1), "summing to 1"),
        (lambda: metrics.inception_score(_P - 0.5), "non-negative"),
        (lambda: metrics.inception_score(np.where(_P > 0, np.nan, 0)), "NaN"),
        (lambda: metrics.inception_score(_P, splits=21), "splits"),
        (lambda: metrics.inception_score(_P, splits=0), "splits"),
        (lambda: metrics.class_histogram(np.zeros((2, 2, 2))), "shape"),
        (lambda: metrics.class_histogram(np.array([0.5, 1.0])), "integers"),
        (lambda: metrics.class_histogram(np.array([0, -1])), ">= 0"),
        (lambda: metrics.class_histogram(np.array([0, 3]), n_classes=3), "outside"),
        (lambda: metrics.class_histogram(np.array([], dtype=int)), "empty"),
        (lambda: metrics.class_histogram(_P, n_classes=3), "n_classes"),
        (lambda: metrics.class_histogram(_NAN), "NaN"),
        (lambda: metrics.mode_report([0.5, 0.6]), "summing to 1"),
        (lambda: metrics.mode_report([[0.5, 0.5]]), "1-D"),
        (lambda: metrics.mode_report([1.5, -0.5]), "non-negative"),
        (lambda: metrics.mode_report([0.5, 0.5], threshold=float("nan")), "threshold"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
