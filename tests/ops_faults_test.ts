/**
 * Issue "Operations", faults: bursts of access requests while the auth
 * server is killed and restarted, while the SMTP server is down, while the
 * identity file is rotated every second, and with two replicas. Each test
 * checks that every expected email arrived exactly once: none missing, none
 * twice for the same (recipient, kind of email, request).
 */
import assert from "node:assert/strict";
import {
  capturedLogs,
  type Cluster,
  type ConfigOptions,
  eventually,
  type InProcessPlugin,
  runInProcess,
  SMTP_PASSWORD,
  SMTP_USER,
  startCluster,
  withTimeout,
} from "./harness.ts";
import { allMessages, expectEachOnce, expectedEmails, type Kind } from "./mailbox.ts";

/** Upper bound of one test; a hang fails instead of blocking the suite. */
const TEST_TIMEOUT_MS = 25_000;
/** Wait for every email of a burst once the fault is over. */
const MAIL_WAIT_MS = 15_000;

const OPS = "ops@example.com";
const REVIEWERS = ["alice.reviewer@example.com", "bob.reviewer@example.com"];
/** Every request goes to the `"*"` list and its two suggested reviewers. */
const RECIPIENTS = [OPS, ...REVIEWERS];

function fault(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `ops fault: ${name}`, fn: () => withTimeout(fn(), TEST_TIMEOUT_MS, name) });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a cluster, lets `before` prepare it, runs `plugins` in-process
 * plugins, runs `fn`, then stops the plugins (expecting exit 0) and tears
 * everything down.
 */
async function withPlugins(
  opts: {
    config?: ConfigOptions;
    plugins?: number;
    claimTtlMs?: number;
    before?: (c: Cluster) => Promise<void>;
  },
  fn: (c: Cluster, plugins: InProcessPlugin[]) => Promise<void>,
) {
  const cluster = await startCluster();
  const plugins: InProcessPlugin[] = [];
  try {
    await opts.before?.(cluster);
    const config = await cluster.writeConfig({ severity: "INFO", ...opts.config });
    for (let i = 0; i < (opts.plugins ?? 1); i++) {
      plugins.push(runInProcess(config, opts.claimTtlMs ? { claimTtlMs: opts.claimTtlMs } : {}));
    }
    await Promise.all(plugins.map((p) => p.ready));
    await fn(cluster, plugins);
    for (const plugin of plugins.splice(0)) assert.equal(await plugin.stop(), 0);
  } finally {
    await Promise.allSettled(plugins.map((p) => p.stop()));
    await cluster.close();
  }
}

/** Creates requests `from` … `to - 1`, each for the three `RECIPIENTS`; returns their ids. */
function burst(c: Cluster, from: number, to: number): string[] {
  const ids: string[] = [];
  for (let i = from; i < to; i++) {
    ids.push(
      c.teleport.createRequest({
        id: `req-${String(i).padStart(3, "0")}`,
        user: `user${i}`,
        roles: ["editor"],
        suggestedReviewers: REVIEWERS,
      }).Metadata!.Name!,
    );
  }
  return ids;
}

/** The emails owed for `ids`: a new-request email each, plus a resolution for the resolved. */
function owed(ids: readonly string[], resolved: ReadonlySet<string>): string[] {
  return ids.flatMap((id) => {
    const kinds: Kind[] = resolved.has(id) ? ["new", "resolution"] : ["new"];
    return expectedEmails(id, RECIPIENTS, kinds);
  });
}

/** Whether every recipient's thread of request `id` is recorded. */
function threaded(c: Cluster, id: string): boolean {
  const threads = c.teleport.pluginData(id)?.email_threads ?? "";
  return threads.split(",").length === RECIPIENTS.length;
}

/**
 * Approves each of `ids` once its threads are recorded, in order, adding it
 * to `resolved`. (A request resolved before its new-request email reached a
 * recipient opens no thread for them, by design: nothing is left to review.
 * Approving only threaded requests keeps the expected emails exact.)
 */
