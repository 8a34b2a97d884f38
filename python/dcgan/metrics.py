"""GAN evaluation metrics on feature arrays, in NumPy only (SciPy is not needed).

Features come from a feature network (:class:`dcgan.FeatureNet`, or any callable mapping
images to vectors): rows are samples, columns are features. Everything is computed in float64.

- :func:`feature_stats`: mean and covariance of a feature array.
- :func:`fid` / :func:`fid_from_stats`: Fréchet distance between Gaussians fitted to two
  feature sets (Heusel et al. 2017). The matrix square roots go through symmetric
  eigen-decompositions, not ``scipy.linalg.sqrtm``.
- :func:`kid`: kernel inception distance (Bińkowski et al. 2018), the unbiased MMD² with a
  polynomial kernel, averaged over random subsets.
- :func:`prdc`: precision, recall, density and coverage from k-nearest-neighbour balls
  (Naeem et al. 2020), with pairwise distances computed in blocks of rows to bound memory.
- :func:`inception_score`: exp(E_x KL(p(y|x) || p(y))) from class probabilities.
- :func:`class_histogram` and :func:`mode_report`: the share of each class among samples, the
  classes that are (almost) missing, and the KL divergence from uniform (mode collapse).

>>> import numpy as np
>>> from dcgan import metrics
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=(2000, 8)), rng.normal(0.5, 1.0, size=(2000, 8))
>>> round(metrics.fid(a, b), 1)  # about 8 * 0.5**2 = 2.0
2.0
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "feature_stats",
    "fid_from_stats",
    "fid",
    "kid",
    "prdc",
    "inception_score",
    "class_histogram",
    "mode_report",
]

# Elements of one block of a pairwise distance matrix (4 Mi float64 = 32 MiB per temporary): the
# number of rows per block is this divided by the number of columns.
_BLOCK_ELEMENTS = 1 << 22

# Row sums of class probabilities may be off 1 by this much (float32 softmax outputs).
_PROB_SUM_TOL = 1e-3


# ----------------------------------------------------------------------------- validation
def _features(x: ArrayLike, name: str, min_rows: int = 2) -> np.ndarray:
    """``x`` as a finite float64 array (N, D) with N >= ``min_rows`` and D >= 1."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (n_samples, n_features), got shape {a.shape}"
        )
    if a.shape[0] < min_rows:
        raise ValueError(
            f"{name} needs at least {min_rows} samples (rows), got shape {a.shape}"
        )
    if a.shape[1] < 1:
        raise ValueError(f"{name} needs at least 1 feature (column), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values; all features must be finite")
    return a


def _same_dims(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} has {a.shape[1]} features and {name_b} has {b.shape[1]}; "
            "the feature dimensions must match"
        )


