/**
 * `deno task bench`: the real plugin (a separate process, as operators run
 * it) against the Teleport test server and, one after another, three SMTP
 * servers the bench starts itself (`scripts/bench/servers.ts`): smtp-server
 * 3.13 (which triggers the delayed-ACK stall), aiosmtpd and Postfix from
 * Debian, all with STARTTLS (and AUTH but on Postfix). Per server it prints:
 *
 * - burst: N requests × 3 recipients created at once, time until the server
 *   accepted every email (as the client saw it: the plugin's "Sent … email"
 *   log line, the send resolving for the others), for the plugin, for the
 *   floor (the plugin's own emails, composed beforehand into raw messages by its code, straight
 *   into Nodemailer's pool below `sendMail`, as the plugin's mailer hands them over: 5
 *   connections, TCP_NODELAY on, the plugin's transport options) and for the Go plugin's strategy (the same emails, a
 *   new connection with TLS and AUTH per email, a request's emails one after
 *   another, 128 requests in flight);
 * - latency: one request at a time (the next once the plugin wrote the
 *   record of the one before), created → its 3rd email accepted,
 *   p50/p95/p99, for the plugin and the floor (3 emails sent at once): the
 *   first N after the start, then N more, warmed;
 * - plugin-data calls per request (UpdatePluginData, GetPluginData), one by
 *   one and in the burst;
 * - resident memory of the plugin process, idle and peak during the burst,
 *   with the anonymous part (the process's own) apart from mapped files'
 *   pages (under `deno run`, ~50 MiB of them are the Deno CLI's executable
 *   and caches), again once the plugin has been quiet long enough to give
 *   memory back, after the warm-up and after the burst; and the time from
 *   process start to "Plugin is ready";
 * - the CPU of each burst (the plugin's process and its main thread, the
 *   floor's), how long each main thread waited for a CPU in its burst
 *   (runnable, the CPUs taken by other threads: `/proc/…/schedstat`), the
 *   main thread's CPU per warmed one-by-one request (the plugin's includes
 *   the record written after its emails), and what a burst within the
 *   targets would leave the plugin (`cpuBudget`).
 *
 *   deno task bench [--requests N] [--quick] [--servers stall,aiosmtpd,postfix]
 *     [--teleport js|go] [--v8-flags=...] [--no-plugin-env]
 *
 * `--teleport go` puts a grpc-go stand-in (tests/teleport_go/, built with
 * `go`) in place of the tests' Teleport test server: the gRPC stack of a
 * real Teleport, in a process of its own.
 *
 * Needs Debian's python3-aiosmtpd and postfix for those two servers (a
 * server that cannot start is reported and skipped). Run it on a quiet
 * machine: every process shares the same CPUs.
 */
