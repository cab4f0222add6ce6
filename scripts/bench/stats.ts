/** Percentiles for the benchmarks and reproductions, one definition for all of them. */

/**
 * The `p`th percentile (0–100) of `samples` by nearest rank: the smallest
 * sample with at least p % of them at or below it. `samples` need not be
 * sorted; it is not changed.
 */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new Error("no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[
    Math.max(0, Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1))
  ]!;
}

/** `n` rounded to `digits` decimals. */
export const round = (n: number, digits = 1): number => Number(n.toFixed(digits));
