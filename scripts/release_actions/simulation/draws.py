"""Random counts and lognormal latency without numpy, for the simulated traffic."""

from __future__ import annotations

import math
import random

_Z99 = 2.3263478740408408  # standard normal quantile at 0.99


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam < 30:
        # Knuth: exact, and cheap at the small means of a 1-second bucket.
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= limit:
                return k
            k += 1
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1 - p)
    if n < 64:
        return sum(rng.random() < p for _ in range(n))
    mean = n * p
    if mean * (1 - p) < 10:
        return min(n, poisson(rng, mean))
    return min(n, max(0, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))


# -- latency: a lognormal per track ------------------------------------------------------


def lognormal(p50: float, p99: float) -> tuple[float, float]:
    return math.log(p50), (math.log(p99) - math.log(p50)) / _Z99


def mixture_cdf(x: float, parts: list[tuple[float, float, float]]) -> float:
    lx = math.log(x)
    return sum(w * 0.5 * (1 + math.erf((lx - mu) / (s * math.sqrt(2)))) for w, mu, s in parts)


def mixture_pdf(x: float, parts: list[tuple[float, float, float]]) -> float:
    lx = math.log(x)
    return sum(
        w * math.exp(-((lx - mu) ** 2) / (2 * s * s)) / (x * s * math.sqrt(2 * math.pi))
        for w, mu, s in parts
    )


def mixture_quantile(q: float, parts: list[tuple[float, float, float]]) -> float:
    """Quantile of a weighted mixture of lognormals ``(weight, mu, sigma)``, by bisection."""
    lo = min(mu - 8 * s for _, mu, s in parts)
    hi = max(mu + 8 * s for _, mu, s in parts)
    for _ in range(60):
        mid = (lo + hi) / 2
        if mixture_cdf(math.exp(mid), parts) < q:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)
