"""One pair of activations over shared seeds: the paired t-test, the exact sign-flip test, two
one-sided tests for equivalence (TOST), the effect size d_z with its exact interval, and the seeds a
test would need for 80% power. SciPy supplies every distribution; `scipy.stats` is imported only
where a test needs it (about a second)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
SIGN_FLIP_MAX_N = 10  # the exact sign-flip test enumerates 2^n sign patterns
POWER = 0.8
MIN_SEEDS = 3  # a pair sharing fewer seeds is not tested: the seed-to-seed noise is unknown
MAX_SEEDS_ADVISED = 1000


def no_spread(x: np.ndarray) -> bool:
    """The values are all the same up to float rounding (differences of accuracies that are equal on
    paper differ by ~1e-17), where a standard deviation and everything built on it is meaningless."""
    return len(x) > 0 and float(np.ptp(x)) <= 1e-9 * max(1.0, float(np.max(np.abs(x))))



@dataclass(frozen=True)
class PairedTest:
    """The comparison of a against b over the seeds both have; differences are a − b. Statistics that
    are undefined for these differences (too few seeds, no spread) are None, never infinite."""

    a: str
    b: str
    n: int
    mean_diff: float | None
    sd_diff: float | None
    diff_ci_low: float | None  # 95% t interval of the mean difference
    diff_ci_high: float | None
    t: float | None
    p_t: float | None
    p_sign_flip: float | None  # exact sign-flip permutation test, n ≤ 10
    p_wilcoxon: float | None
    effect_dz: float | None  # Cohen's d_z: mean difference / std of the differences
    dz_ci_low: float | None
    dz_ci_high: float | None
    p_tost: float | None = None  # two one-sided tests against ±margin (accuracies only)
    tost_ci_low: float | None = None  # the 1 − 2α interval whose inclusion in ±margin TOST tests
    tost_ci_high: float | None = None
    p_decision: float | None = None  # the p-value that decides significance (t, or sign-flip without spread)
    decided_by: str | None = None  # which test gave p_decision: "t" or "sign_flip"
    tost_by: str | None = None  # which test gave p_tost: "t" (TOST), or "sign" (no spread: exact sign tests)
    p_decision_holm: float | None = None
    p_sign_flip_holm: float | None = None
    p_wilcoxon_holm: float | None = None
    p_tost_holm: float | None = None
    verdict: str = "not_tested"  # a_better, b_better, equivalent, inconclusive, not_tested
    significant: bool = False  # the difference is significant (also possible for an equivalent pair)
    rests_on_normality: bool = False  # significant by t, but the exact sign-flip test is not
    seeds_needed: int | None = None  # inconclusive pairs: seeds for 80% power (None: more than 1000)
    seeds_needed_range: tuple[int | None, int | None] | None = None  # the same at the ends of d_z's interval
    diff_ci_adj_low: float | None = None  # simultaneous interval: 1 − α/m over the m pairs tested (Bonferroni)
    diff_ci_adj_high: float | None = None
    adj_confidence: float | None = None


def sign_flip_p(d: np.ndarray) -> float | None:
    """Two-sided exact sign-flip permutation p-value of the mean difference (n ≤ 10), else None."""
    n = len(d)
    if n == 0 or n > SIGN_FLIP_MAX_N:
        return None
    if not np.any(np.round(d, 12)):
        return 1.0
    signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    means = np.abs(signs @ d) / n
    observed = abs(float(d.mean()))
    return float(np.mean(means >= observed * (1 - 1e-12)))


def dz_interval(t: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval of d_z from the noncentral t distribution of the paired t statistic, by
    inverting its cdf in the noncentrality. SciPy's noncentral t returns NaN far in a tail (with
    |t| ≈ 30 and 3 seeds, at noncentralities around −20); there the cdf's limit on that side (1 below
    t, 0 above) keeps the root search exact instead of falling back to an approximation."""
    from scipy import optimize
    from scipy import stats as sps

    df, tail = n - 1, (1 - confidence) / 2

    def cdf(nc: float) -> float:
        value = float(sps.nct.cdf(t, df, nc))
        if math.isfinite(value):
            return value
        upper = float(sps.nct.sf(t, df, nc))
        return 1.0 - upper if math.isfinite(upper) else (1.0 if nc < t else 0.0)

    def noncentrality(target: float) -> float:
        """The nc where cdf(nc) = target; cdf falls from 1 to 0 as nc rises."""
        step, lo, hi = 1.0, t, t
        while cdf(lo) <= target:
            lo, step = lo - step, 2 * step
        step = 1.0
        while cdf(hi) >= target:
            hi, step = hi + step, 2 * step
        return optimize.brentq(lambda nc: cdf(nc) - target, lo, hi, xtol=1e-10)

    return noncentrality(1 - tail) / math.sqrt(n), noncentrality(tail) / math.sqrt(n)


