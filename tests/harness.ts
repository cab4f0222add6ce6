/**
 * End-to-end harness: a Teleport test cluster (gRPC + mutual TLS), a real
 * SMTP server with STARTTLS and AUTH, a config file pointing at both, and
 * the plugin run either in this process (`runPlugin`, fast) or as a child
 * process (`deno run main.ts start`, for signals and kills).
 */
import { fileURLToPath } from "node:url";
import { configureSync, getLogger, type LogRecord, resetSync } from "@logtape/logtape";
import { TeleportTestServer, type TeleportTestServerOptions } from "./teleport_server.ts";
import {
  type FakeSmtpOptions,
  type FakeSmtpServer,
  type ReceivedMessage,
  startSmtpServer,
} from "./smtp_server.ts";
import { issueCert, makeCa, type Pem } from "./pki.ts";
import { loadConfigSync } from "../src/config/load.ts";
import { runPlugin } from "../src/plugin/run.ts";
import { createSmtpMailer } from "../src/mail/smtp.ts";
import { createMailgunMailer } from "../src/mail/mailgun.ts";
import { defaultIdentityFs } from "../src/teleport/identity_store.ts";
import { formatTextLine, ROOT_CATEGORY } from "../src/lib/log.ts";
import { Activity } from "../src/lib/activity.ts";
import type { Clock, FakeClock } from "../src/lib/clock.ts";
import type { BackoffOptions } from "../src/lib/backoff.ts";

export const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
export const SMTP_USER = "teleport";
export const SMTP_PASSWORD = "smtp-secret-Pa55";
export const SENDER = "Teleport <noreply@example.com>";
/** `restartSmtp`: time for the answers already written to reach the client before the cut. */
const SMTP_FLUSH_MS = 100;
/** `restartSmtp`: how long binding the old port may be retried (the OS may hold it briefly). */
const SMTP_REBIND_TIMEOUT_MS = 3_000;

export interface Cluster {
  readonly teleport: TeleportTestServer;
  /** The SMTP server now serving (a new one after `restartSmtp`). */
  readonly smtp: FakeSmtpServer;
  readonly dir: string;
  readonly identityPath: string;
  readonly smtpCa: Pem;
  /** Writes a config file (SMTP mailer unless `mailer` says otherwise) and returns its path. */
  writeConfig(o?: ConfigOptions): Promise<string>;
  /**
   * Takes the SMTP server down for `downMs` (connections refused), then
   * starts a new one on the same port with the same TLS and AUTH; resolves
   * with the new one (also `smtp` from then on). Messages whose DATA was
   * not answered yet when it went down are dropped, never accepted, so no
   * message counts as accepted that the client did not see accepted.
   */
  restartSmtp(downMs: number): Promise<FakeSmtpServer>;
  close(): Promise<void>;
}

export interface ConfigOptions {
  name?: string;
  /** Extra TOML appended as is (e.g. a [mailgun] section). */
  extra?: string;
  /** Replace the [smtp] section (e.g. by "" for a Mailgun config). */
  smtpSection?: string;
  roleToRecipients?: Record<string, string[]>;
  refreshInterval?: string;
  /** `log.severity`; default DEBUG. */
  severity?: string;
  addr?: string;
  /** `delivery.notify_requester`; unset: the key is not written. */
  notifyRequester?: boolean;
}