def _int_param(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (bools and non-integers are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _probs(p: ArrayLike, name: str) -> np.ndarray:
    """Class probabilities (N, K): finite, non-negative, rows summing to 1 (renormalised)."""
    a = _features(p, name, min_rows=1)
    if (a < 0).any():
        raise ValueError(f"{name} must be non-negative class probabilities, got min {a.min():g}")
    sums = a.sum(axis=1)
    bad = np.abs(sums - 1.0) > _PROB_SUM_TOL
    if bad.any():
        raise ValueError(
            f"{name} rows must be class probabilities summing to 1 (within {_PROB_SUM_TOL:g}); "
            f"{int(bad.sum())} rows do not, with sums from {sums.min():g} to {sums.max():g}"
        )
    return a / sums[:, None]


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * log(y) elementwise, with 0 * log(anything) = 0."""
    out = np.zeros(np.broadcast(x, y).shape)
    x, y = np.broadcast_arrays(x, y)
    nz = x > 0
    out[nz] = x[nz] * np.log(y[nz])
    return out


# ----------------------------------------------------------------------------- FID
def feature_stats(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature array.

    Parameters
    ----------
    features : array_like, shape (N, D)
        One row per sample, N >= 2, all finite.

    Returns
    -------
    mu : np.ndarray, shape (D,)
        The mean of the rows, float64.
    sigma : np.ndarray, shape (D, D)
        The sample covariance (``rowvar=False``, ``ddof=1``), float64.

    Raises
    ------
    ValueError
        If ``features`` is not 2-D, has fewer than 2 rows, or holds NaN or infinite values.
    """
    a = _features(features, "features")
    mu = a.mean(axis=0)
    centred = a - mu
    sigma = centred.T @ centred / (a.shape[0] - 1)
    return mu, (sigma + sigma.T) / 2


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix; eigenvalues
    below zero (from rounding) are clipped to zero."""
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _mean_cov(mu: ArrayLike, sigma: ArrayLike, which: str) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(mu, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    if m.ndim != 1 or m.shape[0] < 1:
        raise ValueError(f"mu{which} must be a 1-D mean vector (D,), got shape {m.shape}")
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(
            f"sigma{which} must be a square covariance matrix (D, D), got shape {s.shape}"
        )
    if s.shape[0] != m.shape[0]:
        raise ValueError(
            f"mu{which} has {m.shape[0]} features but sigma{which} has shape {s.shape}; "
            "expected (D,) and (D, D)"
        )
    if not (np.isfinite(m).all() and np.isfinite(s).all()):
        raise ValueError(f"mu{which} and sigma{which} must be finite, got NaN or infinite values")
    return m, (s + s.T) / 2


def fid_from_stats(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1^½ S2 S1^½)^½)``, in float64. The covariances are
    symmetrised first. ``S1^½`` is the symmetric square root from ``np.linalg.eigh``, and the
    cross term is the sum of the square roots of the eigenvalues of the symmetric positive
    semi-definite matrix ``S1^½ S2 S1^½`` (equal to ``Tr((S1 S2)^½)``); eigenvalues below zero
    from rounding are clipped to zero.

    Parameters
    ----------
    mu1, mu2 : array_like, shape (D,)
        Means.
    sigma1, sigma2 : array_like, shape (D, D)
        Covariances (positive semi-definite).

    Returns
    -------
    float
        The distance, >= 0 (a tiny negative from rounding is returned as 0.0).

    Raises
    ------
    ValueError
        If the shapes do not match (D,), (D, D), (D,), (D, D) with one D, or a value is not
        finite.
    """
    m1, s1 = _mean_cov(mu1, sigma1, "1")
    m2, s2 = _mean_cov(mu2, sigma2, "2")
    if m1.shape != m2.shape:
        raise ValueError(
            f"the two Gaussians have different dimensions: mu1 {m1.shape} and mu2 {m2.shape}; "
            "both must have the same number of features D"
        )
    r1 = _sqrt_psd(s1)
    inner = r1 @ s2 @ r1
    w = np.linalg.eigvalsh((inner + inner.T) / 2)
    cross = np.sqrt(np.clip(w, 0.0, None)).sum()
    diff = m1 - m2
    d = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * cross)
    return max(d, 0.0)


def fid(features_a: ArrayLike, features_b: ArrayLike) -> float:
    """Fréchet inception distance between two feature arrays.

    Parameters
    ----------
    features_a : array_like, shape (N, D)
    features_b : array_like, shape (M, D)
        N, M >= 2 and the same number of features D.

    Returns
    -------
    float
        ``fid_from_stats(*feature_stats(features_a), *feature_stats(features_b))``.

    Raises
    ------
    ValueError
        On bad shapes, too few rows, different feature dimensions or non-finite values.
    """
    a = _features(features_a, "features_a")
    b = _features(features_b, "features_b")
    _same_dims(a, b, "features_a", "features_b")
    return fid_from_stats(*feature_stats(a), *feature_stats(b))


# ----------------------------------------------------------------------------- KID
def kid(
    features_a: ArrayLike,
    features_b: ArrayLike,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel inception distance (Bińkowski et al. 2018).

    The unbiased estimate of the squared maximum mean discrepancy with the polynomial kernel
    ``k(x, y) = (gamma x.y + coef0) ** degree``::

        MMD² = sum_{i!=j} k(x_i, x_j) / (m (m-1)) + sum_{i!=j} k(y_i, y_j) / (m (m-1))
               - 2 mean_{i,j} k(x_i, y_j)

    computed on ``subsets`` pairs of random subsets of ``m = min(subset_size, N, M)`` rows of
    each set, drawn without replacement with ``np.random.default_rng(seed)``.

    Parameters
    ----------
    features_a : array_like, shape (N, D)
    features_b : array_like, shape (M, D)
    subsets : int
        Number of random subsets (>= 1).
    subset_size : int
        Rows per subset (capped at N and M); the subsets need m >= 2.
    degree : int
        Degree of the polynomial kernel (>= 1).
    gamma : float or None
        Scale of the dot product; ``None`` means ``1 / D``.
    coef0 : float
        Constant term of the kernel.
    seed : int
        Seed of the subset sampling.

    Returns
    -------
    mean : float
        The mean MMD² over the subsets (may be slightly negative: the estimate is unbiased).
    std : float
        The standard deviation over the subsets (``ddof=0``; 0.0 for a single subset).

    Raises
    ------
    ValueError
        On bad shapes, different feature dimensions, non-finite values, m < 2 or bad
        parameters.
    """
    a = _features(features_a, "features_a")
    b = _features(features_b, "features_b")
    _same_dims(a, b, "features_a", "features_b")
    n_subsets = _int_param(subsets, "subsets", 1)
    size = _int_param(subset_size, "subset_size", 2)
    deg = _int_param(degree, "degree", 1)
    if gamma is None:
        g = 1.0 / a.shape[1]
    else:
        g = float(gamma)
        if not np.isfinite(g) or g <= 0:
            raise ValueError(f"gamma must be a positive finite number or None, got {gamma!r}")
    c = float(coef0)
    if not np.isfinite(c):
        raise ValueError(f"coef0 must be finite, got {coef0!r}")
    m = min(size, a.shape[0], b.shape[0])  # >= 2: both sets have >= 2 rows
    rng = np.random.default_rng(seed)
    mmd = np.empty(n_subsets)
    for s in range(n_subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        kxx = (g * (x @ x.T) + c) ** deg
        kyy = (g * (y @ y.T) + c) ** deg
        kxy = (g * (x @ y.T) + c) ** deg
        off = m * (m - 1)
        mmd[s] = ((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off
                  - 2.0 * kxy.mean())
    return float(mmd.mean()), float(mmd.std())


# ----------------------------------------------------------------------------- PRDC
def _block_rows(n_cols: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, n_cols))


def _sq_dists(x: np.ndarray, y: np.ndarray, y_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(x), len(y)); ``y_sq`` is ``(y * y).sum(1)``."""
    d = x @ y.T
    d *= -2.0
    d += (x * x).sum(axis=1)[:, None]
    d += y_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def _kth_sq_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of ``x`` to its k-th nearest other row (itself excluded
    by index, so duplicates of a row count as neighbours at distance 0)."""
    n = x.shape[0]
    x_sq = (x * x).sum(axis=1)
    out = np.empty(n)
    step = _block_rows(n)
    for i in range(0, n, step):
        d = _sq_dists(x[i:i + step], x, x_sq)
        rows = np.arange(d.shape[0])
        d[rows, i + rows] = np.inf  # not itself
        out[i:i + d.shape[0]] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out


def prdc(real_features: ArrayLike, fake_features: ArrayLike, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020).

    Each sample's k-NN ball is centred on it with radius the distance to its k-th nearest
    neighbour in its own set (itself excluded). As in the authors' reference code, a point is
    inside a ball when its distance is strictly less than the radius. With N real and M fake
    samples:

    - precision: the fraction of fakes inside at least one real ball;
    - recall: the fraction of reals inside at least one fake ball (fake radii);
    - density: ``(1 / (k M)) * sum_j sum_i 1[fake_j in ball(real_i)]`` (can exceed 1);
    - coverage: the fraction of reals whose nearest fake is inside their own ball.

    Pairwise distances are computed in float64, in blocks of rows of at most ~4 Mi elements,
    so 10,000 x 10,000 samples need a few hundred MB at most.

    Parameters
    ----------
    real_features : array_like, shape (N, D)
    fake_features : array_like, shape (M, D)
    k : int
        Neighbourhood size, 1 <= k < min(N, M).

    Returns
    -------
    dict
        ``{"precision", "recall", "density", "coverage"}`` as floats.

    Raises
    ------
    ValueError
        On bad shapes, different feature dimensions, non-finite values, or k not in
        [1, min(N, M) - 1].
    """
    r = _features(real_features, "real_features")
    f = _features(fake_features, "fake_features")
    _same_dims(r, f, "real_features", "fake_features")
    k = _int_param(k, "k", 1)
    if k >= min(r.shape[0], f.shape[0]):
        raise ValueError(
            f"k={k} needs more than k samples in each set (k < number of samples), got "
            f"{r.shape[0]} real and {f.shape[0]} fake samples"
        )
    r_rad = _kth_sq_radius(r, k)
    f_rad = _kth_sq_radius(f, k)
    f_sq = (f * f).sum(axis=1)
    fake_in_real = np.zeros(f.shape[0], dtype=bool)
    real_in_fake = np.empty(r.shape[0], dtype=bool)
    nearest_fake = np.empty(r.shape[0])
    n_inside = 0
    step = _block_rows(f.shape[0])
    for i in range(0, r.shape[0], step):
        d = _sq_dists(r[i:i + step], f, f_sq)  # (reals in block, fakes)
        rows = slice(i, i + d.shape[0])
        inside = d < r_rad[rows, None]  # fake j inside real i's ball
        fake_in_real |= inside.any(axis=0)
        n_inside += int(inside.sum())
        real_in_fake[rows] = (d < f_rad[None, :]).any(axis=1)
        nearest_fake[rows] = d.min(axis=1)
    return {
        "precision": float(fake_in_real.mean()),
        "recall": float(real_in_fake.mean()),
        "density": float(n_inside / (k * f.shape[0])),
        "coverage": float((nearest_fake < r_rad).mean()),
    }


# ----------------------------------------------------------------------------- class-based
def inception_score(probs: ArrayLike, splits: int = 10) -> tuple[float, float]:
    """Inception score ``exp(E_x KL(p(y|x) || p(y)))`` of class probabilities.

    The rows are cut into ``splits`` consecutive parts (``np.array_split``); in each part p(y) is
    the mean of its rows. ``0 * log 0`` counts as 0. Rows are renormalised to sum to 1 exactly.

    Parameters
    ----------
    probs : array_like, shape (N, K)
        p(y|x) per sample: non-negative, rows summing to 1 within 1e-3.
    splits : int
        Number of parts, 1 <= splits <= N.

    Returns
    -------
    mean : float
        The mean score over the parts (1 for identical predictions, K for confident predictions
        spread evenly over K classes).
    std : float
        The standard deviation over the parts (``ddof=0``).

    Raises
    ------
    ValueError
        If ``probs`` is not 2-D, is negative, not finite, has rows not summing to 1, or
        ``splits`` is not in [1, N].
    """
    p = _probs(probs, "probs")
    n_splits = _int_param(splits, "splits", 1)
    if n_splits > p.shape[0]:
        raise ValueError(f"splits must be at most the number of samples {p.shape[0]}, got {splits}")
    scores = np.empty(n_splits)
    for s, part in enumerate(np.array_split(p, n_splits)):
        py = part.mean(axis=0, keepdims=True)
        kl = (_xlogy(part, part) - _xlogy(part, py)).sum(axis=1)
        scores[s] = np.exp(kl.mean())
    return float(scores.mean()), float(scores.std())


def class_histogram(labels_or_probs: ArrayLike, n_classes: int | None = None) -> np.ndarray:
    """The fraction of samples in each class.

    Parameters
    ----------
    labels_or_probs : array_like, shape (N,) or (N, K)
        Integer class labels, or per-class probabilities (or any per-class scores), each row
        counted for its largest entry (argmax).
    n_classes : int or None
        Number of classes K. For labels, ``None`` means ``max(labels) + 1``; for probabilities
        it must be ``None`` or K.

    Returns
    -------
    np.ndarray, shape (K,)
        float64 fractions summing to 1.

    Raises
    ------
    ValueError
        On empty input, a wrong number of dimensions, non-integer or negative labels, labels
        >= ``n_classes``, non-finite probabilities, or an ``n_classes`` that does not match.
    """
    a = np.asarray(labels_or_probs)
    k = None if n_classes is None else _int_param(n_classes, "n_classes", 1)
    if a.ndim == 2:
        p = _features(a, "labels_or_probs", min_rows=1)
        if k is not None and k != p.shape[1]:
            raise ValueError(
                f"n_classes={k} but the probabilities have {p.shape[1]} classes (columns); "
                "they must match"
            )
        k = p.shape[1]
        labels = p.argmax(axis=1)
    elif a.ndim == 1:
        if a.size == 0:
            raise ValueError("labels_or_probs is empty; expected at least 1 label")
        if a.dtype.kind not in "iu":
            raise ValueError(
                f"labels must be integers (or give 2-D probabilities), got dtype {a.dtype}"
            )
        if a.min() < 0:
            raise ValueError(f"labels must be >= 0, got {a.min()}")
        if k is None:
            k = int(a.max()) + 1
        elif a.max() >= k:
            raise ValueError(f"label {a.max()} is outside [0, n_classes={k})")
        labels = a.astype(np.int64)
    else:
        raise ValueError(
            "labels_or_probs must be labels (N,) or probabilities (N, K), got shape "
            f"{a.shape}"
        )
    return np.bincount(labels, minlength=k).astype(np.float64) / labels.shape[0]


def mode_report(histogram: ArrayLike, threshold: float | None = None) -> dict[str, Any]:
    """Mode-collapse summary of a class histogram.

    Parameters
    ----------
    histogram : array_like, shape (K,)
        Class fractions (e.g. from :func:`class_histogram`): non-negative, summing to 1.
    threshold : float or None
        A class whose fraction is below this is reported missing; ``None`` means a quarter of
        uniform, ``0.25 / K``.

    Returns
    -------
    dict
        ``"missing"``: list of the class indices below ``threshold``;
        ``"kl_to_uniform"``: KL(histogram || uniform) in nats, 0 for a uniform histogram and
        log K when one class has all the mass;
        ``"fractions"``: the histogram as a list of floats.

    Raises
    ------
    ValueError
        If ``histogram`` is not a non-empty 1-D array of finite non-negative fractions summing
        to 1 (within 1e-6), or ``threshold`` is not a finite number.
    """
    h = np.asarray(histogram, dtype=np.float64)
    if h.ndim != 1 or h.size < 1:
        raise ValueError(
            f"histogram must be a 1-D array of class fractions (K,), got shape {h.shape}"
        )
    if not np.isfinite(h).all() or (h < 0).any() or abs(h.sum() - 1.0) > 1e-6:
        raise ValueError(
            "histogram must hold finite non-negative class fractions summing to 1, got "
            f"{h.tolist()}"
        )
    k = h.size
    if threshold is None:
        t = 0.25 / k
    else:
        t = float(threshold)
        if not np.isfinite(t):
            raise ValueError(f"threshold must be a finite number or None, got {threshold!r}")
    kl = float(_xlogy(h, h * k).sum())
    return {
        "missing": [int(i) for i in np.flatnonzero(h < t)],
        "kl_to_uniform": max(kl, 0.0),
        "fractions": [float(v) for v in h],
    }
