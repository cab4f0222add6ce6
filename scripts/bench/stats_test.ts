import assert from "node:assert/strict";
import { percentile } from "./stats.ts";

Deno.test("percentile: nearest rank, whatever the order of the samples", () => {
  const samples = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
  assert.equal(percentile(samples, 50), 5);
  assert.equal(percentile(samples, 90), 9);
  assert.equal(percentile(samples, 95), 10);
  assert.equal(percentile(samples, 0), 1);
  assert.equal(percentile([7], 99), 7);
  // The caller's array is left as it was.
  assert.deepEqual(samples, [5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
  assert.throws(() => percentile([], 50), /no samples/);
});