export async function startCluster(
  opts: { teleport?: TeleportTestServerOptions; smtp?: Partial<FakeSmtpOptions> } = {},
): Promise<Cluster> {
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-e2e-" });
  const teleport = await TeleportTestServer.start({ keyType: "ec", ...opts.teleport });
  const smtpCa = await makeCa("SMTP test CA", { keyType: "ec" });
  const smtpCert = await issueCert(smtpCa, {
    commonName: "localhost",
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    usage: "server",
    keyType: "ec",
  });
  const smtpOptions: FakeSmtpOptions = {
    tls: smtpCert,
    auth: { username: SMTP_USER, password: SMTP_PASSWORD },
    ...opts.smtp,
  };
  let smtp = await startSmtpServer(smtpOptions);
  const identityPath = `${dir}/identity`;
  await teleport.writeIdentity(identityPath);
  await Deno.writeTextFile(`${dir}/smtp_password`, SMTP_PASSWORD + "\n", { mode: 0o600 });
  await Deno.writeTextFile(`${dir}/smtp_ca.pem`, smtpCa.cert);

  return {
    teleport,
    get smtp() {
      return smtp;
    },
    dir,
    identityPath,
    smtpCa,
    async writeConfig(o: ConfigOptions = {}) {
      const roles = o.roleToRecipients ?? { "*": ["ops@example.com"] };
      const smtpSection = o.smtpSection ?? [
        "[smtp]",
        `host = "localhost"`,
        `port = ${smtp.port}`,
        `username = "${SMTP_USER}"`,
        `password_file = "${dir}/smtp_password"`,
        `starttls_policy = "mandatory"`,
        `ca_file = "${dir}/smtp_ca.pem"`,
      ].join("\n");
      const text = [
        "[teleport]",
        `addr = "${o.addr ?? teleport.addr}"`,
        `identity = "${identityPath}"`,
        `refresh_identity = true`,
        `refresh_identity_interval = "${o.refreshInterval ?? "1m"}"`,
        "",
        smtpSection,
        "",
        "[delivery]",
        `sender = "${SENDER}"`,
        ...(o.notifyRequester === undefined ? [] : [`notify_requester = ${o.notifyRequester}`]),
        "",
        "[role_to_recipients]",
        ...Object.entries(roles).map(([role, list]) => `"${role}" = ${JSON.stringify(list)}`),
        "",
        "[log]",
        `severity = "${o.severity ?? "DEBUG"}"`,
        o.extra ?? "",
      ].join("\n");
      const path = `${dir}/${o.name ?? "teleport-email"}.toml`;
      await Deno.writeTextFile(path, text);
      return path;
    },
    async restartSmtp(downMs: number) {
      const old = smtp;
      // Hold every answer to DATA, let the answers already given reach the
      // client, then cut: what was held dies with its connection.
      old.stall(["*"]);
      await new Promise((r) => setTimeout(r, SMTP_FLUSH_MS));
      await old.close();
      await new Promise((r) => setTimeout(r, downMs));
      const deadline = Date.now() + SMTP_REBIND_TIMEOUT_MS;
      for (;;) {
        try {
          smtp = await startSmtpServer({ ...smtpOptions, port: old.port });
          return smtp;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((r) => setTimeout(r, 25));
        }
      }
    },
    async close() {
      teleport.close();
      await smtp.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Log lines written by in-process plugins (all of them share LogTape). */
export const capturedLogs: string[] = [];
let logsConfigured = false;

function captureLogs() {
  if (logsConfigured) return;
  logsConfigured = true;
  resetSync();
  configureSync({
    reset: true,
    sinks: {
      memory: (record: LogRecord) => {
        capturedLogs.push(formatTextLine(record));
        if (Deno.env.get("E2E_LOGS")) console.error(formatTextLine(record).trimEnd());
      },
    },
    loggers: [
      { category: [ROOT_CATEGORY], sinks: ["memory"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
}

export interface InProcessPlugin {
  readonly owner: string;
  /** The status listener's `host:port`, once it listens (pending without `[status]`). */
  readonly statusAddr: Promise<string>;
  /** Resolves when "Plugin is ready" was logged. */
  readonly ready: Promise<void>;
  /**
   * Resolves once the plugin has nothing under way: no event or reconcile
   * being handled, no retry waiting, no reminder check running.
   */
  settled(): Promise<void>;
  /** Counts what the plugin is doing and what waits for a timer. */
  readonly activity: Activity;
  /** Stops gracefully and resolves with the exit code. */
  stop(): Promise<number>;
  /** Resolves with the exit code (or rejects with the startup error). */
  readonly done: Promise<number>;
}

/** In-process plugins started and not yet stopped (see `inProcessSettled`). */
const live = new Set<InProcessPlugin>();

/**
 * Resolves once every in-process plugin that runs has nothing under way
 * (the "nothing more is coming" of exactly-once assertions, without waiting
 * for a quiet period).
 */
export async function inProcessSettled(): Promise<void> {
  await Promise.all([...live].map((p) => p.settled()));
}

/** Runs the plugin in this process with fast retries; stop it before the test ends. */
export function runInProcess(
  configPath: string,
  o: {
    owner?: string;
    claimTtlMs?: number;
    readyTimeoutMs?: number;
    /** The notifier's clock (reminders, claims, retries); default the system clock. */
    clock?: Clock;
    /** How often due reminders are looked for; default the plugin's. */
    reminderCheckMs?: number;
    /** The process environment the plugin sees; default none. */
    env?: Record<string, string>;
    /** Backoff of emails that failed for now; default 50–200 ms. */
    sendRetry?: BackoffOptions;
    /** Gives memory back once the plugin has been quiet after work; default none. */
    releaseMemory?: () => void;
  } = {},
): InProcessPlugin {
  captureLogs();
  const { config } = loadConfigSync(configPath);
  const stop = new AbortController();
  const owner = o.owner ?? `test/${crypto.randomUUID().slice(0, 8)}`;
  const activity = new Activity();
  let markReady!: () => void;
  const readyPromise = new Promise<void>((resolve) => (markReady = resolve));
  let markListening!: (addr: string) => void;
  const statusAddr = new Promise<string>((resolve) => (markListening = resolve));
  const done = runPlugin(config, {
    env: o.env ?? {},
    identityFs: defaultIdentityFs(),
    createMailer: (c) =>
      c.mailer.kind === "smtp"
        ? createSmtpMailer(c.mailer, c.delivery.sender)
        : createMailgunMailer(c.mailer, c.delivery.sender, {
          healthCheckTo: c.roleToRecipients["*"] ?? [],
        }),
    onReload: () => {},
    log: getLogger([ROOT_CATEGORY]).with({ owner }),
    owner,
    onReady: markReady,
    onStatusListening: markListening,
    sendRetry: o.sendRetry ?? { baseMs: 50, capMs: 200 },
    requestRetry: { baseMs: 200, capMs: 1_000 },
    ...(o.claimTtlMs ? { claimTtlMs: o.claimTtlMs } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
    activity,
    ...(o.reminderCheckMs ? { reminderCheckMs: o.reminderCheckMs } : {}),
    ...(o.releaseMemory ? { releaseMemory: o.releaseMemory } : {}),
  }, stop.signal);
  const timeout = o.readyTimeoutMs ?? 15_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ready = Promise.race([
    readyPromise,
    done.then((code) => {
      throw new Error(`Plugin exited with ${code} before it was ready`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Plugin not ready within ${timeout} ms`)), timeout);
    }),
  ]).finally(() => clearTimeout(timer));
  const plugin: InProcessPlugin = {
    owner,
    statusAddr,
    ready,
    done,
    settled: () => activity.idle(),
    activity,
    stop: () => {
      stop.abort(new Error("test stop"));
      return done;
    },
  };
  live.add(plugin);
  done.then(() => live.delete(plugin), () => live.delete(plugin));
  return plugin;
}

export interface ChildPlugin {
  readonly child: Deno.ChildProcess;
  /** Everything written to stderr so far. */
  output(): string;
  /** Resolves once a stderr line matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Calls `listener` with each piece of stderr as it arrives (the benchmark counts lines so). */
  onOutput(listener: (text: string) => void): void;
  readonly status: Promise<Deno.CommandStatus>;
}

/** Spawns `deno run -A main.ts start -c <config>` as an operator would run it. */
export function spawnPlugin(configPath: string, env: Record<string, string> = {}): ChildPlugin {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "start", "-c", configPath],
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  /** What follows the last line end so far (pieces search only this and themselves). */
  let tail = "";
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  const listeners: ((text: string) => void)[] = [];
  const pump = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      const piece = decoder.decode(chunk, { stream: true });
      // Only the lines this piece added or ended are looked at: searching the whole output
      // (even for its last line end, which flattens the string `+=` builds) on every piece
      // costs the benchmark's process time quadratic in the plugin's output.
      const fresh = tail + piece;
      tail = fresh.slice(fresh.lastIndexOf("\n") + 1);
      text += piece;
      for (const listener of listeners) listener(piece);
      for (const w of [...waiters]) {
        if (w.pattern.test(fresh)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    }
  })();
  const status = Promise.all([child.status, pump]).then(([s]) => s);
  return {
    child,
    output: () => text,
    onOutput: (listener) => void listeners.push(listener),
    status,
    waitFor(pattern, timeoutMs = 20_000) {
      if (pattern.test(text)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`No line matching ${pattern} within ${timeoutMs} ms:\n${text}`));
        }, timeoutMs);
        const w = {
          pattern,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        waiters.push(w);
        status.then(() => {
          if (waiters.includes(w)) {
            clearTimeout(timer);
            reject(new Error(`Plugin exited before a line matched ${pattern}:\n${text}`));
          }
        });
      });
    },
  };
}

/** Teardown of a child plugin: SIGKILL unless it is gone already, then its exit. */
export async function killPlugin(plugin: ChildPlugin): Promise<void> {
  try {
    plugin.child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
  await plugin.status;
}

/** Polls until `condition` holds. */
export async function eventually(condition: () => boolean, timeoutMs = 10_000, what = "condition") {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Settles like `promise`, or rejects once `ms` passed: bounds a test in time. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`"${what}" took more than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Fake-clock timers a move may have to fire before the plugins settle. */
const MAX_TIMERS_PER_MOVE = 100;

/**
 * Moves the plugins' fake clock to `at` as after a suspend (each due check
 * runs once) and waits until every plugin has finished what that started,
 * moving the clock on to the next timer while one only waits for a timer (a
 * replica retrying after another's claim).
 */
export async function moveTo(clock: FakeClock, at: number, plugins: readonly InProcessPlugin[]) {
  await clock.skip(at - clock.now());
  for (let i = 0; i < MAX_TIMERS_PER_MOVE; i++) {
    await Promise.all(plugins.map((p) => p.activity.idle(false)));
    if (plugins.every((p) => p.activity.waiting === 0)) return;
    await clock.next();
  }
  throw new Error(`The plugins did not settle within ${MAX_TIMERS_PER_MOVE} timers`);
}

/**
 * Waits until the mailbox holds `total` messages and `plugins` have nothing
 * left to do, checks it holds exactly that many, and returns the new ones
 * (after `from`) as `describe` puts them, sorted.
 */
export async function expectMailbox(
  smtp: FakeSmtpServer,
  plugins: readonly InProcessPlugin[],
  from: number,
  total: number,
  describe: (m: ReceivedMessage) => string,
  timeoutMs = 5_000,
): Promise<string[]> {
  await smtp.waitFor(total, timeoutMs);
  await Promise.all(plugins.map((p) => p.settled()));
  const got = smtp.messages.slice(from).map(describe).sort();
  if (smtp.messages.length !== total) {
    throw new Error(
      `Expected exactly ${total} emails, got ${smtp.messages.length}; new ones: ${got}`,
    );
  }
  return got;
}