async function approveWhenThreaded(c: Cluster, ids: readonly string[], resolved: Set<string>) {
  for (const id of ids) {
    await eventually(() => threaded(c, id), MAIL_WAIT_MS, `threads of ${id}`);
    c.teleport.approve(id, "ok");
    resolved.add(id);
  }
}

/** Every request's progress is recorded: three threads, and the resolution where one is owed. */
async function expectRecorded(c: Cluster, ids: readonly string[], resolved: ReadonlySet<string>) {
  await eventually(
    () =>
      ids.every((id) => {
        const data = c.teleport.pluginData(id) ?? {};
        return (data.email_threads ?? "").split(",").length === RECIPIENTS.length &&
          (data.resolution ?? "") === (resolved.has(id) ? "APPROVED" : "") &&
          data.email_claim === undefined;
      }),
    5_000,
    "every request's threads and resolution recorded, claims released",
  );
}

// ---------------------------------------------------------------------------

fault("auth server killed and restarted during a burst of 100 requests", async () => {
  await withPlugins({}, async (c) => {
    const ids = burst(c, 0, 50);
    await c.smtp.waitFor(30, MAIL_WAIT_MS);
    await c.teleport.stop();
    // Changed in the backend while the plugin cannot reach the Auth Service.
    const resolved = new Set<string>();
    const early = ids.filter((id) => threaded(c, id)).slice(0, 5);
    assert.ok(early.length > 0, "some requests were fully sent before the stop");
    await approveWhenThreaded(c, early, resolved);
    await sleep(1_000);
    await c.teleport.restart();
    ids.push(...burst(c, 50, 100));
    assert.ok(c.smtp.messages.length < 250, "the restart came in the middle of the burst");
    await approveWhenThreaded(c, ids.filter((id, i) => i % 4 === 1 && !resolved.has(id)), resolved);
    await expectEachOnce(() => c.smtp.messages, owed(ids, resolved), MAIL_WAIT_MS);
    await expectRecorded(c, ids, resolved);
  });
});

fault("SMTP server down for 5 s during a burst: the sends ride over it", async () => {
  await withPlugins({}, async (c, [plugin]) => {
    const first = c.smtp;
    const ids = burst(c, 0, 60);
    await first.waitFor(20, MAIL_WAIT_MS);
    const restarted = c.restartSmtp(5_000);
    await sleep(500);
    // Their resolutions are due while the server is down.
    const resolved = new Set<string>();
    await approveWhenThreaded(c, ids.filter((id) => threaded(c, id)), resolved);
    assert.ok(resolved.size > 0, "some requests were fully sent before the outage");
    const second = await restarted;
    assert.notEqual(second, first);
    assert.equal(second.port, first.port);
    assert.ok(first.messages.length < 180, "the outage came in the middle of the burst");
    await approveWhenThreaded(c, ids.filter((id, i) => i % 3 === 0 && !resolved.has(id)), resolved);
    await expectEachOnce(() => allMessages([first, second]), owed(ids, resolved), MAIL_WAIT_MS);
    assert.ok(second.messages.length > 0, "the new server got the rest");
    assert.ok(
      capturedLogs.some((l) =>
        /Emails not sent yet \(try 1\)/.test(l) && l.includes(plugin!.owner)
      ),
      "the failed sends are logged",
    );
    await expectRecorded(c, ids, resolved);
  });
});

