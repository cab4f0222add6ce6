/**
 * `deno task bench`: measures the real plugin (a separate process, as
 * operators run it) against the Teleport test server and a real SMTP server
 * (STARTTLS + AUTH) on loopback, and prints a table and JSON:
 *
 * - latency: request created → last of its 3 emails accepted, p50/p95/p99
 *   over LATENCY_REQUESTS requests created one by one;
 * - burst: BURST_REQUESTS × 3 emails, time until all arrived, emails/s, and
 *   the floor of this stack: the same number of messages sent straight
 *   through nodemailer's pooled transport to the same server in the same run;
 * - peak resident memory of the plugin process, idle and during the burst;
 * - time from process start to "Plugin is ready".
 *
 * Sizes can be lowered for a quick look: `deno task bench --quick`.
 */
import nodemailer from "nodemailer";
import { spawnPlugin, startCluster } from "../tests/harness.ts";
import { loadConfig } from "../src/config/load.ts";
import { smtpTransportOptions, systemTrustedCas } from "../src/mail/smtp.ts";

const quick = Deno.args.includes("--quick");
/** Requests created one by one for the latency figures. */
const LATENCY_REQUESTS = quick ? 30 : 300;
/** Requests created at once for the throughput figures (3 emails each). */
const BURST_REQUESTS = quick ? 100 : 1_000;
/** How often the plugin's memory is sampled. */
const RSS_SAMPLE_MS = 50;
const RECIPIENTS_PER_REQUEST = 3;

function percentile(sorted: number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

/** Resident set size of a process, MiB (current and peak), from /proc. */
function rss(pid: number): { current: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
  return { current: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}

const round = (n: number, digits = 1) => Number(n.toFixed(digits));

const cluster = await startCluster({ teleport: { listPageSize: 500 } });
const configPath = await cluster.writeConfig({ severity: "INFO" });
const started = performance.now();
const plugin = spawnPlugin(configPath, { NO_COLOR: "1" });
try {
  await plugin.waitFor(/Plugin is ready/, 60_000);
  const readyMs = performance.now() - started;
  // The deno process is the one running main.ts (spawned directly).
  const pid = plugin.child.pid;
  await new Promise((r) => setTimeout(r, 1_000));
  const idle = rss(pid);

  const request = (i: number) =>
    cluster.teleport.createRequest({
      user: `user${i}@example.com`,
      roles: ["editor"],
      reason: "benchmark",
      suggestedReviewers: [`rev-a${i}@example.com`, `rev-b${i}@example.com`],
    });

  // Warm-up: opens the pooled SMTP connections.
  let expected = cluster.smtp.messages.length;
  for (let i = 0; i < 5; i++) {
    request(-1 - i);
    expected += RECIPIENTS_PER_REQUEST;
    await cluster.smtp.waitFor(expected, 10_000);
  }

  // 1. Latency, one request at a time.
  const latencies: number[] = [];
  for (let i = 0; i < LATENCY_REQUESTS; i++) {
    const t0 = performance.now();
    request(i);
    expected += RECIPIENTS_PER_REQUEST;
    await cluster.smtp.waitFor(expected, 10_000);
    latencies.push(performance.now() - t0);
  }
  latencies.sort((a, b) => a - b);

  // 2. Burst through the plugin.
  let peakDuringBurst = 0;
  const sampler = setInterval(() => {
    peakDuringBurst = Math.max(peakDuringBurst, rss(pid).current);
  }, RSS_SAMPLE_MS);
  const burstStart = performance.now();
  for (let i = 0; i < BURST_REQUESTS; i++) request(10_000 + i);
  expected += BURST_REQUESTS * RECIPIENTS_PER_REQUEST;
  await cluster.smtp.waitFor(expected, 600_000);
  const burstMs = performance.now() - burstStart;
  clearInterval(sampler);
  peakDuringBurst = Math.max(peakDuringBurst, rss(pid).peak);

  // 3. The floor: the same number of messages straight through nodemailer's pool.
  const { config } = loadConfig(configPath);
  if (config.mailer.kind !== "smtp") throw new Error("bench needs an SMTP config");
  const transport = nodemailer.createTransport(
    smtpTransportOptions(config.mailer, systemTrustedCas()),
  );
  const sample = cluster.smtp.messages.at(-1)!;
  const floorCount = BURST_REQUESTS * RECIPIENTS_PER_REQUEST;
  const floorStart = performance.now();
  await Promise.all(
    Array.from({ length: floorCount }, (_, i) =>
      transport.sendMail({
        from: config.delivery.sender,
        to: `floor${i}@example.com`,
        subject: sample.header("Subject") ?? "floor",
        text: sample.text ?? "",
        html: sample.html ?? "",
      })),
  );
  const floorMs = performance.now() - floorStart;
  transport.close();

  const results = {
    machine:
      `${Deno.build.target}, ${navigator.hardwareConcurrency} CPUs, deno ${Deno.version.deno}`,
    ready_ms: round(readyMs, 0),
    latency_ms: {
      requests: LATENCY_REQUESTS,
      p50: round(percentile(latencies, 50)),
      p95: round(percentile(latencies, 95)),
      p99: round(percentile(latencies, 99)),
    },
    burst: {
      requests: BURST_REQUESTS,
      emails: BURST_REQUESTS * RECIPIENTS_PER_REQUEST,
      plugin_s: round(burstMs / 1000, 2),
      plugin_emails_per_s: round(floorCount / (burstMs / 1000), 0),
      floor_s: round(floorMs / 1000, 2),
      floor_emails_per_s: round(floorCount / (floorMs / 1000), 0),
      ratio_plugin_to_floor: round(burstMs / floorMs, 2),
    },
    rss_mib: { idle: round(idle.current), peak_during_burst: round(peakDuringBurst) },
  };
  const rows: [string, string, string][] = [
    ["start → Plugin is ready", `${results.ready_ms} ms`, "≤ 1000 ms"],
    [
      `latency p50 / p95 / p99 (${LATENCY_REQUESTS} requests)`,
      `${results.latency_ms.p50} / ${results.latency_ms.p95} / ${results.latency_ms.p99} ms`,
      "p99 ≤ 100 ms",
    ],
    [
      `burst ${BURST_REQUESTS} × 3 emails via the plugin`,
      `${results.burst.plugin_s} s (${results.burst.plugin_emails_per_s}/s)`,
      "",
    ],
    [
      "same emails straight through nodemailer's pool",
      `${results.burst.floor_s} s (${results.burst.floor_emails_per_s}/s)`,
      "",
    ],
    ["ratio plugin / floor", `${results.burst.ratio_plugin_to_floor}×`, "≤ 1.5×"],
    ["RSS idle", `${results.rss_mib.idle} MiB`, "≤ 100 MB"],
    ["RSS peak during the burst", `${results.rss_mib.peak_during_burst} MiB`, ""],
  ];
  console.log(`\nteleport-email benchmark (${results.machine})\n`);
  const width = Math.max(...rows.map((r) => r[0].length));
  for (const [name, value, target] of rows) {
    console.log(`${name.padEnd(width)}  ${value.padEnd(26)} ${target}`);
  }
  console.log("\n" + JSON.stringify(results, null, 2));
} finally {
  plugin.child.kill("SIGTERM");
  await plugin.status;
  await cluster.close();
}
