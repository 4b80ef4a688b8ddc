"""The statistics of a verdict, in the standard library: binomial tails, confidence bounds and an e-process.

Every failure decision is one sequential test of "the share of bad requests (5xx, or slower than a threshold) of
one scope is at most ``p0``", taken at every look. The test statistic is a mixture likelihood ratio (a mixture
SPRT, Robbins 1970) over the requests ``n`` seen so far, ``x`` of them bad::

    E(x, n) = integral over p in (p0, 1] of  p^x (1-p)^(n-x) / (p0^x (1-p0)^(n-x))  dPrior(p)

with the prior Beta(1, b) restricted to (p0, 1] and ``b = max(1, round(1 / (2 p0)))`` (its mass sits around
a few times ``p0``). Under any true share ``p <= p0`` each ratio, hence the mixture, is a nonnegative
supermartingale with start 1, so by Ville's inequality P(E ever reaches 1/alpha) <= alpha: rejecting when
``E >= 1 / alpha`` keeps the false-alarm chance at ``alpha`` however many looks are taken, and in whatever
order the requests' outcomes are revealed (late data included). With integer Beta parameters the integral is
exact: ``B(1+x, b+n-x) P(Bin(n+b, p0) <= x) / (B(1, b) (1-p0)^b L(p0))`` (:func:`log_e_value`).

``p0`` comes from the baseline: :func:`upper_bound` is the one-sided Clopper-Pearson upper confidence bound of a
binomial share (the true share is above it with probability at most ``alpha``), and :func:`quantile_upper_index`
picks the order statistic of the baseline's latencies that is above the true quantile with probability at least
``1 - alpha`` (distribution-free). Binomial tails are summed in log space from the side where they are small, so
they are exact to floating point for the counts this analysis sees (up to millions of requests).
"""

from __future__ import annotations

import math
from functools import lru_cache

__all__ = ["binom_cdf", "binom_sf", "log_e_value", "prior_b", "quantile_upper_index", "rejects", "upper_bound"]

_TINY = 1e-13


def _log_pmf(k: int, n: int, p: float) -> float:
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def _tail(start: int, stop: int, step: int, n: int, p: float) -> float:
    """Sum of the pmf from ``start`` towards ``stop`` (inclusive) while the terms still matter."""
    total, k = 0.0, start
    while (step > 0 and k <= stop) or (step < 0 and k >= stop):
        term = math.exp(_log_pmf(k, n, p))
        total += term
        if term < total * _TINY:
            break
        k += step
    return total


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Bin(n, p)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if k > n * p:
        return min(1.0, _tail(k, n, 1, n, p))
    return max(0.0, 1.0 - _tail(k - 1, 0, -1, n, p))


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Bin(n, p)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    if k < n * p:
        return min(1.0, _tail(k, 0, -1, n, p))
    return max(0.0, 1.0 - _tail(k + 1, n, 1, n, p))


@lru_cache(maxsize=4096)
def upper_bound(errors: int, requests: int, alpha: float) -> float:
    """One-sided Clopper-Pearson upper bound of a binomial share: P(Bin(n, u) <= x) = alpha (1.0 without data)."""
    _check(errors, requests)
    if requests == 0 or errors == requests:
        return 1.0
    low, high = errors / requests, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if binom_cdf(errors, requests, middle) > alpha:
            low = middle
        else:
            high = middle
    return high


@lru_cache(maxsize=4096)
def quantile_upper_index(count: int, quantile: float, alpha: float) -> int | None:
    """The rank k (1-based) whose order statistic of ``count`` values is >= the true ``quantile`` with
    probability >= 1 - alpha: the smallest k with P(Bin(count, quantile) >= k) <= alpha; None when even the
    largest value is not enough (too few values)."""
    mean = count * quantile
    k = max(1, math.floor(mean))
    while k <= count and binom_sf(k, count, quantile) > alpha:
        k += 1
    return k if k <= count else None


def prior_b(p0: float) -> int:
    """The second parameter of the Beta(1, b) mixing prior for the null share ``p0``."""
    return max(1, round(1 / (2 * p0)))


def log_e_value(bad: int, total: int, p0: float) -> float:
    """log E(x, n) of the one-sided beta-binomial mixture against "share <= p0" (0.0 when nothing points up)."""
    _check(bad, total)
    if total == 0 or bad <= total * p0 or not 0.0 < p0 < 1.0:
        return 0.0
    b = prior_b(p0)
    log_beta_post = math.lgamma(1 + bad) + math.lgamma(b + total - bad) - math.lgamma(1 + b + total)
    log_beta_prior = -math.log(b)  # B(1, b) = 1 / b
    above = binom_cdf(bad, total + b, p0)  # mass of the posterior above p0 (I_{p0}(1+x, b+n-x) complement)
    if above <= 0.0:
        return 0.0
    log_null = bad * math.log(p0) + (total - bad) * math.log1p(-p0)
    return log_beta_post + math.log(above) - log_beta_prior - b * math.log1p(-p0) - log_null


def rejects(bad: int, total: int, p0: float, alpha: float) -> bool:
    """True when the e-process against "share <= p0" has reached 1/alpha (a false alarm has chance <= alpha)."""
    return log_e_value(bad, total, p0) >= -math.log(alpha)


def _check(errors: int, requests: int) -> None:
    if not 0 <= errors <= requests:
        raise ValueError(f"{errors} errors of {requests} requests")
