/**
 * The mail retry schedule (SPEC §4 "retries"; `Retry-After`, issue 12). That
 * a request's failed emails are tried again on it, and only those, is the
 * notifier's (src/notify/app_test.ts, tests/notify_e2e_test.ts).
 */
import assert from "node:assert/strict";
import { MailError } from "./mailer.ts";
import {
  mailRetryDelay,
  RETRY_AFTER_MAX_MS,
  SEND_RETRY_BACKOFF,
  SEND_RETRY_BASE_MS,
} from "./retry.ts";

const busy = new MailError("421 busy", { transient: true, status: 421 });

Deno.test("retry: five retries span several minutes, then one every few minutes", () => {
  const schedule = (jitter: number) =>
    Array.from({ length: 8 }, (_, i) => mailRetryDelay(i, busy, SEND_RETRY_BACKOFF, () => jitter));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const shortest = schedule(0);
  const longest = schedule(0.999999);
  assert.ok(sum(shortest.slice(0, 5)) >= 3 * 60_000, `shortest five: ${shortest}`);
  assert.ok(sum(longest.slice(0, 5)) <= 10 * 60_000, `longest five: ${longest}`);
  assert.ok(shortest[0]! >= 5_000, `not at once: ${shortest[0]}`);
  // Past the cap the waits stay put: a failing mailbox is tried every 1.5–3 minutes.
  assert.equal(shortest[6], shortest[7]);
  assert.ok(longest[7]! <= 180_000 && shortest[7]! >= 60_000, `${shortest[7]}–${longest[7]}`);
});

Deno.test("retry: delays grow exponentially up to the cap, with jitter", () => {
  const delays = Array.from(
    { length: 5 },
    (_, i) => mailRetryDelay(i, busy, { baseMs: 100, capMs: 500 }, () => 0.5),
  );
  assert.deepEqual(delays, [75, 150, 300, 375, 375]);
});

Deno.test("retry: Retry-After is honoured, within bounds", () => {
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
    assert.equal(mailRetryDelay(0, error, SEND_RETRY_BACKOFF, () => 0), wait, name);
  }
  assert.ok(RETRY_AFTER_MAX_MS >= 60_000 && RETRY_AFTER_MAX_MS <= 15 * 60_000);
});
