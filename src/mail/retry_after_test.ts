/**
 * `Retry-After` (issue 12): a transient failure that says how long to wait
 * is retried no sooner than that, and no later than `RETRY_AFTER_MAX_MS`.
 */
import assert from "node:assert/strict";
import { type Mailer, MailError, type SentEmail } from "./mailer.ts";
import { RETRY_AFTER_MAX_MS, SEND_RETRY_BASE_MS, sendWithRetry } from "./retry.ts";

const EMAIL = { to: "a@example.com", subject: "s", text: "t" };

function failingOnce(error: MailError): Mailer {
  let calls = 0;
  return {
    send: (): Promise<SentEmail> =>
      calls++ === 0 ? Promise.reject(error) : Promise.resolve({ messageId: "id@x" }),
    checkHealth: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

Deno.test("retry: Retry-After is honoured, within bounds", async () => {
  // random() = 0 puts the first backoff at its least: half of SEND_RETRY_BASE_MS.
  const backoff = SEND_RETRY_BASE_MS / 2;
  const table: Array<[name: string, retryAfterMs: number | undefined, wait: number]> = [
    ["no Retry-After: the backoff", undefined, backoff],
    ["longer than the backoff: as asked", 120_000, 120_000],
    ["shorter than the backoff: the backoff", 1_000, backoff],
    ["ten hours: capped", 10 * 3_600_000, RETRY_AFTER_MAX_MS],
  ];
  for (const [name, retryAfterMs, wait] of table) {
    const error = new MailError("HTTP 429", {
      transient: true,
      status: 429,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
    const waits: number[] = [];
    const delays: number[] = [];
    await sendWithRetry(failingOnce(error), EMAIL, {
      random: () => 0,
      sleep: (ms) => (waits.push(ms), Promise.resolve()),
      onRetry: ({ delayMs }) => void delays.push(delayMs),
    });
    assert.deepEqual(waits, [wait], name);
    assert.deepEqual(delays, [wait], name);
  }
  assert.ok(RETRY_AFTER_MAX_MS >= 60_000 && RETRY_AFTER_MAX_MS <= 15 * 60_000);
});
