import assert from "node:assert/strict";
import { type Mailer, MailError, type OutgoingEmail, type SentEmail } from "./mailer.ts";
import {
  type RetryInfo,
  SEND_ATTEMPTS,
  SEND_RETRY_BASE_MS,
  SEND_RETRY_MAX_MS,
  sendWithRetry,
} from "./retry.ts";

const EMAIL: OutgoingEmail = { to: "a@example.com", subject: "s", text: "t" };
const transient = (n: number) =>
  new MailError(`try ${n}: 421 busy`, { transient: true, status: 421 });
const permanent = new MailError("550 no such user", { transient: false, status: 550 });

/** A mailer that plays `outcomes` in order (an error is thrown, anything else sent). */
function scriptedMailer(outcomes: Array<Error | SentEmail>): Mailer & { calls: number } {
  const mailer = {
    calls: 0,
    send(): Promise<SentEmail> {
      const outcome = outcomes[mailer.calls++];
      if (outcome === undefined) throw new Error("unexpected send");
      return outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve(outcome);
    },
    checkHealth: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return mailer;
}

/** A sleep that only records what it was asked to wait. */
function fakeSleep() {
  const waits: number[] = [];
  return { waits, sleep: (ms: number) => (waits.push(ms), Promise.resolve()) };
}

Deno.test("retry: transient failures are retried until the send succeeds", async () => {
  const mailer = scriptedMailer([transient(1), transient(2), { messageId: "id@x" }]);
  const { waits, sleep } = fakeSleep();
  const retries: RetryInfo[] = [];
  const sent = await sendWithRetry(mailer, EMAIL, {
    sleep,
    random: () => 0.999999,
    onRetry: (info) => retries.push(info),
  });
  assert.deepEqual(sent, { messageId: "id@x" });
  assert.equal(mailer.calls, 3);
  assert.deepEqual(waits, [SEND_RETRY_BASE_MS, 2 * SEND_RETRY_BASE_MS]);
  assert.deepEqual(retries.map((r) => [r.attempt, r.error.message, r.delayMs]), [
    [1, "try 1: 421 busy", SEND_RETRY_BASE_MS],
    [2, "try 2: 421 busy", 2 * SEND_RETRY_BASE_MS],
  ]);
});

Deno.test("retry: a permanent failure is thrown at once", async () => {
  const mailer = scriptedMailer([transient(1), permanent]);
  const { waits, sleep } = fakeSleep();
  await assert.rejects(sendWithRetry(mailer, EMAIL, { sleep }), (err) => err === permanent);
  assert.equal(mailer.calls, 2);
  assert.equal(waits.length, 1);
});

Deno.test("retry: an error that is not a MailError is not retried", async () => {
  const bug = new TypeError("bug");
  const mailer = scriptedMailer([bug]);
  const { waits, sleep } = fakeSleep();
  await assert.rejects(sendWithRetry(mailer, EMAIL, { sleep }), (err) => err === bug);
  assert.deepEqual(waits, []);
});

Deno.test("retry: gives up after the last try with the last error", async () => {
  const errors = Array.from({ length: SEND_ATTEMPTS }, (_, i) => transient(i + 1));
  const mailer = scriptedMailer(errors);
  const { waits, sleep } = fakeSleep();
  await assert.rejects(
    sendWithRetry(mailer, EMAIL, { sleep, random: () => 0 }),
    (err) => err === errors[SEND_ATTEMPTS - 1],
  );
  assert.equal(mailer.calls, SEND_ATTEMPTS);
  assert.equal(waits.length, SEND_ATTEMPTS - 1);
});

Deno.test("retry: the default schedule has 5+ tries spanning several minutes", () => {
  assert.ok(SEND_ATTEMPTS >= 5);
  const total = (jitter: number) => {
    let sum = 0;
    for (let i = 0; i < SEND_ATTEMPTS - 1; i++) {
      sum += Math.min(SEND_RETRY_MAX_MS, SEND_RETRY_BASE_MS * 2 ** i) * jitter;
    }
    return sum;
  };
  assert.ok(total(0.5) >= 3 * 60_000, `shortest schedule ${total(0.5)} ms`);
  assert.ok(total(1) <= 10 * 60_000, `longest schedule ${total(1)} ms`);
});

Deno.test("retry: delays grow exponentially up to the cap, with jitter", async () => {
  const mailer = scriptedMailer(Array.from({ length: 6 }, (_, i) => transient(i + 1)));
  const { waits, sleep } = fakeSleep();
  await assert.rejects(
    sendWithRetry(mailer, EMAIL, {
      attempts: 6,
      baseDelayMs: 100,
      maxDelayMs: 500,
      sleep,
      random: () => 0.5,
    }),
  );
  assert.deepEqual(waits, [75, 150, 300, 375, 375]);
});

Deno.test("retry: an abort during the wait stops at once with the signal's reason", async () => {
  const mailer = scriptedMailer([transient(1), { messageId: "never" }]);
  const controller = new AbortController();
  const reason = new Error("shutting down");
  const sending = sendWithRetry(mailer, EMAIL, {
    signal: controller.signal,
    baseDelayMs: 60_000,
  });
  setTimeout(() => controller.abort(reason), 10);
  await assert.rejects(sending, (err) => err === reason);
  assert.equal(mailer.calls, 1);
});

Deno.test("retry: an already aborted signal sends nothing", async () => {
  const mailer = scriptedMailer([{ messageId: "never" }]);
  const controller = new AbortController();
  controller.abort(new Error("stop"));
  await assert.rejects(sendWithRetry(mailer, EMAIL, { signal: controller.signal }), /stop/);
  assert.equal(mailer.calls, 0);
});
