/**
 * Where the plugin's CPU and allocations go in a burst: runs the real plugin
 * (`deno run -A main.ts start`, the V8 flags its build embeds, `--inspect`
 * on a free loopback port) against the Teleport test server and the
 * benchmark's smtp-server sink, creates N requests × 3 recipients at once,
 * and over that burst takes a CPU profile and a sampling allocation profile
 * through the V8 inspector. Prints both by part (npm package, project file,
 * Deno's node compatibility layer, the runtime itself), plus the plugin's
 * CPU time by thread (the main thread, V8's workers, the profiler's), its
 * GC count and time (`--trace-gc`) and its heap after the burst.
 *
 *   deno run -A scripts/profile_burst.ts [--requests 300] [--top 25]
 *     [--detail npm:nodemailer] [--v8-flags=--max-semi-space-size=4,...]
 *     [--one-by-one] [--save burst.cpuprofile]
 *
 * `--one-by-one` sends the N requests one at a time instead (the next once
 * the one before has its emails), as the benchmark's latency is measured:
 * what a request costs with nothing to share its work with.
 *
 * Self time, not total: a function's own samples (its calls into the
 * runtime included, the JavaScript it calls excluded). Run it on a quiet
 * machine.
 */
import { parseArgs } from "node:util";
import {
  type AllocNode,
  type CallFrame,
  functionName,
  isOwnPart,
  partOf,
  startInspected,
  table as printTable,
} from "./bench/inspected.ts";
import { cpuSeconds, threadCpuSeconds } from "./bench/proc.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    requests: { type: "string", default: "300" },
    top: { type: "string", default: "25" },
    /** The plugin's V8 flags (default: the ones its build embeds); `--trace-gc` is added. */
    "v8-flags": { type: "string" },
    /** Also list the functions of one part (e.g. npm:nodemailer) by CPU and by allocations. */
    detail: { type: "string" },
    /** The requests one at a time, not at once. */
    "one-by-one": { type: "boolean", default: false },
    /** Also write the CPU profile (Chrome DevTools' .cpuprofile format) to this file. */
    save: { type: "string" },
  },
});
const REQUESTS = Number(flags.requests);
const TOP = Number(flags.top);
/** CPU profile sampling interval, µs. */
const CPU_SAMPLE_US = 250;
/** Allocation sampling interval, bytes (V8's default is 32 KiB). */
const ALLOC_SAMPLE_BYTES = 8 * 1024;

interface CpuNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: CpuNode[];
  /** The node of each sample, in order. */
  samples: number[];
  /** µs from the sample before (the first: from `startTime`). */
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/**
 * The time each node was seen running, µs: each sample stands for the time
 * until the next one (the last, until the end). V8 samples less often than
 * asked on a busy machine (480–495 µs apart at the 250 µs asked, here), so
 * counting samples times the interval would under-count. It is wall time:
 * a thread that waits for a CPU in the middle of JavaScript counts as
 * running, so the total can be a little more than the thread's CPU.
 */
function timeByNode(profile: CpuProfile): Map<number, number> {
  const time = new Map<number, number>();
  let at = profile.startTime;
  const stamps = profile.timeDeltas.map((d) => (at += d));
  for (let i = 0; i < profile.samples.length; i++) {
    const next = i + 1 < stamps.length ? stamps[i + 1]! : profile.endTime;
    const node = profile.samples[i]!;
    time.set(node, (time.get(node) ?? 0) + Math.max(0, next - stamps[i]!));
  }
  return time;
}

function table(title: string, rows: Map<string, number>, unit: (n: number) => string) {
  printTable(title, rows, unit, TOP);
}

const plugin = await startInspected(flags["v8-flags"], "--trace-gc");
const { inspector, until, sent } = plugin;

