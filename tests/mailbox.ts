/**
 * What a mailbox sees, for the operations tests: which email a received
 * message is (recipient, request, kind) and the check that every expected
 * email arrived exactly once, across any number of SMTP server incarnations.
 */
import assert from "node:assert/strict";
import type { FakeSmtpServer, ReceivedMessage } from "./smtp_server.ts";
import { inProcessSettled } from "./harness.ts";

/** Poll interval while waiting for emails. */
const POLL_MS = 20;

export type Kind = "new" | "review" | "resolution";

/** The plain-text body with LF line ends (SMTP carries CRLF). */
export function textOf(m: ReceivedMessage): string {
  return (m.text ?? "").replaceAll("\r\n", "\n");
}

export function kindOf(m: ReceivedMessage): Kind {
  const text = textOf(m);
  if (text.startsWith("You have a new Role Request:")) return "new";
  if (text.startsWith("Role Request has been resolved:")) return "resolution";
  if (/ reviewed the request/.test(text)) return "review";
  throw new Error(`Unexpected email body:\n${text}`);
}

/** The request id from the subject `<cluster> Role Request <id>`. */
export function requestIdOf(m: ReceivedMessage): string {
  const match = / Role Request (\S+)$/.exec(m.header("Subject") ?? "");
  assert.ok(match, `subject ${JSON.stringify(m.header("Subject"))}`);
  return match[1]!;
}

/**
 * `<recipient> <kind> <request id>`, plus the reviewer for a review: two
 * messages with the same key are the same email sent twice.
 */
export function emailKey(m: ReceivedMessage): string {
  assert.equal(m.envelope.to.length, 1, `one envelope recipient, got ${m.envelope.to}`);
  const kind = kindOf(m);
  const base = `${m.envelope.to[0]} ${kind} ${requestIdOf(m)}`;
  return kind === "review" ? `${base} by ${/^(\S+) reviewed/.exec(textOf(m))?.[1]}` : base;
}

/** The keys of the emails one request should produce. */
export function expectedEmails(
  id: string,
  recipients: readonly string[],
  kinds: readonly Kind[],
): string[] {
  return recipients.flatMap((to) => kinds.map((kind) => `${to} ${kind} ${id}`));
}

/** Every message of every server, in order. */
export function allMessages(servers: readonly FakeSmtpServer[]): ReceivedMessage[] {
  return servers.flatMap((s) => s.messages);
}

/**
 * Waits until `messages()` holds `expected.length` emails and the in-process
 * plugins have nothing left to do, then checks that each expected email arrived exactly once and nothing else
 * did. Reports duplicates and missing emails by key.
 */
export async function expectEachOnce(
  messages: () => readonly ReceivedMessage[],
  expected: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (messages().length < expected.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  await inProcessSettled();
  const seen = new Map<string, number>();
  for (const m of messages()) seen.set(emailKey(m), (seen.get(emailKey(m)) ?? 0) + 1);
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} (x${n})`);
  const want = new Set(expected);
  assert.equal(want.size, expected.length, "the expected emails are distinct");
  const missing = expected.filter((k) => !seen.has(k));
  const unexpected = [...seen.keys()].filter((k) => !want.has(k));
  assert.deepEqual(
    { duplicates, missing, unexpected },
    { duplicates: [], missing: [], unexpected: [] },
    `${messages().length} emails received, ${expected.length} expected`,
  );
}