import { parseArgs } from "node:util";
import nodemailer from "nodemailer";
import { type Cluster, spawnPlugin, startCluster } from "../tests/harness.ts";
import { smtpTransportOptions } from "../src/mail/smtp.ts";
import { type PoolHandover, poolHandover } from "../src/mail/_smtp_pool_handover.ts";
import { messageComposer } from "../src/mail/compose.ts";
import { prepareEmail } from "../src/mail/mailer.ts";
import { messageIdGenerator } from "../src/mail/message_id.ts";
import { benchRequestMessage } from "./bench/emails.ts";
import type { SmtpConfig } from "../src/config/types.ts";
import { Secret } from "../src/lib/secret.ts";
import {
  type BenchSmtp,
  localhostTls,
  startAiosmtpd,
  startPostfix,
  startStallSink,
} from "./bench/servers.ts";
import {
  cpuSeconds,
  machineBusy,
  machineCpus,
  mainThreadCpu,
  mainThreadRunWait,
} from "./bench/proc.ts";
import { percentile, round } from "./bench/stats.ts";
import { buildGoTeleport, type GoTeleport, startGoTeleport } from "../tests/teleport_go.ts";
import { PLUGIN_ENV, PLUGIN_V8_FLAGS } from "./v8_flags.ts";
import { MEMORY_RELEASE_QUIET_MS } from "../src/lib/memory_release.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    requests: { type: "string" },
    servers: { type: "string", default: "stall,aiosmtpd,postfix" },
    /** V8 flags of the plugin process (default: the ones its build embeds). */
    "v8-flags": { type: "string" },
    /**
     * The Teleport the plugin talks to: `js`, the tests' Teleport test server (grpc-js under
     * Deno, in the bench's process), or `go`, a grpc-go stand-in in a process of its own
     * (tests/teleport_go/, built with `go`), the gRPC stack of a real Teleport.
     */
    teleport: { type: "string", default: "js" },
    /** Without the environment the unit and the image give the plugin (`PLUGIN_ENV`). */
    "no-plugin-env": { type: "boolean", default: false },
  },
});
if (flags.teleport !== "js" && flags.teleport !== "go") {
  throw new Error(`--teleport must be js or go, not "${flags.teleport}"`);
}
/** Requests of the burst (3 emails each); the latency phase creates twice as many one by one. */
const REQUESTS = Number(flags.requests ?? (flags.quick ? 50 : 300));
const RECIPIENTS_PER_REQUEST = 3;
/** Tries per email in the Go strategy. */
const GO_ATTEMPTS = 3;
/** Requests of the Go strategy in flight at once (the Go plugin's watcher limit). */
const GO_IN_FLIGHT = 128;
/** Plugin starts whose time to "Plugin is ready" is measured (the median is printed). */
const READY_STARTS = 5;
/** How often the plugin's memory is sampled. */
const RSS_SAMPLE_MS = 25;
/** How long after work the "settled" memory is read: past the plugin's release of memory. */
const SETTLE_MS = MEMORY_RELEASE_QUIET_MS + 2_000;
/** Longest wait for one phase. */
const PHASE_TIMEOUT_MS = 600_000;
/** How often the servers' counters are looked at while waiting. */
const POLL_MS = 1;
/** Longest wait for a request's record before the latency phase's next request. */
const RECORD_WAIT_MS = 1_000;
const SMTP_USER = "bench";
const SMTP_PASSWORD = "bench-Pa55word";
const SENDER = "Teleport <noreply@example.com>";
/** The Teleport test server's cluster name (and its proxy's public address). */
const CLUSTER_NAME = "teleport.example.com";

function stats(samples: number[]) {
  return {
    p50: round(percentile(samples, 50), 2),
    p95: round(percentile(samples, 95), 2),
    p99: round(percentile(samples, 99), 2),
  };
}

/**
 * Resident set size of a process, MiB, from /proc: now, its peak, and now's
 * split into anonymous memory (the process's own: heaps, stacks) and pages
 * of mapped files (the executable, Deno's cache databases), which are shared
 * and which the kernel may drop and read again.
 */
function rss(pid: number): { current: number; peak: number; anon: number; file: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
  return {
    current: kb("VmRSS") / 1024,
    peak: kb("VmHWM") / 1024,
    anon: kb("RssAnon") / 1024,
    file: kb("RssFile") / 1024,
  };
}