fault("identity file rotated every second during a burst", async () => {
  // Certificates that expire within a minute: each one is reconnected with
  // soon after it was loaded, so the rotation reaches the live connection.
  const lifetimeMs = 62_000;
  const writeIdentity = (c: Cluster) =>
    c.teleport.writeIdentity(c.identityPath, { notAfter: new Date(Date.now() + lifetimeMs) });
  await withPlugins({
    config: { refreshInterval: "1s" },
    before: async (c) => void await writeIdentity(c),
  }, async (c) => {
    let writing: Promise<unknown> = Promise.resolve();
    const rotation = setInterval(() => writing = writing.then(() => writeIdentity(c)), 1_000);
    try {
      const ids: string[] = [];
      const resolved = new Set<string>();
      const approving: Promise<void>[] = [];
      for (let wave = 0; wave < 4; wave++) {
        const created = burst(c, wave * 15, (wave + 1) * 15);
        ids.push(...created);
        approving.push(approveWhenThreaded(c, created.filter((_, i) => i % 3 === 0), resolved));
        await sleep(1_200);
      }
      await Promise.all(approving);
      await expectEachOnce(() => c.smtp.messages, owed(ids, resolved), MAIL_WAIT_MS);
      await expectRecorded(c, ids, resolved);
    } finally {
      clearInterval(rotation);
      await writing;
    }
    assert.ok(
      c.teleport.serialsSeen.length >= 3,
      `the server saw the rotated certificates (serials ${c.teleport.serialsSeen})`,
    );
  });
});

fault("two replicas during a burst; the busier one leaves half way", async () => {
  await withPlugins({ plugins: 2, claimTtlMs: 3_000 }, async (c, plugins) => {
    assert.notEqual(plugins[0]!.owner, plugins[1]!.owner);
    const sentBy = (p: InProcessPlugin) =>
      capturedLogs.filter((l) => l.includes("Sent new request email") && l.includes(p.owner))
        .length;
    const ids = burst(c, 0, 60);
    const resolved = new Set(ids.filter((_, i) => i % 2 === 0));
    for (const id of resolved) c.teleport.approve(id, "ok");
    await c.smtp.waitFor(60, MAIL_WAIT_MS);
    // A rolling restart: the replica doing the work leaves in the middle of
    // the burst (it finishes what it took); the other carries on.
    const [leaving, staying] = sentBy(plugins[0]!) >= sentBy(plugins[1]!)
      ? [plugins[0]!, plugins[1]!]
      : [plugins[1]!, plugins[0]!];
    const left = leaving.stop();
    assert.ok(c.smtp.messages.length < 240, "it leaves in the middle of the burst");
    // Created while it drains: only the other one takes them.
    ids.push(...burst(c, 60, 80));
    assert.equal(await left, 0);
    for (const id of ids.slice(60).filter((_, i) => i % 2 === 0)) {
      c.teleport.approve(id, "ok");
      resolved.add(id);
    }
    await expectEachOnce(() => c.smtp.messages, owed(ids, resolved), MAIL_WAIT_MS);
    await expectRecorded(c, ids, resolved);
    assert.ok(sentBy(leaving) > 0 && sentBy(staying) > 0, "both replicas sent emails");
  });
});

Deno.test("a relay that refuses the password for a while (535) delays the emails, none is given up on", async () => {
  // The fake relay reads the password it wants at each login.
  const smtpAuth = { username: SMTP_USER, password: SMTP_PASSWORD };
  const c = await startCluster({ smtp: { auth: smtpAuth } });
  try {
    const plugin = runInProcess(await c.writeConfig());
    await plugin.ready;
    smtpAuth.password = "rotated-on-the-relay";
    const id = c.teleport.createRequest({ user: "alice", roles: ["editor"] }).Metadata!.Name!;
    await eventually(() => c.smtp.authFailures.length >= 2, 10_000, "logins refused");
    // The relay's password is fixed: the email goes out, and nobody was recorded as failed.
    smtpAuth.password = SMTP_PASSWORD;
    await c.smtp.waitFor(1, MAIL_WAIT_MS);
    await eventually(
      () => !!c.teleport.pluginData(id)?.email_threads,
      5_000,
      "the thread recorded",
    );
    assert.equal(c.teleport.pluginData(id)?.email_failed, undefined);
    assert.equal(await plugin.stop(), 0);
  } finally {
    await c.close();
  }
});