def tost(d: np.ndarray, margin: float, alpha: float = ALPHA) -> tuple[float, float, float] | None:
    """Two one-sided t-tests that the mean difference lies within ±margin: (p, interval low, high),
    the interval at 1 − 2α; None without spread."""
    from scipy import stats as sps

    n, mean = len(d), float(d.mean())
    if n < 2 or no_spread(d):
        return None
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    p = max(float(sps.t.sf((mean + margin) / se, n - 1)), float(sps.t.cdf((mean - margin) / se, n - 1)))
    low, high = sps.t.interval(1 - 2 * alpha, n - 1, loc=mean, scale=se)
    return p, float(low), float(high)


def paired_test(a: str, b: str, xa: list[float], xb: list[float], margin: float | None = None,
                confidence: float = 0.95) -> PairedTest:
    """Every statistic of a − b over seeds (both lists in seed order); verdicts come from `compare`."""
    d = np.asarray(xa, dtype=float) - np.asarray(xb, dtype=float)
    n = len(d)
    if n < 2:
        return PairedTest(a, b, n, float(d.mean()) if n else None, *[None] * 11)
    from scipy import stats as sps

    mean, sd = float(d.mean()), 0.0 if no_spread(d) else float(d.std(ddof=1))
    p_flip = sign_flip_p(d)
    p_w = 1.0 if no_spread(d) and not np.any(np.round(d, 12)) else float(sps.wilcoxon(xa, xb).pvalue)
    if sd == 0:  # no spread: t and d_z are undefined, and the sign-flip (here the sign) test decides;
        # equivalence then rests on the exact one-sided sign tests: every difference inside ±margin has
        # probability ½ⁿ under a median at the margin (p = 1 when the differences lie outside it)
        p_decision = p_flip if p_flip is not None else min(1.0, 2 * 0.5 ** n) if mean else 1.0
        p_tost = None if margin is None else 0.5 ** n if abs(mean) < margin else 1.0
        return PairedTest(a, b, n, mean, 0.0, None, None, None, None, p_flip, p_w, None, None, None,
                          p_tost=p_tost, p_decision=p_decision, decided_by="sign_flip",
                          tost_by=None if margin is None else "sign")
    res = sps.ttest_rel(xa, xb)
    t, p_t = float(res.statistic), float(res.pvalue)
    low, high = sps.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    dz_low, dz_high = dz_interval(t, n, confidence)
    equivalence = tost(d, margin) if margin is not None else None
    return PairedTest(a, b, n, mean, sd, float(low), float(high), t, p_t, p_flip, p_w, mean / sd, dz_low, dz_high,
                      *(equivalence or (None, None, None)), p_decision=p_t, decided_by="t",
                      tost_by="t" if equivalence else None)


def mean_and_interval(values: list[float] | np.ndarray, confidence: float) -> dict[str, float | None]:
    """{mean, ci_low, ci_high} of `values` (a t interval at `confidence`; None where there is none)."""
    values = np.asarray(values, dtype=float)
    interval = mean_interval(values, confidence)
    return {"mean": float(values.mean()) if len(values) else None, "ci_low": interval[0] if interval else None,
            "ci_high": interval[1] if interval else None}


def mean_interval(d: list[float] | np.ndarray, confidence: float) -> tuple[float, float] | None:
    """The t interval of the mean of `d` at `confidence`; None without spread or with under 2 values."""
    from scipy import stats as sps

    d = np.asarray(d, dtype=float)
    if len(d) < 2 or no_spread(d):
        return None
    scale = float(d.std(ddof=1)) / math.sqrt(len(d))
    low, high = sps.t.interval(confidence, len(d) - 1, loc=float(d.mean()), scale=scale)
    return float(low), float(high)


def seeds_for_power(dz: float | None, alpha: float, power: float = POWER) -> int | None:
    """The fewest seeds at which a two-sided paired t-test at `alpha` has `power` against an effect of
    size `dz`; None when more than `MAX_SEEDS_ADVISED` (or no effect) would be needed."""
    from scipy import stats as sps

    if dz is None or not math.isfinite(dz) or dz == 0:
        return None

    def enough(n: int) -> bool:
        df, nc = n - 1, abs(dz) * math.sqrt(n)
        crit = sps.t.ppf(1 - alpha / 2, df)
        upper, lower = (float(v) for v in (sps.nct.sf(crit, df, nc), sps.nct.cdf(-crit, df, nc)))
        return (upper if math.isfinite(upper) else 1.0) + (lower if math.isfinite(lower) else 0.0) >= power

    if not enough(MAX_SEEDS_ADVISED):
        return None
    lo, hi = MIN_SEEDS, MAX_SEEDS_ADVISED
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid + 1, hi)
    return lo