async function until(what: string, done: () => boolean, timeoutMs = PHASE_TIMEOUT_MS) {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

const nextMessageId = messageIdGenerator(SENDER);

/** Composes emails as the plugin's SMTP mailer does (a body shared by a request's emails). */
const compose = messageComposer(SENDER);

/** One of the plugin's emails, composed by its code: its envelope and raw message. */
interface BenchEmail {
  envelope: { from: string; to: string[] };
  raw: string;
}

/**
 * What the plugin gives Nodemailer for `count` emails of the bench's
 * requests, to `<tag><n>@example.com`: its built-in new-request email (text
 * and HTML, ~3 KB), one content per 3 recipients as one request's, composed
 * by its own code into raw messages. Built before the clock starts, so that
 * the floor and the Go strategy time Nodemailer and the server alone.
 */
async function pluginEmails(count: number, tag: string): Promise<BenchEmail[]> {
  const emails: BenchEmail[] = [];
  let content: ReturnType<typeof benchRequestMessage> | undefined;
  for (let i = 0; i < count; i++) {
    if (i % RECIPIENTS_PER_REQUEST === 0) {
      content = benchRequestMessage(crypto.randomUUID(), CLUSTER_NAME);
    }
    const prepared = prepareEmail({ to: `${tag}${i}@example.com`, ...content! });
    const { envelope, raw } = await compose(prepared, nextMessageId());
    emails.push({ envelope: { from: envelope.from, to: [...envelope.to] }, raw });
  }
  return emails;
}

/** The plugin's SMTP settings for `server` (what its config file says). */
function smtpConfigFor(server: BenchSmtp, caPem: string): SmtpConfig {
  return {
    kind: "smtp",
    host: "localhost",
    port: server.port,
    starttlsPolicy: "mandatory",
    ca: caPem,
    ...(server.auth ? { username: SMTP_USER, password: new Secret(SMTP_PASSWORD) } : {}),
  };
}

/**
 * Hands `emails` to the pool at once, below `sendMail` as the plugin's mailer does
 * (`_smtp_pool_handover.ts`); resolves when all were accepted.
 */
async function sendAll(handover: PoolHandover, emails: readonly BenchEmail[]) {
  await Promise.all(emails.map((email) => handover(email.envelope, email.raw, "", undefined)));
}

/** Seconds waited for a CPU between two `mainThreadRunWait` readings, if the kernel counts it. */
function waited(before: number | undefined, after: number | undefined): number | undefined {
  return before === undefined || after === undefined ? undefined : round(after - before, 2);
}

/** The floor: Nodemailer's pool with the plugin's options, burst and 3-at-once latency. */
async function floor(cfg: SmtpConfig) {
  const transport = nodemailer.createTransport(smtpTransportOptions(cfg, []));
  const handover = poolHandover(transport);
  if (handover === undefined) throw new Error("Nodemailer's pool takes no hand-over");
  try {
    await sendAll(handover, await pluginEmails(10, "warm"));
    // Each phase's emails are composed before it, so that the main thread's CPU over the
    // phase is the sending's alone.
    const phaseEmails = (round: number) =>
      Promise.all(
        Array.from(
          { length: REQUESTS },
          (_, i) => pluginEmails(RECIPIENTS_PER_REQUEST, `floor-l${round}-${i}-`),
        ),
      );
    const oneByOne = async (requests: BenchEmail[][]) => {
      const latencies: number[] = [];
      for (const emails of requests) {
        const t0 = performance.now();
        await sendAll(handover, emails);
        latencies.push(performance.now() - t0);
      }
      return stats(latencies);
    };
    const latency = await oneByOne(await phaseEmails(0));
    const second = await phaseEmails(1);
    const main0 = mainThreadCpu(Deno.pid);
    const warmed = await oneByOne(second);
    const warmedMainMs = (mainThreadCpu(Deno.pid) - main0) * 1000 / REQUESTS;
    const burst = await pluginEmails(REQUESTS * RECIPIENTS_PER_REQUEST, "floor-b");
    const cpu0 = cpuSeconds();
    const burstMain0 = mainThreadCpu(Deno.pid);
    const burstWait0 = mainThreadRunWait(Deno.pid);
    const busy = machineBusy();
    const t0 = performance.now();
    await sendAll(handover, burst);
    const burstMs = performance.now() - t0;
    const machine = busy();
    const cpu = {
      client: round(cpuSeconds() - cpu0, 2),
      client_main_thread: round(mainThreadCpu(Deno.pid) - burstMain0, 2),
      client_main_thread_waiting: waited(burstWait0, mainThreadRunWait(Deno.pid)),
      machine: machine.percent,
      machine_s: round(machine.seconds, 2),
    };
    return { burstMs, latency, warmed, warmedMainMs, cpu };
  } finally {
    transport.close();
  }
}

/** The Go plugin's strategy: a new connection (TLS, AUTH) per email, a request's emails in turn. */
async function goStrategy(cfg: SmtpConfig) {
  const options = { ...smtpTransportOptions(cfg, []), pool: false } as const;
  // A send that fails (Postfix under 128 new connections at once can leave one waiting past
  // the connection timeout) is tried again on a new connection, as the Go plugin retries.
  let retries = 0;
  const sendOne = async (email: BenchEmail) => {
    for (let attempt = 1;; attempt++) {
      const transport = nodemailer.createTransport(options);
      try {
        await transport.sendMail(email);
        return;
      } catch (error) {
        if (attempt >= GO_ATTEMPTS) throw error;
        retries++;
      } finally {
        transport.close();
      }
    }
  };
  const request = async (emails: readonly BenchEmail[]) => {
    for (const email of emails) await sendOne(email);
  };
  const latencies: number[] = [];
  for (let i = 0; i < Math.min(REQUESTS, 50); i++) {
    const emails = await pluginEmails(RECIPIENTS_PER_REQUEST, `go-l${i}-`);
    const t0 = performance.now();
    await request(emails);
    latencies.push(performance.now() - t0);
  }
  const requests = await Promise.all(
    Array.from({ length: REQUESTS }, (_, i) => pluginEmails(RECIPIENTS_PER_REQUEST, `go${i}-`)),
  );
  let next = 0;
  const cpu0 = cpuSeconds();
  const busy = machineBusy();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: GO_IN_FLIGHT }, async () => {
      while (next < REQUESTS) await request(requests[next++]!);
    }),
  );
  const burstMs = performance.now() - t0;
  const machine = busy();
  const cpu = {
    client: round(cpuSeconds() - cpu0, 2),
    machine: machine.percent,
    machine_s: round(machine.seconds, 2),
  };
  return { burstMs, latency: stats(latencies), retries, cpu };
}

