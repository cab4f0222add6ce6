/**
 * What the plugin keeps as it runs: after a warm-up, N requests × 3
 * recipients one at a time against the real plugin under the V8 inspector
 * (the Teleport test server, the benchmark's smtp-server sink), with V8's
 * sampling heap profiler keeping only what is still alive. Prints the live
 * heap after a full garbage collection before and after, its growth per
 * request, and what the surviving allocations were by part (npm package,
 * project file, runtime) and by stack.
 *
 *   deno run -A scripts/heap_growth.ts [--requests 3000] [--top 15]
 *     [--v8-flags=--max-semi-space-size=1,...]
 *
 * A part that keeps growing with N holds something per request; a bounded
 * cache shows up as a fixed amount once it is full (`#seen` at 10,000 ids,
 * 64 bodies, 512 header lines).
 */
import { parseArgs } from "node:util";
import {
  type AllocNode,
  functionName,
  isOwnPart,
  partOf,
  startInspected,
  table,
} from "./bench/inspected.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    requests: { type: "string", default: "3000" },
    top: { type: "string", default: "15" },
    "v8-flags": { type: "string" },
  },
});
const REQUESTS = Number(flags.requests);
const TOP = Number(flags.top);
/** Sampling interval, bytes: small, for the few KiB a request may leave behind. */
const SAMPLE_BYTES = 1024;
const MIB = 2 ** 20;

const plugin = await startInspected(flags["v8-flags"]);
const { inspector, until, sent } = plugin;
const liveHeap = async () => {
  await inspector.send("HeapProfiler.collectGarbage");
  await inspector.send("HeapProfiler.collectGarbage");
  return (await inspector.send<{ usedSize: number }>("Runtime.getHeapUsage")).usedSize;
};
const oneByOne = async (tag: string, n: number) => {
  for (let i = 0; i < n; i++) {
    const before = sent();
    plugin.request(tag, i);
    await until(`request ${tag}${i}'s emails`, () => sent() >= before + 3);
  }
};

try {
  await oneByOne("warm", 50);
  await inspector.send("HeapProfiler.enable");
  const before = await liveHeap();
  await inspector.send("HeapProfiler.startSampling", {
    samplingInterval: SAMPLE_BYTES,
    includeObjectsCollectedByMajorGC: false,
    includeObjectsCollectedByMinorGC: false,
  });
  const half = Math.floor(REQUESTS / 2);
  await oneByOne("first", half);
  const middle = await liveHeap();
  await oneByOne("second", REQUESTS - half);
  const after = await liveHeap();
  const { profile } = await inspector.send<{ profile: { head: AllocNode } }>(
    "HeapProfiler.getSamplingProfile",
  );
  await inspector.send("HeapProfiler.stopSampling");

  const perRequest = (from: number, to: number, n: number) => `${((to - from) / n).toFixed(0)} B`;
  console.log(
    `${REQUESTS} requests × 3 emails one by one: live heap ${(before / MIB).toFixed(2)} → ${
      (middle / MIB).toFixed(2)
    } (after ${half}) → ${(after / MIB).toFixed(2)} MiB; per request: ${
      perRequest(before, middle, half)
    } in the first half, ${perRequest(middle, after, REQUESTS - half)} in the second`,
  );

  const byPart = new Map<string, number>();
  const byStack = new Map<string, number>();
  const walk = (node: AllocNode, owner: string, stack: readonly string[]) => {
    const part = partOf(node.callFrame);
    const mine = isOwnPart(part) ? part : owner;
    const frames = [...stack, functionName(node.callFrame)];
    if (node.selfSize > 0) {
      byPart.set(mine, (byPart.get(mine) ?? 0) + node.selfSize);
      const key = frames.slice(-4).reverse().join(" < ");
      byStack.set(key, (byStack.get(key) ?? 0) + node.selfSize);
    }
    for (const c of node.children) walk(c, mine, frames);
  };
  walk(profile.head, "(runtime)", []);
  const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
  table("Still alive at the end, by the package or file that allocated it", byPart, kib, TOP);
  table("Still alive at the end, by stack (innermost first)", byStack, kib, TOP);
} finally {
  await plugin.stop();
}
