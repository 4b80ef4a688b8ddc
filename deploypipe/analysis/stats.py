"""The statistics of a verdict: exact one-sided tests on failure shares and the Holm correction across them.

Two questions are asked of each scope (the whole service, and each path):

1. *Is the new release's failure share above what ``min_success_rate`` allows?*  An exact one-sided binomial test
   of H0: p_fail <= 1 - min_success_rate (:func:`exceeds_error_rate`). It is the same decision as "the
   one-sided Clopper-Pearson upper confidence bound of the success rate is below ``min_success_rate``"
   (:func:`success_upper_bound` gives that bound for messages). A healthy release with 0.5 % background 5xx
   and a small sample that happens to hold 2 errors (2 of 50 = 96 % observed) does not fail: P(X >= 2) under
   p = 1 % is 0.09, far from any significance level we use.

2. *Is it significantly worse than the previous release on the same service?*  Fisher's exact test, one-sided
   (alternative "greater" on the odds of failing, new vs baseline) on the 2x2 table
   [[new errors, new ok], [baseline errors, baseline ok]] (:func:`worse_than_baseline`). Why Fisher: it is exact
   at every sample size (no normal approximation, which breaks down at the 0-5 error counts this analysis lives
   on), its false-alarm rate is at most the significance level whatever the common background failure share is
   (conditioning on the total of errors removes that nuisance parameter), and it costs O(errors) per call, so it
   can run at every look on Render-sized counts. Boschloo's unconditional test is a little more powerful but
   needs a search over the nuisance parameter on an (n1+1)(n2+1) grid: too slow to repeat every interval on
   thousands of requests, and its extra power matters only near the limit where the binomial test above
   already decides. A Bayesian beta-binomial would need a prior and gives no false-alarm guarantee.

Both tests are discrete and therefore conservative: under background noise the real false-alarm rate is below
the nominal level. Many tests are run per look (overall and per path, two questions each) and looks repeat; the
family of one look is corrected with Holm's step-down method (:func:`holm`, valid under any dependence), and
the observation loop splits its significance across looks (a union bound). The numerics come from
``scipy.stats`` (``binomtest``, ``fisher_exact``, ``beta``), imported on first use because importing scipy
costs about a second.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

__all__ = ["exceeds_error_rate", "holm", "success_upper_bound", "worse_than_baseline"]

K = TypeVar("K", bound=Hashable)


def exceeds_error_rate(errors: int, requests: int, max_error_rate: float) -> float:
    """p-value of "the failure share is above ``max_error_rate``" (exact binomial, one-sided); 1.0 without data."""
    _check(errors, requests)
    if requests == 0 or errors == 0:
        return 1.0
    from scipy.stats import binomtest  # type: ignore[import-untyped]

    return float(binomtest(errors, requests, max_error_rate, alternative="greater").pvalue)


def success_upper_bound(errors: int, requests: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound of the success rate at ``confidence`` (1.0 without data)."""
    _check(errors, requests)
    if requests == 0 or errors == 0:
        return 1.0
    from scipy.stats import beta

    lowest_failure_share = float(beta.ppf(1 - confidence, errors, requests - errors + 1))
    return 1.0 - lowest_failure_share


def worse_than_baseline(errors: int, requests: int, baseline_errors: int, baseline_requests: int) -> float:
    """p-value of "the new failure share is above the baseline's" (Fisher's exact test, one-sided)."""
    _check(errors, requests)
    _check(baseline_errors, baseline_requests)
    if requests == 0 or baseline_requests == 0 or errors == 0:
        return 1.0
    from scipy.stats import fisher_exact

    table = [[errors, requests - errors], [baseline_errors, baseline_requests - baseline_errors]]
    return float(fisher_exact(table, alternative="greater").pvalue)


def holm(pvalues: Mapping[K, float]) -> dict[K, float]:
    """Holm-adjusted p-values (reject a hypothesis when its adjusted p-value is at most the level)."""
    ordered = sorted(pvalues.items(), key=lambda item: item[1])
    size = len(ordered)
    adjusted: dict[K, float] = {}
    running = 0.0
    for rank, (key, value) in enumerate(ordered):
        running = max(running, min(1.0, (size - rank) * value))
        adjusted[key] = running
    return adjusted


def _check(errors: int, requests: int) -> None:
    if not 0 <= errors <= requests:
        raise ValueError(f"{errors} errors of {requests} requests")
