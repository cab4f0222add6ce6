/**
 * Issue "Routing and follow-up", end to end: the plugin in this process
 * against the Teleport test server (real gRPC + mutual TLS) and a real SMTP
 * server. Access monitoring rules (loaded at start, changed while running,
 * refused by the cluster, broken), the requester's own thread, and
 * reminders driven by a clock the test moves.
 */
import assert from "node:assert/strict";
import {
  capturedLogs,
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
import type { RuleInput, TeleportTestServerOptions } from "./teleport_server.ts";

/** Upper bound of one test; a hang fails instead of blocking the suite. */
const TEST_TIMEOUT_MS = 20_000;
/** Reminder check period of the plugins under test (on their fake clock): every move of the tests is longer. */
const REMINDER_CHECK_MS = 1_000;

const HOUR = 3_600_000;
const OPS = "ops@example.com";
const BOB = "bob@example.com";
const ALICE = "alice@example.com";
const DBA_TEAM = "dba-team@example.com";
const DBA_MAP = "dba-map@example.com";
const LIST_RULES = "ListAccessMonitoringRulesWithFilter";

const DBA = 'access_request.spec.roles.contains("dba")';

function emailRule(name: string, condition: string, recipients: string[]): RuleInput {
  return { name, condition, notification: { name: "email", recipients } };
}

type Kind = "new" | "received" | "review" | "resolution" | "reminder";

function textOf(m: ReceivedMessage): string {
  return (m.text ?? "").replaceAll("\r\n", "\n");
}

function kindOf(m: ReceivedMessage): Kind {
  const text = textOf(m);
  if (text.startsWith("You have a new Role Request:")) return "new";
  if (text.startsWith("Your Role Request has been received")) return "received";
  if (text.startsWith("Reminder: this Role Request is still waiting for a review")) {
    return "reminder";
  }
  if (text.startsWith("Role Request has been resolved:")) return "resolution";
  if (/ reviewed the request/.test(text)) return "review";
  throw new Error(`Unexpected email body:\n${text}`);
}

function requestIdOf(m: ReceivedMessage): string {
  const match = / Role Request (\S+)$/.exec(m.header("Subject") ?? "");
  assert.ok(match, `subject ${JSON.stringify(m.header("Subject"))}`);
  return match[1]!;
}

/** `<request> <kind> <recipient>`: what one email is, to compare sets of emails. */
function describe(m: ReceivedMessage): string {
  assert.equal(m.envelope.to.length, 1, `one envelope recipient, got ${m.envelope.to}`);
  return `${requestIdOf(m)} ${kindOf(m)} ${m.envelope.to[0]}`;
}

/** The plugins of the test that is running (tests in one file run one after another). */
let running: InProcessPlugin[] = [];

/** Waits for `total` emails and the running plugins to settle; the new ones, described. */
function expectMail(smtp: FakeSmtpServer, from: number, total: number): Promise<string[]> {
  return expectMailbox(smtp, running, from, total, describe);
}

/** Log lines of one in-process plugin written since `from`. */
function logsOf(plugin: InProcessPlugin, from = 0): string[] {
  return capturedLogs.slice(from).filter((line) => line.includes(plugin.owner));
}

interface Setup {
  teleport?: TeleportTestServerOptions;
  /** Rules that exist before the plugin starts. */
  rules?: RuleInput[];
  config?: ConfigOptions;
  /** The notifiers' clock; reminders are checked every `REMINDER_CHECK_MS` of it when given. */
  clock?: FakeClock;
}

interface Context {
  readonly c: Cluster;
  /** The plugin started for the test (ready). */
  readonly plugin: InProcessPlugin;
  /** Starts one more plugin on the same config (stopped at the end); resolves once ready. */
  start(): Promise<InProcessPlugin>;
}

function e2e(name: string, setup: Setup, fn: (ctx: Context) => Promise<void>) {
  Deno.test({
    name: `e2e routing: ${name}`,
    fn: () => withTimeout(run(setup, fn), TEST_TIMEOUT_MS, name),
  });
}

async function run(setup: Setup, fn: (ctx: Context) => Promise<void>) {
  const c = await startCluster(setup.teleport ? { teleport: setup.teleport } : {});
  const plugins: InProcessPlugin[] = [];
  running = plugins;
  try {
    for (const rule of setup.rules ?? []) c.teleport.putRule(rule);
    const config = await c.writeConfig(setup.config ?? {});
    const start = async () => {
      const plugin = runInProcess(config, {
        ...(setup.clock ? { clock: setup.clock, reminderCheckMs: REMINDER_CHECK_MS } : {}),
      });
      plugins.push(plugin);
      await plugin.ready;
      return plugin;
    };
    const plugin = await start();
    await fn({ c, plugin, start });
    for (const p of plugins.splice(0)) assert.equal(await p.stop(), 0);
  } finally {
    await Promise.allSettled(plugins.map((p) => p.stop()));
    await c.close();
  }
}

// ---------------------------------------------------------------------------
// Access monitoring rules

e2e(
  "rules loaded at start (in pages) route dba requests; other requests still use the map",
  {
    rules: [
      emailRule("route-dba", DBA, [DBA_TEAM]),
      emailRule("route-dba-alice", `${DBA} && access_request.spec.user == "alice"`, [
        "dba-lead@example.com",
        DBA_TEAM,
      ]),
      emailRule("route-dev", 'access_request.spec.roles.contains("dev")', ["dev@example.com"]),
      { name: "route-dba-slack", condition: DBA, notification: { name: "slack", recipients: [] } },
    ],
    config: { roleToRecipients: { "*": [OPS], dba: [DBA_MAP] } },
  },
  async ({ c, plugin }) => {
    // Created at once: a request seen right after INIT waits for the rules.
    const create = (id: string, user: string, roles: string[]) =>
      c.teleport.createRequest({ id, user, roles, suggestedReviewers: [BOB] });
    create("dba-alice", "alice", ["dba"]);
    create("dba-carol", "carol", ["dba"]);
    create("editor", "alice", ["editor"]);
    assert.deepEqual(await expectMail(c.smtp, 0, 5), [
      "dba-alice new dba-lead@example.com",
      `dba-alice new ${DBA_TEAM}`,
      `dba-carol new ${DBA_TEAM}`,
      `editor new ${BOB}`,
      `editor new ${OPS}`,
    ]);
    // The union of the matching rules, in rule-name order, each address once.
    assert.equal(
      c.teleport.pluginData("dba-alice")?.email_recipients,
      `${DBA_TEAM},dba-lead@example.com`,
    );
    assert.ok(c.teleport.callCount(LIST_RULES) >= 2, "the rules were listed in pages");
    const routed = logsOf(plugin).filter((l) => /Recipients from access monitoring rule/.test(l));
    assert.equal(routed.length, 2, routed.join(""));
  },
);

e2e(
  "a rule added, changed and deleted while running routes the next request",
  { config: { roleToRecipients: { "*": [OPS] } } },
  async ({ c }) => {
    await c.teleport.waitForCalls(LIST_RULES, 1);
    const listed = c.teleport.callCount(LIST_RULES);
    let sent = 0;
    const next = async (id: string) => {
      c.teleport.createRequest({ id, user: "alice", roles: ["dba"] });
      const got = await expectMail(c.smtp, sent, sent + 1);
      sent++;
      return got;
    };
    assert.deepEqual(await next("before"), [`before new ${OPS}`]);

    c.teleport.putRule(emailRule("route-dba", DBA, [DBA_TEAM]));
    assert.deepEqual(await next("added"), [`added new ${DBA_TEAM}`]);

    c.teleport.putRule(emailRule("route-dba", DBA, ["dba-oncall@example.com"]));
    assert.deepEqual(await next("new-recipients"), ["new-recipients new dba-oncall@example.com"]);

    c.teleport.putRule(emailRule("route-dba", 'access_request.spec.user == "bob"', [DBA_TEAM]));
    assert.deepEqual(await next("new-condition"), [`new-condition new ${OPS}`]);

    c.teleport.putRule(emailRule("route-dba", DBA, [DBA_TEAM]));
    c.teleport.deleteRule("route-dba");
    assert.deepEqual(await next("deleted"), [`deleted new ${OPS}`]);

    // A thread stays with its recipient: the resolution follows the thread, not today's rules.
    c.teleport.approve("added", "ok");
    assert.deepEqual(await expectMail(c.smtp, sent, sent + 1), [`added resolution ${DBA_TEAM}`]);

    assert.equal(c.teleport.callCount(LIST_RULES), listed, "changes came from the watch alone");
  },
);

e2e(
  "a cluster that refuses rules: one WARN, and the role map routes",
  {
    teleport: { allowAccessMonitoringRules: false },
    rules: [emailRule("route-dba", DBA, [DBA_TEAM])],
    config: { roleToRecipients: { "*": [OPS], dba: [DBA_MAP] } },
  },
  async ({ c, plugin }) => {
    c.teleport.createRequest({ id: "first", user: "alice", roles: ["dba"] });
    assert.deepEqual(await expectMail(c.smtp, 0, 1), [`first new ${DBA_MAP}`]);

    // A reconnect does not warn again.
    const watches = c.teleport.callCount("WatchEvents");
    c.teleport.dropStreams();
    await c.teleport.waitForCalls("WatchEvents", watches + 1);
    c.teleport.createRequest({ id: "second", user: "alice", roles: ["dba"] });
    assert.deepEqual(await expectMail(c.smtp, 1, 2), [`second new ${DBA_MAP}`]);

    const warnings = logsOf(plugin).filter((l) =>
      l.includes("Access monitoring rules are not used")
    );
    assert.equal(warnings.length, 1, warnings.join(""));
    assert.match(warnings[0]!, / WARN /);
  },
);

e2e(
  "a rule whose condition does not parse is logged once and skipped; the others route",
  {
    rules: [
      emailRule("a-broken", 'access_request.spec.roles.contains("dba"', ["broken@example.com"]),
      emailRule("b-dba", DBA, [DBA_TEAM]),
    ],
    config: { roleToRecipients: { "*": [OPS] } },
  },
  async ({ c, plugin }) => {
    c.teleport.createRequest({ id: "first", user: "alice", roles: ["dba"] });
    assert.deepEqual(await expectMail(c.smtp, 0, 1), [`first new ${DBA_TEAM}`]);

    // Listed again after a reconnect: the same revision is not reported again.
    const listed = c.teleport.callCount(LIST_RULES);
    c.teleport.dropStreams();
    await c.teleport.waitForCalls(LIST_RULES, listed + 1);
    c.teleport.createRequest({ id: "second", user: "alice", roles: ["dba"] });
    assert.deepEqual(await expectMail(c.smtp, 1, 2), [`second new ${DBA_TEAM}`]);

    const reports = logsOf(plugin).filter((l) => /a-broken.*is skipped/.test(l));
    assert.equal(reports.length, 1, reports.join(""));
    assert.match(reports[0]!, / ERROR /);
    assert.match(reports[0]!, /Cannot parse condition/);

    // Fixed while running: it routes from the next request on.
    c.teleport.putRule(
      emailRule("a-broken", 'access_request.spec.roles.contains("dev")', ["dev@example.com"]),
    );
    c.teleport.createRequest({ id: "dev", user: "alice", roles: ["dev"] });
    assert.deepEqual(await expectMail(c.smtp, 2, 3), ["dev new dev@example.com"]);
  },
);

// ---------------------------------------------------------------------------
// Requester notifications

e2e(
  "notify_requester: the requester's thread gets received, each review, the resolution",
  { config: { roleToRecipients: { "*": [OPS] }, notifyRequester: true } },
  async ({ c }) => {
    // A user name that is not an address gets nothing of its own.
    c.teleport.createRequest({ id: "plain", user: "bob", roles: ["editor"] });
    assert.deepEqual(await expectMail(c.smtp, 0, 1), [`plain new ${OPS}`]);
    assert.equal(c.teleport.pluginData("plain")?.email_requester, undefined);

    c.teleport.createRequest({ id: "mine", user: ALICE, roles: ["editor"], reason: "INC-7" });
    assert.deepEqual(await expectMail(c.smtp, 1, 3), [
      `mine new ${OPS}`,
      `mine received ${ALICE}`,
    ]);
    c.teleport.review("mine", { author: BOB, proposedState: "APPROVED", reason: "fine" });
    assert.deepEqual(await expectMail(c.smtp, 3, 5), [
      `mine review ${ALICE}`,
      `mine review ${OPS}`,
    ]);
    c.teleport.approve("mine", "two approvals");
    assert.deepEqual(await expectMail(c.smtp, 5, 7), [
      `mine resolution ${ALICE}`,
      `mine resolution ${OPS}`,
    ]);

    const hers = c.smtp.messages.filter((m) => m.envelope.to[0] === ALICE);
    assert.deepEqual(hers.map(kindOf), ["received", "review", "resolution"]);
    const [root, review, resolution] = hers as [ReceivedMessage, ReceivedMessage, ReceivedMessage];
    const rootId = root.header("Message-ID")!;
    assert.match(rootId, /^<[^<>\s]+@example\.com>$/);
    assert.equal(root.header("In-Reply-To"), undefined);
    for (const reply of [review, resolution]) {
      assert.equal(reply.header("In-Reply-To"), rootId);
      assert.equal(reply.header("References"), rootId);
      assert.equal(reply.header("Subject"), root.header("Subject"));
    }
    assert.match(textOf(root), /Reason: INC-7/);
    assert.doesNotMatch(textOf(root), /tsh request review/, "the requester cannot review");
    assert.match(textOf(review), new RegExp(`^${BOB} reviewed the request`));
    assert.match(textOf(resolution), /Status: ✅ APPROVED \(two approvals\)/);

    const data = c.teleport.pluginData("mine")!;
    assert.equal(data.email_requester, ALICE);
    assert.ok(data.email_requester_thread?.endsWith(`/${rootId.slice(1, -1)}`));
    assert.equal(data.email_requester_replies, "1+");
    assert.equal(data.resolution, "APPROVED");
    assert.ok(!data.email_threads?.includes(ALICE), "not one of the reviewer threads");
  },
);

// ---------------------------------------------------------------------------
// Reminders, on a clock the test moves

function fakeClock() {
  return new FakeClock(Math.floor(Date.now() / 1000) * 1000);
}

const REMINDERS = '[reminders]\nafter = "1h"\nevery = "4h"\nmax = 2\n';

function reminderSetup(clock: FakeClock): Setup {
  return { config: { roleToRecipients: { "*": [OPS] }, extra: REMINDERS }, clock };
}

const reminderClock = fakeClock();
e2e(
  "reminders: at created + after, then every `every`, stopping at max",
  reminderSetup(reminderClock),
  async ({ c, plugin }) => {
    const clock = reminderClock;
    const created = new Date(clock.now());
    c.teleport.createRequest({
      id: "slow",
      user: "alice",
      roles: ["editor"],
      created,
      expires: new Date(created.getTime() + 100 * HOUR),
    });
    assert.deepEqual(await expectMail(c.smtp, 0, 1), [`slow new ${OPS}`]);

    await moveTo(clock, created.getTime() + 1 * HOUR - 1_000, [plugin]);
    assert.equal(c.smtp.messages.length, 1, "not before `after`");

    await moveTo(clock, created.getTime() + 1 * HOUR, [plugin]);
    assert.deepEqual(await expectMail(c.smtp, 1, 2), [`slow reminder ${OPS}`]);
    const [root, reminder] = c.smtp.messages as [ReceivedMessage, ReceivedMessage];
    assert.equal(reminder.header("In-Reply-To"), root.header("Message-ID"), "in the thread");
    assert.equal(reminder.header("Subject"), root.header("Subject"));
    assert.equal(c.teleport.pluginData("slow")?.email_reminders, `${OPS}=1`);

    await moveTo(clock, created.getTime() + 5 * HOUR - 1_000, [plugin]);
    assert.equal(c.smtp.messages.length, 2, "not before `every`");

    await moveTo(clock, created.getTime() + 5 * HOUR, [plugin]);
    assert.deepEqual(await expectMail(c.smtp, 2, 3), [`slow reminder ${OPS}`]);
    assert.equal(c.teleport.pluginData("slow")?.email_reminders, `${OPS}=2`);

    await moveTo(clock, created.getTime() + 50 * HOUR, [plugin]);
    assert.equal(c.smtp.messages.length, 3, "max = 2");
  },
);

const stopClock = fakeClock();
e2e(
  "reminders: a review or the resolution stops them",
  reminderSetup(stopClock),
  async ({ c, plugin }) => {
    const clock = stopClock;
    const created = new Date(clock.now());
    for (const id of ["reviewed", "approved", "control"]) {
      c.teleport.createRequest({ id, user: "alice", roles: ["editor"], created });
    }
    await expectMail(c.smtp, 0, 3);
    await moveTo(clock, created.getTime() + 1 * HOUR, [plugin]);
    assert.deepEqual(await expectMail(c.smtp, 3, 6), [
      `approved reminder ${OPS}`,
      `control reminder ${OPS}`,
      `reviewed reminder ${OPS}`,
    ]);

    c.teleport.review("reviewed", { author: BOB, proposedState: "APPROVED" });
    c.teleport.approve("approved", "ok");
    assert.deepEqual(await expectMail(c.smtp, 6, 8), [
      `approved resolution ${OPS}`,
      `reviewed review ${OPS}`,
    ]);

    await moveTo(clock, created.getTime() + 5 * HOUR, [plugin]);
    assert.deepEqual(await expectMail(c.smtp, 8, 9), [`control reminder ${OPS}`]);
  },
);

const restartClock = fakeClock();
e2e(
  "reminders: a restart, or two replicas, never send one twice",
  reminderSetup(restartClock),
  async ({ c, plugin, start }) => {
    const clock = restartClock;
    const created = new Date(clock.now());
    c.teleport.createRequest({ id: "slow", user: "alice", roles: ["editor"], created });
    await expectMail(c.smtp, 0, 1);
    await moveTo(clock, created.getTime() + 1 * HOUR, [plugin]);
    assert.deepEqual(await expectMail(c.smtp, 1, 2), [`slow reminder ${OPS}`]);
    assert.equal(await plugin.stop(), 0);

    // Two instances where there was one: the first reminder is on record.
    const replicas = await Promise.all([start(), start()]);
    // Both reconcile, then both check reminders at the same time.
    await Promise.all(replicas.map((p) => p.settled()));
    await moveTo(clock, created.getTime() + 1 * HOUR + 1_000, replicas);
    assert.equal(c.smtp.messages.length, 2, "reminder 1 not sent again");

    await moveTo(clock, created.getTime() + 5 * HOUR, replicas);
    assert.deepEqual(await expectMail(c.smtp, 2, 3), [`slow reminder ${OPS}`]);
    assert.equal(c.teleport.pluginData("slow")?.email_reminders, `${OPS}=2`);
  },
);

// ---------------------------------------------------------------------------
// Rules on the requesting user's traits (GetUser)

const TEAM_DBA = 'contains(user.traits["team"], "dba")';
const TRAIT_RULES = [
  emailRule("route-team-dba", TEAM_DBA, [DBA_TEAM]),
  emailRule("route-not-dba", `!${TEAM_DBA} && access_request.spec.user == "bob"`, [
    "bob-manager@example.com",
  ]),
];

function withUsers(c: Cluster) {
  c.teleport.cluster.users.set("alice", { team: ["dba", "oncall"] });
  c.teleport.cluster.users.set("bob", { team: ["web"] });
}

for (const legacy of [false, true]) {
  e2e(
    `rules on user.traits route by the requester's team (${
      legacy ? "legacy AuthService.GetUser" : "UsersService.GetUser"
    })`,
    {
      rules: TRAIT_RULES,
      config: { roleToRecipients: { "*": [OPS] } },
      ...(legacy ? { teleport: { implementUsersService: false } } : {}),
    },
    async ({ c }) => {
      withUsers(c);
      c.teleport.createRequest({ id: "by-alice", user: "alice", roles: ["editor"] });
      c.teleport.createRequest({ id: "by-bob", user: "bob", roles: ["editor"] });
      c.teleport.createRequest({ id: "by-carol", user: "carol", roles: ["editor"] });
      assert.deepEqual(await expectMail(c.smtp, 0, 3), [
        `by-alice new ${DBA_TEAM}`,
        "by-bob new bob-manager@example.com",
        `by-carol new ${OPS}`,
      ]);
      const calls = c.teleport.callCount(legacy ? "GetUser" : "UsersService/GetUser");
      assert.ok(calls >= 3, `the users were read (${calls} calls)`);
    },
  );
}

e2e(
  "a role that may not read users: one warning, and the rules see no traits",
  {
    rules: TRAIT_RULES,
    config: { roleToRecipients: { "*": [OPS] } },
    teleport: { allowReadUsers: false },
  },
  async ({ c, plugin }) => {
    withUsers(c);
    c.teleport.createRequest({ id: "by-alice", user: "alice", roles: ["editor"] });
    c.teleport.createRequest({ id: "by-bob", user: "bob", roles: ["editor"] });
    assert.deepEqual(await expectMail(c.smtp, 0, 2), [
      `by-alice new ${OPS}`,
      "by-bob new bob-manager@example.com",
    ]);
    const warned = logsOf(plugin).filter((l) => /does not let this plugin read users/.test(l));
    assert.equal(warned.length, 1, warned.join(""));
  },
);
