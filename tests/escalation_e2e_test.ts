/**
 * Issue 15 end to end: escalation of requests nobody reviews and warnings
 * before granted access ends, with the plugin in this process against the
 * Teleport test server (real gRPC + mutual TLS) and a real SMTP server, on a
 * clock the test moves (as the reminder tests in routing_e2e_test.ts).
 */
import assert from "node:assert/strict";
import {
  type Cluster,
  type ConfigOptions,
  expectMailbox,
  type InProcessPlugin,
  moveTo,
  runInProcess,
  startCluster,
  withTimeout,
} from "./harness.ts";
import { FakeClock } from "../src/lib/clock.ts";
import type { FakeSmtpServer, ReceivedMessage } from "./smtp_server.ts";

/** Upper bound of one test; a hang fails instead of blocking the suite. */
const TEST_TIMEOUT_MS = 20_000;
/** The plugins' check period (on their fake clock): every move of the tests is longer. */
const CHECK_MS = 1_000;
const HOUR = 3_600_000;
const OPS = "ops@example.com";
const BOB = "bob@example.com";
const ALICE = "alice@example.com";
const LEAD = "lead@example.com";
const CTO = "cto@example.com";

const FOLLOW_UPS = `
[escalation]
after = "4h"
recipients = ["${LEAD}"]
[[escalation.levels]]
after = "24h"
recipients = ["${CTO}"]

[access_expiry]
warn_before = ["24h", "1h"]
`;

type Kind = "new" | "received" | "review" | "resolution" | "escalation" | "expiry";

function textOf(m: ReceivedMessage): string {
  return (m.text ?? "").replaceAll("\r\n", "\n");
}

function kindOf(m: ReceivedMessage): Kind {
  const text = textOf(m);
  if (text.startsWith("You have a new Role Request:")) return "new";
  if (text.startsWith("Your Role Request has been received")) return "received";
  if (text.startsWith("Escalation: this Role Request is still waiting for a review")) {
    return "escalation";
  }
  if (text.startsWith("Your access from this Role Request ends soon")) return "expiry";
  if (text.startsWith("Role Request has been resolved:")) return "resolution";
  if (/ reviewed the request/.test(text)) return "review";
  throw new Error(`Unexpected email body:\n${text}`);
}

/** `<request> <kind> <recipient>`. */
function describe(m: ReceivedMessage): string {
  const id = / Role Request (\S+)$/.exec(m.header("Subject") ?? "")?.[1];
  assert.equal(m.envelope.to.length, 1);
  return `${id} ${kindOf(m)} ${m.envelope.to[0]}`;
}

let running: InProcessPlugin[] = [];

/** Waits for `total` emails and the running plugins to settle; the new ones, described. */
function expectMail(smtp: FakeSmtpServer, from: number, total: number): Promise<string[]> {
  return expectMailbox(smtp, running, from, total, describe);
}

interface Context {
  readonly c: Cluster;
  readonly plugin: InProcessPlugin;
  readonly clock: FakeClock;
  start(): Promise<InProcessPlugin>;
}

function e2e(name: string, config: ConfigOptions, fn: (ctx: Context) => Promise<void>) {
  Deno.test({
    name: `e2e escalation: ${name}`,
    fn: () => withTimeout(run(config, fn), TEST_TIMEOUT_MS, name),
  });
}

async function run(options: ConfigOptions, fn: (ctx: Context) => Promise<void>) {
  const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
  const c = await startCluster();
  const plugins: InProcessPlugin[] = [];
  running = plugins;
  try {
    const config = await c.writeConfig({
      roleToRecipients: { "*": [OPS] },
      extra: FOLLOW_UPS,
      ...options,
    });
    const start = async () => {
      const plugin = runInProcess(config, { clock, reminderCheckMs: CHECK_MS });
      plugins.push(plugin);
      await plugin.ready;
      return plugin;
    };
    const plugin = await start();
    await fn({ c, plugin, clock, start });
    for (const p of plugins.splice(0)) assert.equal(await p.stop(), 0);
  } finally {
    await Promise.allSettled(plugins.map((p) => p.stop()));
    await c.close();
  }
}