try {
  // Warm up as the benchmark does: a few requests, one at a time.
  for (let i = 0; i < 20; i++) {
    const before = sent();
    plugin.request("warm", i);
    await until("a warm-up request's emails", () => sent() >= before + 3);
  }
  await inspector.send("Profiler.enable");
  await inspector.send("Profiler.setSamplingInterval", { interval: CPU_SAMPLE_US });
  await inspector.send("HeapProfiler.enable");
  const gcMark = plugin.stdout().length;
  const cpu0 = cpuSeconds(plugin.pid);
  const threads0 = threadCpuSeconds(plugin.pid);
  await inspector.send("Profiler.start");
  // Every allocation, also what the garbage collector took again before the end.
  await inspector.send("HeapProfiler.startSampling", {
    samplingInterval: ALLOC_SAMPLE_BYTES,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  const base = sent();
  const t0 = performance.now();
  if (flags["one-by-one"]) {
    for (let i = 0; i < REQUESTS; i++) {
      const before = sent();
      plugin.request("user", i);
      await until(`request ${i}'s emails`, () => sent() >= before + 3);
    }
  } else {
    for (let i = 0; i < REQUESTS; i++) plugin.request("user", i);
    await until("the burst's emails", () => sent() >= base + REQUESTS * 3, 600_000);
  }
  const burstMs = performance.now() - t0;
  const cpu = cpuSeconds(plugin.pid) - cpu0;
  const threads1 = threadCpuSeconds(plugin.pid);
  const { profile: alloc } = await inspector.send<{ profile: { head: AllocNode } }>(
    "HeapProfiler.stopSampling",
  );
  const { profile } = await inspector.send<{ profile: CpuProfile }>("Profiler.stop");
  if (flags.save) await Deno.writeTextFile(flags.save, JSON.stringify(profile));
  const heap = await inspector.send<{ usedSize: number; totalSize: number }>(
    "Runtime.getHeapUsage",
  );

  console.log(
    `${REQUESTS} requests × 3 emails${flags["one-by-one"] ? ", one at a time" : ""}: ${
      (burstMs / 1000).toFixed(2)
    } s, plugin CPU ${cpu.toFixed(2)} s (${(cpu * 1000 / REQUESTS).toFixed(2)} ms per request)`,
  );
  // Threads of the same name together (V8 has several workers); those that did nothing left out.
  const byName = new Map<string, { seconds: number; count: number }>();
  for (const [tid, { name, seconds }] of threads1) {
    const used = seconds - (threads0.get(tid)?.seconds ?? 0);
    if (used <= 0) continue;
    const group = byName.get(name) ?? { seconds: 0, count: 0 };
    group.seconds += used;
    group.count++;
    byName.set(name, group);
  }
  console.log(
    `  CPU by thread: ${
      [...byName].sort((a, b) => b[1].seconds - a[1].seconds)
        .map(([name, g]) =>
          `${name}${g.count > 1 ? ` (×${g.count})` : ""} ${g.seconds.toFixed(2)} s`
        )
        .join(", ")
    }`,
  );
  const gcLines = plugin.stdout().slice(gcMark).split("\n");
  for (const kind of ["Scavenge", "Mark-Compact"]) {
    const lines = gcLines.filter((l) => l.includes(kind));
    const ms = lines.reduce((a, l) => a + Number(/, ([0-9.]+) \/ [0-9.]+ ms/.exec(l)?.[1] ?? 0), 0);
    console.log(`  GC ${kind}: ${lines.length} in the burst, ${ms.toFixed(0)} ms pause in all`);
  }
  console.log(
    `  heap after the burst: ${(heap.usedSize / 2 ** 20).toFixed(1)} MiB used of ${
      (heap.totalSize / 2 ** 20).toFixed(1)
    } MiB`,
  );

  const seen = timeByNode(profile);
  const usPerRequest = (us: number) => `${(us / 1000 / REQUESTS).toFixed(3)} ms/req`;
  const cpuByPart = new Map<string, number>();
  for (const node of profile.nodes) {
    const us = seen.get(node.id) ?? 0;
    if (us === 0) continue;
    const part = partOf(node.callFrame);
    cpuByPart.set(part, (cpuByPart.get(part) ?? 0) + us);
  }
  cpuByPart.delete("(idle)");
  const busyUs = [...cpuByPart.values()].reduce((a, b) => a + b, 0);
  console.log(
    `  the profile: ${profile.samples.length} samples, ${
      ((profile.endTime - profile.startTime) / profile.samples.length).toFixed(0)
    } µs apart on average (asked: ${CPU_SAMPLE_US}); the main thread seen running (wall time, waits for a CPU included) ${
      (busyUs / 1e6).toFixed(2)
    } s`,
  );
  table("CPU self time by part (idle left out)", cpuByPart, usPerRequest);

  // The same samples, each given to the nearest caller that is a package or a project file:
  // what the runtime's node layer, builtins and GC did on whose behalf.
  const parent = new Map<number, CpuNode>();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  for (const node of profile.nodes) {
    for (const c of node.children ?? []) parent.set(c, node);
  }
  const owner = (node: CpuNode): string => {
    for (let n: CpuNode | undefined = node; n; n = parent.get(n.id)) {
      const part = partOf(n.callFrame);
      if (isOwnPart(part)) return part;
    }
    return partOf(node.callFrame);
  };
  const cpuByOwner = new Map<string, number>();
  for (const node of byId.values()) {
    const us = seen.get(node.id) ?? 0;
    if (us === 0 || node.callFrame.functionName === "(idle)") continue;
    const part = owner(node);
    cpuByOwner.set(part, (cpuByOwner.get(part) ?? 0) + us);
  }
  table(
    "CPU by the package or file whose call it served (runtime and node layer folded in)",
    cpuByOwner,
    usPerRequest,
  );

  // Allocations, each given to the nearest package or project file on its stack.
  const allocByOwner = new Map<string, number>();
  const walk = (node: AllocNode, inherited: string) => {
    const part = partOf(node.callFrame);
    const mine = isOwnPart(part) ? part : inherited;
    allocByOwner.set(mine, (allocByOwner.get(mine) ?? 0) + node.selfSize);
    for (const c of node.children) walk(c, mine);
  };
  walk(alloc.head, "(runtime)");
  if (flags.detail) {
    const fn = (f: CallFrame) => functionName(f);
    const allocFns = new Map<string, number>();
    const walkFn = (node: AllocNode, inherited: string | undefined) => {
      const mine = partOf(node.callFrame) === flags.detail ? fn(node.callFrame) : inherited;
      if (mine) allocFns.set(mine, (allocFns.get(mine) ?? 0) + node.selfSize);
      for (const c of node.children) walkFn(c, mine);
    };
    walkFn(alloc.head, undefined);
    table(
      `Allocations under ${flags.detail}, by its innermost function`,
      allocFns,
      (n) => `${(n / 1024 / REQUESTS).toFixed(1)} KiB/req`,
    );
    const cpuFns = new Map<string, number>();
    for (const node of byId.values()) {
      const us = seen.get(node.id) ?? 0;
      if (us === 0) continue;
      for (let n: CpuNode | undefined = node; n; n = parent.get(n.id)) {
        if (partOf(n.callFrame) === flags.detail) {
          const k = fn(n.callFrame);
          cpuFns.set(k, (cpuFns.get(k) ?? 0) + us);
          break;
        }
      }
    }
    table(`CPU under ${flags.detail}, by its innermost function`, cpuFns, usPerRequest);
  }
  table(
    "Allocations by the package or file that asked (sampled; collected ones included)",
    allocByOwner,
    (n) => `${(n / 1024 / REQUESTS).toFixed(1)} KiB/req`,
  );
} finally {
  await plugin.stop();
}
