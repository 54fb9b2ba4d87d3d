"""Benchmark toll-free rating: 1 000 000 random caller numbers against 100 000 random prefixes (seeded).

Usage: .venv/bin/python bench/rating.py [--prefixes N] [--calls N] [--seed S]
Prints the table build time, the rating time and calls per second. A benchmark, not a timed test.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vpbx.billing.rating import PrefixTable, call_cost


def make_prefixes(rng: random.Random, count: int) -> list[tuple[str, int]]:
    """`count` distinct prefixes of 2-7 digits (mostly 4-6, like real rate decks), prices 0.10-9.99 per minute."""
    lengths = [2, 3, 4, 5, 6, 7]
    weights = [1, 10, 30, 35, 20, 4]
    seen: dict[str, int] = {}
    while len(seen) < count:
        n = rng.choices(lengths, weights)[0]
        prefix = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(n - 1))
        seen.setdefault(prefix, rng.randint(10, 999))
    return list(seen.items())


def make_callers(rng: random.Random, prefixes: list[tuple[str, int]], count: int) -> list[str]:
    """`count` 11-digit E.164 callers; half extend a known prefix (a hit is guaranteed), half are fully random."""
    callers = []
    for i in range(count):
        head = rng.choice(prefixes)[0] if i % 2 == 0 else str(rng.randint(1, 9))
        callers.append("+" + head + "".join(rng.choice("0123456789") for _ in range(11 - len(head))))
    return callers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    prefixes = make_prefixes(rng, args.prefixes)
    callers = make_callers(rng, prefixes, args.calls)
    durations = [rng.randint(0, 1800) for _ in range(args.calls)]
    print(f"generated {len(prefixes):,} prefixes and {len(callers):,} calls in {time.perf_counter() - t0:.2f} s "
          f"(seed {args.seed})")

    t0 = time.perf_counter()
    table = PrefixTable(prefixes)
    build = time.perf_counter() - t0
    print(f"build:  {build:.3f} s for {len(table):,} prefixes")

    t0 = time.perf_counter()
    lookup = table.lookup
    matched = 0
    for number in callers:
        if lookup(number) is not None:
            matched += 1
    rate = time.perf_counter() - t0
    print(f"lookup: {rate:.3f} s for {len(callers):,} calls = {len(callers) / rate:,.0f} calls/s ({matched:,} matched)")

    t0 = time.perf_counter()
    revenue = 0
    for number, seconds in zip(callers, durations, strict=True):
        hit = lookup(number)
        if hit is not None:
            revenue += call_cost(hit[1], seconds, 60)
    full = time.perf_counter() - t0
    print(f"rating: {full:.3f} s for {len(callers):,} calls (lookup + per-minute cost) = "
          f"{len(callers) / full:,.0f} calls/s; total {revenue:,} minor units")


if __name__ == "__main__":
    main()
