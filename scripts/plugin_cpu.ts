/**
 * The plugin's CPU, quicker and steadier than `deno task bench` for an A/B of
 * two commits: the real plugin (`scripts/bench/inspected.ts`: `deno run -A
 * main.ts start` with its V8 flags and environment, the inspector attached
 * but idle) against the Teleport test server and the benchmark's
 * smtp-server sink. After a warm-up it prints the CPU per request of N
 * requests × 3 recipients one at a time, then the CPU and wall time of a
 * few bursts of N at once; each CPU figure with its main thread's share (the
 * thread that bounds a burst). Only the plugin's process is counted, so the
 * other processes sharing the machine move it less than they move times.
 *
 *   deno run -A scripts/plugin_cpu.ts [--requests 300] [--bursts 4] [--warm 200]
 *     [--extra-v8-flags=--single-threaded-gc,...]
 */
import { parseArgs } from "node:util";
import { startInspected } from "./bench/inspected.ts";
import { cpuSeconds, mainThreadCpu } from "./bench/proc.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    requests: { type: "string", default: "300" },
    bursts: { type: "string", default: "4" },
    warm: { type: "string", default: "200" },
    /** V8 flags added to the ones the build embeds (e.g. `--single-threaded-gc`). */
    "extra-v8-flags": { type: "string", default: "" },
  },
});
const REQUESTS = Number(flags.requests);
const BURSTS = Number(flags.bursts);
const WARM = Number(flags.warm);
const EMAILS_PER_REQUEST = 3;

const plugin = await startInspected(undefined, flags["extra-v8-flags"]);
const { until, sent } = plugin;
const oneByOne = async (tag: string, n: number) => {
  for (let i = 0; i < n; i++) {
    const before = sent();
    plugin.request(tag, i);
    await until(`request ${tag}${i}'s emails`, () => sent() >= before + EMAILS_PER_REQUEST);
  }
};
try {
  await oneByOne("warm", WARM);
  const cpu0 = cpuSeconds(plugin.pid);
  const main0 = mainThreadCpu(plugin.pid);
  await oneByOne("seq", REQUESTS);
  const perRequest = (cpuSeconds(plugin.pid) - cpu0) * 1000 / REQUESTS;
  const mainPerRequest = (mainThreadCpu(plugin.pid) - main0) * 1000 / REQUESTS;
  console.log(
    `${REQUESTS} requests × 3 one at a time: ${perRequest.toFixed(2)} ms of CPU each ` +
      `(main thread ${mainPerRequest.toFixed(2)})`,
  );
  for (let round = 0; round < BURSTS; round++) {
    await new Promise((r) => setTimeout(r, 500));
    const before = sent();
    const cpu = cpuSeconds(plugin.pid);
    const main = mainThreadCpu(plugin.pid);
    const t0 = performance.now();
    for (let i = 0; i < REQUESTS; i++) plugin.request(`burst${round}-`, i);
    await until(
      `burst ${round}'s emails`,
      () => sent() >= before + REQUESTS * EMAILS_PER_REQUEST,
      600_000,
    );
    console.log(
      `burst ${round + 1} of ${REQUESTS}: CPU ${(cpuSeconds(plugin.pid) - cpu).toFixed(2)} s ` +
        `(main thread ${(mainThreadCpu(plugin.pid) - main).toFixed(2)} s), ` +
        `${((performance.now() - t0) / 1000).toFixed(2)} s`,
    );
  }
} finally {
  await plugin.stop();
}