e2e(
  "a thread of its own at `after`; the review and the resolution are replied into it",
  {},
  async ({ c, plugin, clock }) => {
    const created = new Date(clock.now());
    c.teleport.createRequest({
      id: "slow",
      user: "alice",
      roles: ["editor"],
      created,
      expires: new Date(created.getTime() + 100 * HOUR),
    });
    assert.deepEqual(await expectMail(c.smtp, 0, 1), [`slow new ${OPS}`]);

    await moveTo(clock, created.getTime() + 4 * HOUR - 1_000, [plugin]);
    assert.equal(c.smtp.messages.length, 1, "not before escalation.after");
    await moveTo(clock, created.getTime() + 4 * HOUR, [plugin]);
    assert.deepEqual(await expectMail(c.smtp, 1, 2), [`slow escalation ${LEAD}`]);
    const escalation = c.smtp.messages[1]!;
    assert.equal(escalation.header("In-Reply-To"), undefined, "a thread of its own");
    assert.match(textOf(escalation), /^Waiting for a review: 4h$/m);
    assert.match(textOf(escalation), new RegExp(`^Already notified: ${OPS}$`, "m"));
    const data = c.teleport.pluginData("slow")!;
    assert.equal(data.email_escalation_level, "1");
    assert.ok(data.email_escalation_threads?.startsWith(`${LEAD}/`));

    c.teleport.review("slow", { author: BOB, proposedState: "APPROVED", reason: "fine" });
    assert.deepEqual(await expectMail(c.smtp, 2, 4), [`slow review ${LEAD}`, `slow review ${OPS}`]);
    c.teleport.approve("slow", "ok");
    assert.deepEqual(await expectMail(c.smtp, 4, 6), [
      `slow resolution ${LEAD}`,
      `slow resolution ${OPS}`,
    ]);
    for (const reply of c.smtp.messages.slice(2).filter((m) => m.envelope.to[0] === LEAD)) {
      assert.equal(reply.header("In-Reply-To"), escalation.header("Message-ID"), "in its thread");
    }
    assert.equal(c.teleport.pluginData("slow")?.email_escalation_replies, `${LEAD}=1+`);

    await moveTo(clock, created.getTime() + 30 * HOUR, [plugin]);
    assert.equal(c.smtp.messages.length, 6, "a review stops further levels");
  },
);

e2e(
  "downtime sends only the latest level; a restart and two replicas never send one twice",
  {},
  async ({ c, plugin, clock, start }) => {
    const created = new Date(clock.now());
    for (const id of ["slow", "reviewed"]) {
      c.teleport.createRequest({ id, user: "alice", roles: ["editor"], created });
    }
    await expectMail(c.smtp, 0, 2);
    c.teleport.review("reviewed", { author: BOB, proposedState: "APPROVED" });
    await expectMail(c.smtp, 2, 3);
    assert.equal(await plugin.stop(), 0);

    // Down for 30 hours; two instances come back: one catch-up send, level 2 only.
    const replicas = await Promise.all([start(), start()]);
    await Promise.all(replicas.map((p) => p.settled()));
    await moveTo(clock, created.getTime() + 30 * HOUR, replicas);
    assert.deepEqual(await expectMail(c.smtp, 3, 4), [`slow escalation ${CTO}`]);
    assert.match(textOf(c.smtp.messages[3]!), /^Waiting for a review: 1d6h$/m);
    assert.equal(c.teleport.pluginData("slow")?.email_escalation_level, "2");

    await moveTo(clock, created.getTime() + 31 * HOUR, replicas);
    assert.equal(c.smtp.messages.length, 4, "nothing twice");
  },
);

e2e(
  "access ending soon: each warning once (also across a restart and two replicas), none after the end",
  { notifyRequester: true },
  async ({ c, plugin, clock, start }) => {
    const created = new Date(clock.now());
    const ends = created.getTime() + 48 * HOUR;
    c.teleport.createRequest({
      id: "granted",
      user: ALICE,
      roles: ["editor", "dba"],
      created,
      expires: new Date(ends),
    });
    await expectMail(c.smtp, 0, 2);
    c.teleport.approve("granted", "ok");
    assert.deepEqual(await expectMail(c.smtp, 2, 4), [
      `granted resolution ${ALICE}`,
      `granted resolution ${OPS}`,
    ]);
    const received = c.smtp.messages.find((m) => kindOf(m) === "received")!;

    await moveTo(clock, ends - 24 * HOUR - 1_000, [plugin]);
    assert.equal(c.smtp.messages.length, 4, "not before warn_before");
    await moveTo(clock, ends - 24 * HOUR, [plugin]);
    assert.deepEqual(await expectMail(c.smtp, 4, 5), [`granted expiry ${ALICE}`]);
    const warning = c.smtp.messages[4]!;
    assert.equal(warning.header("In-Reply-To"), received.header("Message-ID"), "requester thread");
    assert.match(textOf(warning), /^Access ends in: 1d /m);
    assert.match(textOf(warning), /^To request it again: tsh request create --roles editor,dba$/m);
    assert.equal(c.teleport.pluginData("granted")?.email_expiry_warned, String(24 * HOUR));
    assert.equal(await plugin.stop(), 0);

    const replicas = await Promise.all([start(), start()]);
    await Promise.all(replicas.map((p) => p.settled()));
    await moveTo(clock, ends - 23 * HOUR, replicas);
    assert.equal(c.smtp.messages.length, 5, "the 24h warning is on record");
    await moveTo(clock, ends - 1 * HOUR, replicas);
    assert.deepEqual(await expectMail(c.smtp, 5, 6), [`granted expiry ${ALICE}`]);
    assert.match(textOf(c.smtp.messages[5]!), /^Access ends in: 1h /m);
    await moveTo(clock, ends + 1 * HOUR, replicas);
    assert.equal(c.smtp.messages.length, 6, "none once access ended");
  },
);