/**
 * Where the plugin's Teleport is, what it counted, and the CPU its own process used so far
 * (seconds; undefined when it runs in the bench's process, whose CPU is counted apart).
 */
interface BenchTeleport {
  readonly addr: string;
  calls(): Promise<{ update: number; get: number }>;
  ownCpu(): number | undefined;
}

/** The tests' Teleport test server, in this process. */
function jsTeleport(cluster: Cluster): BenchTeleport {
  return {
    addr: cluster.teleport.addr,
    calls: () =>
      Promise.resolve({
        update: cluster.teleport.callCount("UpdatePluginData"),
        get: cluster.teleport.callCount("GetPluginData"),
      }),
    ownCpu: () => undefined,
  };
}

/** The grpc-go stand-in, fed with the test server's cluster. */
function goTeleport(go: GoTeleport): BenchTeleport {
  return {
    addr: go.addr,
    calls: async () => ({
      update: await go.callCount("UpdatePluginData"),
      get: await go.callCount("GetPluginData"),
    }),
    ownCpu: () => cpuSeconds(go.pid),
  };
}

/** The plugin as a separate process: ready time, latency, burst, plugin-data calls, memory. */
async function pluginRun(
  cluster: Cluster,
  teleport: BenchTeleport,
  server: BenchSmtp,
  cfg: SmtpConfig,
  dir: string,
) {
  const passwordFile = `${dir}/smtp_password`;
  await Deno.writeTextFile(passwordFile, SMTP_PASSWORD + "\n");
  await Deno.writeTextFile(`${dir}/smtp_ca.pem`, cfg.ca ?? "");
  const configPath = await cluster.writeConfig({
    addr: teleport.addr,
    severity: "INFO",
    smtpSection: [
      "[smtp]",
      `host = "${cfg.host}"`,
      `port = ${cfg.port}`,
      ...(server.auth ? [`username = "${SMTP_USER}"`, `password_file = "${passwordFile}"`] : []),
      `starttls_policy = "mandatory"`,
      `ca_file = "${dir}/smtp_ca.pem"`,
    ].join("\n"),
  });
  const v8Flags = flags["v8-flags"] ?? PLUGIN_V8_FLAGS;
  const spawn = () =>
    spawnPlugin(configPath, {
      NO_COLOR: "1",
      ...(flags["no-plugin-env"] ? {} : PLUGIN_ENV),
      ...(v8Flags === "" ? {} : { DENO_V8_FLAGS: v8Flags }),
    });
  // Start → ready varies by ±100 ms from one start to the next: the median of a few.
  const readyTimes: number[] = [];
  for (let i = 0; i < READY_STARTS - 1; i++) {
    const started = performance.now();
    const plugin = spawn();
    try {
      await plugin.waitFor(/Plugin is ready/, 60_000);
      readyTimes.push(performance.now() - started);
    } finally {
      plugin.child.kill("SIGTERM");
      await plugin.status;
    }
  }
  const serverBase = server.accepted();
  const started = performance.now();
  const plugin = spawn();
  try {
    await plugin.waitFor(/Plugin is ready/, 60_000);
    readyTimes.push(performance.now() - started);
    const readyMs = stats(readyTimes).p50;
    const pid = plugin.child.pid;
    const request = (i: number) =>
      cluster.teleport.createRequest({
        user: `user${i}@example.com`,
        roles: ["editor"],
        reason: "benchmark",
        suggestedReviewers: [`rev-a${i}@example.com`, `rev-b${i}@example.com`],
      });
    // An email counts once the plugin saw the server accept it (its "Sent … email" line), as
    // the floor's and the Go strategy's count once their send resolved. Lines are counted as
    // they arrive, not polled, so the plugin's figures carry no polling delay.
    const SENT_LINE = /Sent new request email to/g;
    const sofar = plugin.output();
    let sent = sofar.slice(0, sofar.lastIndexOf("\n") + 1).match(SENT_LINE)?.length ?? 0;
    let partial = sofar.slice(sofar.lastIndexOf("\n") + 1);
    let waiter: { count: number; resolve: () => void } | undefined;
    plugin.onOutput((piece) => {
      const text = partial + piece;
      const end = text.lastIndexOf("\n") + 1;
      sent += text.slice(0, end).match(SENT_LINE)?.length ?? 0;
      partial = text.slice(end);
      if (waiter && sent >= waiter.count) {
        waiter.resolve();
        waiter = undefined;
      }
    });
    let expected = sent;
    const arrived = (what: string, count: number) =>
      new Promise<void>((resolve, reject) => {
        if (sent >= count) return resolve();
        const timer = setTimeout(
          () => reject(new Error(`Timed out waiting for ${what}`)),
          PHASE_TIMEOUT_MS,
        );
        waiter = {
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
      });
    for (let i = 0; i < 5; i++) {
      request(-1 - i);
      expected += RECIPIENTS_PER_REQUEST;
      await arrived("the warm-up emails", expected);
    }
    await new Promise((r) => setTimeout(r, 1_000));
    const idle = rss(pid);
    // Again once the plugin has been quiet long enough to give memory back (it does once per
    // quiet stretch after work: src/lib/memory_release.ts), as a daemon idles most of the time.
    await new Promise((r) => setTimeout(r, SETTLE_MS - 1_000));
    const idleSettled = rss(pid);
    const calls = () => teleport.calls();
    const perRequest = async (before: { update: number; get: number }, n: number) => {
      const after = await calls();
      return {
        update: round((after.update - before.update) / n, 2),
        get: round((after.get - before.get) / n, 2),
      };
    };

    // Latency, one request at a time: the next is created once this one's record is written
    // too (its 2nd UpdatePluginData, or RECORD_WAIT_MS), so that no request's emails share the
    // plugin with the one before, as the floor's never do. Twice: the first REQUESTS after the
    // start (V8 is still optimising the code then: in a run of 1,000 against aiosmtpd, the
    // first 100 took ~1.5 ms longer than those from the 400th on), then as many again, warmed,
    // as a daemon that has been running a while answers.
    let before = await calls();
    const oneByOne = async (round: number) => {
      const latencies: number[] = [];
      for (let i = 0; i < REQUESTS; i++) {
        const t0 = performance.now();
        request(round * REQUESTS + i);
        expected += RECIPIENTS_PER_REQUEST;
        await arrived("a request's emails", expected);
        latencies.push(performance.now() - t0);
        const written = before.update + 2 * (round * REQUESTS + i + 1);
        const giveUp = performance.now() + RECORD_WAIT_MS;
        while ((await calls()).update < written && performance.now() < giveUp) {
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
      }
      return stats(latencies);
    };
    const latency = await oneByOne(0);
    const main0 = mainThreadCpu(pid);
    const warmed = await oneByOne(1);
    const warmedMainMs = (mainThreadCpu(pid) - main0) * 1000 / REQUESTS;
    await new Promise((r) => setTimeout(r, 500));
    const sequentialCalls = await perRequest(before, 2 * REQUESTS);

    // The burst.
    const atStart = rss(pid);
    let peak = atStart.current;
    let peakAnon = atStart.anon;
    const sampler = setInterval(() => {
      const now = rss(pid);
      peak = Math.max(peak, now.current);
      peakAnon = Math.max(peakAnon, now.anon);
    }, RSS_SAMPLE_MS);
    before = await calls();
    const cpu0 = {
      plugin: cpuSeconds(pid),
      pluginMain: mainThreadCpu(pid),
      pluginMainWait: mainThreadRunWait(pid),
      bench: cpuSeconds(),
      teleport: teleport.ownCpu(),
    };
    const busy = machineBusy();
    const t0 = performance.now();
    for (let i = 0; i < REQUESTS; i++) request(100_000 + i);
    expected += REQUESTS * RECIPIENTS_PER_REQUEST;
    await arrived("the burst's emails", expected);
    const burstMs = performance.now() - t0;
    const machine = busy();
    const burstCpu = {
      plugin: round(cpuSeconds(pid) - cpu0.plugin, 2),
      plugin_main_thread: round(mainThreadCpu(pid) - cpu0.pluginMain, 2),
      // Runnable but not running: what the other threads and processes took from it.
      plugin_main_thread_waiting: waited(cpu0.pluginMainWait, mainThreadRunWait(pid)),
      // The bench's process: it creates the requests, reads the plugin's output and samples its
      // memory, and holds the JS test server (or encodes the grpc-go stand-in's events).
      bench: round(cpuSeconds() - cpu0.bench, 2),
      ...(cpu0.teleport === undefined
        ? {}
        : { teleport_go: round(teleport.ownCpu()! - cpu0.teleport, 2) }),
      machine: machine.percent,
      machine_s: round(machine.seconds, 2),
    };
    await new Promise((r) => setTimeout(r, 1_000));
    clearInterval(sampler);
    const afterBurst = rss(pid);
    const burstCalls = await perRequest(before, REQUESTS);
    // The server's own count agrees: every email the plugin logged as sent arrived.
    await until(
      "the server to count every email",
      () => server.accepted() >= serverBase + sent,
      30_000,
    );
    await new Promise((r) => setTimeout(r, SETTLE_MS - (performance.now() - t0 - burstMs)));
    const afterBurstSettled = rss(pid);
    return {
      readyMs,
      latency,
      warmed,
      warmedMainMs,
      burstMs,
      burstCpu,
      calls: { sequential: sequentialCalls, burst: burstCalls },
      rss: {
        idle: round(idle.current),
        peak: round(Math.max(peak, rss(pid).peak)),
        idle_anon: round(idle.anon),
        idle_file: round(idle.file),
        peak_anon: round(peakAnon),
        // After the 2 × REQUESTS one by one, before the burst: what a daemon keeps as it runs.
        one_by_one: round(atStart.current),
        one_by_one_anon: round(atStart.anon),
        idle_settled: round(idleSettled.current),
        idle_settled_anon: round(idleSettled.anon),
        after_burst: round(afterBurst.current),
        after_burst_anon: round(afterBurst.anon),
        after_burst_settled: round(afterBurstSettled.current),
        after_burst_settled_anon: round(afterBurstSettled.anon),
      },
    };
  } finally {
    plugin.child.kill("SIGTERM");
    await plugin.status;
  }
}

/**
 * The CPU a burst within the targets would leave the plugin, on this machine:
 * a burst of 1.3× the floor's time (0.5× the Go strategy's) lasts that long,
 * in which the machine has that many seconds per CPU, less what everything
 * but the plugin used in the plugin's burst (the SMTP server taking its
 * emails, the Teleport, the bench's process), a fixed amount of work per
 * email and per request whatever the plugin's speed (what grows with time
 * instead, such as the bench's memory sampling, is counted for the plugin's
 * longer burst: the budget comes out a little low). The plugin hands the
 * same emails to the same Nodemailer pool as the floor, whose client CPU is
 * therefore the least it can use: a budget below it is out of reach here.
 * And whatever the machine leaves, the plugin's main thread (one thread,
 * where its JavaScript and Nodemailer's run) must fit its CPU into the
 * burst's duration, which is therefore given too.
 */
function cpuBudget(
  plugin: { burstCpu: { plugin: number; machine_s: number } },
  floorRun: { burstMs: number },
  goRun: { burstMs: number },
) {
  const cpus = machineCpus();
  const rest = plugin.burstCpu.machine_s - plugin.burstCpu.plugin;
  return {
    rest: round(rest, 2),
    // How long those bursts would last: the plugin's main thread, one thread, must fit its
    // CPU into that time whatever the machine leaves.
    burst_1_3x_floor_s: round(1.3 * floorRun.burstMs / 1000, 2),
    burst_half_go_s: round(0.5 * goRun.burstMs / 1000, 2),
    at_1_3x_floor: round(1.3 * floorRun.burstMs / 1000 * cpus - rest, 2),
    at_half_go: round(0.5 * goRun.burstMs / 1000 * cpus - rest, 2),
  };
}

const STARTERS: Record<string, (cert: string, key: string) => Promise<BenchSmtp>> = {
  stall: startStallSink,
  aiosmtpd: startAiosmtpd,
  postfix: startPostfix,
};

const dir = await Deno.makeTempDir({ prefix: "teleport-email-bench-" });
const { ca, certPath, keyPath } = await localhostTls("bench SMTP CA", dir);

const machine =
  `${Deno.build.target}, ${navigator.hardwareConcurrency} CPUs, deno ${Deno.version.deno}`;
console.log(`teleport-email benchmark: ${REQUESTS} requests × 3 recipients (${machine})`);
const pluginEnv = flags["no-plugin-env"]
  ? "none"
  : Object.entries(PLUGIN_ENV).map(([k, v]) => `${k}=${v}`).join(" ");
console.log(`plugin: V8 flags ${flags["v8-flags"] ?? PLUGIN_V8_FLAGS}; environment ${pluginEnv}`);
const goBin = flags.teleport === "go" ? await buildGoTeleport(dir) : undefined;
console.log(
  `Teleport: ${
    goBin
      ? "grpc-go stand-in (tests/teleport_go/)"
      : "the tests' test server (grpc-js, in the bench's process)"
  }`,
);
const results: Record<string, unknown> = {};
try {
  for (const name of flags.servers.split(",")) {
    const start = STARTERS[name];
    if (!start) throw new Error(`Unknown server "${name}" (stall, aiosmtpd, postfix)`);
    let server: BenchSmtp;
    try {
      server = await start(certPath, keyPath);
    } catch (error) {
      console.log(`\n${name}: skipped, it did not start (${(error as Error).message})`);
      continue;
    }
    // A cluster of its own per server: the plugin lists every request at startup.
    const cluster = await startCluster({ teleport: { listPageSize: 500 } });
    let go: GoTeleport | undefined;
    try {
      if (goBin) go = await startGoTeleport(goBin, cluster.teleport, dir);
      const cfg = smtpConfigFor(server, ca.cert);
      const floorRun = await floor(cfg);
      const goRun = await goStrategy(cfg);
      const plugin = await pluginRun(
        cluster,
        go ? goTeleport(go) : jsTeleport(cluster),
        server,
        cfg,
        dir,
      );
      const result = {
        server: server.name,
        ready_ms: round(plugin.readyMs, 0),
        burst_s: {
          plugin: round(plugin.burstMs / 1000, 2),
          floor: round(floorRun.burstMs / 1000, 2),
          go_strategy: round(goRun.burstMs / 1000, 2),
          plugin_to_floor: round(plugin.burstMs / floorRun.burstMs, 2),
          plugin_to_go: round(plugin.burstMs / goRun.burstMs, 2),
        },
        burst_cpu: { plugin: plugin.burstCpu, floor: floorRun.cpu, go_strategy: goRun.cpu },
        cpu_budget: cpuBudget(plugin, floorRun, goRun),
        latency_ms: {
          plugin: plugin.latency,
          floor: floorRun.latency,
          plugin_warmed: plugin.warmed,
          floor_warmed: floorRun.warmed,
          go_strategy: goRun.latency,
        },
        main_thread_cpu_ms_per_request_warmed: {
          plugin: round(plugin.warmedMainMs, 2),
          floor: round(floorRun.warmedMainMs, 2),
        },
        go_strategy_retries: goRun.retries,
        plugin_data_calls_per_request: plugin.calls,
        rss_mib: plugin.rss,
      };
      results[name] = result;
      const l = result.latency_ms;
      const rows: [string, string][] = [
        [`start → Plugin is ready (median of ${READY_STARTS})`, `${result.ready_ms} ms`],
        [
          "burst: plugin / floor / Go strategy",
          `${result.burst_s.plugin} / ${result.burst_s.floor} / ${result.burst_s.go_strategy} s`,
        ],
        [
          "burst ratio plugin/floor, plugin/Go",
          `${result.burst_s.plugin_to_floor}×, ${result.burst_s.plugin_to_go}×`,
        ],
        [
          `burst CPU s: plugin + bench process${go ? " + grpc-go" : ""} / floor`,
          `${plugin.burstCpu.plugin} + ${plugin.burstCpu.bench}${
            plugin.burstCpu.teleport_go === undefined ? "" : ` + ${plugin.burstCpu.teleport_go}`
          } s (machine ${plugin.burstCpu.machine}% busy)` +
          ` / ${floorRun.cpu.client} s (machine ${floorRun.cpu.machine}% busy)`,
        ],
        [
          "  of it on the main thread: plugin / floor",
          `${plugin.burstCpu.plugin_main_thread} / ${floorRun.cpu.client_main_thread} s`,
        ],
        [
          "  main thread waiting for a CPU: plugin / floor",
          `${plugin.burstCpu.plugin_main_thread_waiting ?? "n/a"} / ` +
          `${floorRun.cpu.client_main_thread_waiting ?? "n/a"} s`,
        ],
        [
          "a burst at 1.3× floor / 0.5× Go would last",
          `${result.cpu_budget.burst_1_3x_floor_s} / ${result.cpu_budget.burst_half_go_s} s ` +
          `(the plugin's main thread used ${plugin.burstCpu.plugin_main_thread} s in its burst)`,
        ],
        [
          "CPU s a burst at 1.3× floor / 0.5× Go leaves the plugin",
          `${result.cpu_budget.at_1_3x_floor} / ${result.cpu_budget.at_half_go} s ` +
          `(the rest of the machine used ${result.cpu_budget.rest}; ` +
          `the floor's Nodemailer ${floorRun.cpu.client}, the plugin ${plugin.burstCpu.plugin})`,
        ],
        ["latency plugin p50/p95/p99", `${l.plugin.p50} / ${l.plugin.p95} / ${l.plugin.p99} ms`],
        ["latency floor p50/p95/p99", `${l.floor.p50} / ${l.floor.p95} / ${l.floor.p99} ms`],
        [
          `latency warmed (${REQUESTS} more), p50/p95/p99: plugin; floor`,
          `${l.plugin_warmed.p50} / ${l.plugin_warmed.p95} / ${l.plugin_warmed.p99}; ` +
          `${l.floor_warmed.p50} / ${l.floor_warmed.p95} / ${l.floor_warmed.p99} ms`,
        ],
        [
          "latency p50 plugin/floor (after start; warmed)",
          `${round(l.plugin.p50 / l.floor.p50, 2)}×; ` +
          `${round(l.plugin_warmed.p50 / l.floor_warmed.p50, 2)}×`,
        ],
        [
          "main thread CPU per request, warmed 1 by 1: plugin / floor",
          `${result.main_thread_cpu_ms_per_request_warmed.plugin} / ` +
          `${result.main_thread_cpu_ms_per_request_warmed.floor} ms`,
        ],
        [
          "latency Go strategy p50 (sends tried again)",
          `${l.go_strategy.p50} ms (${goRun.retries})`,
        ],
        [
          "UpdatePluginData per request (1 by 1, burst)",
          `${plugin.calls.sequential.update}, ${plugin.calls.burst.update}`,
        ],
        [
          "GetPluginData per request (1 by 1, burst)",
          `${plugin.calls.sequential.get}, ${plugin.calls.burst.get}`,
        ],
        ["RSS idle / peak", `${result.rss_mib.idle} / ${result.rss_mib.peak} MiB`],
        [
          "  of which anonymous: idle / peak (sampled)",
          `${result.rss_mib.idle_anon} / ${result.rss_mib.peak_anon} MiB` +
          ` (idle file-backed ${result.rss_mib.idle_file} MiB)`,
        ],
        [
          `RSS after ${2 * REQUESTS} one by one (anonymous)`,
          `${result.rss_mib.one_by_one} MiB (${result.rss_mib.one_by_one_anon} MiB)`,
        ],
        [
          `RSS idle ${SETTLE_MS / 1000} s after the warm-up (anonymous)`,
          `${result.rss_mib.idle_settled} MiB (${result.rss_mib.idle_settled_anon} MiB)`,
        ],
        [
          `RSS 1 s / ${SETTLE_MS / 1000} s after the burst (anonymous)`,
          `${result.rss_mib.after_burst} / ${result.rss_mib.after_burst_settled} MiB (` +
          `${result.rss_mib.after_burst_anon} / ${result.rss_mib.after_burst_settled_anon} MiB)`,
        ],
      ];
      console.log(`\n${server.name} (port ${server.port}, AUTH ${server.auth ? "yes" : "no"})`);
      const width = Math.max(...rows.map((r) => r[0].length));
      for (const [key, value] of rows) console.log(`  ${key.padEnd(width)}  ${value}`);
    } finally {
      await server.stop();
      await go?.stop();
      await cluster.close();
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
console.log(
  "\n" +
    JSON.stringify({ machine, teleport: flags.teleport, requests: REQUESTS, results }, null, 2),
);
