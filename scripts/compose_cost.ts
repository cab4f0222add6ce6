/**
 * CPU of the SMTP mailer's composition (`src/mail/compose.ts`), in one
 * process, no server: a request's body (its built-in text + HTML, composed
 * once for its recipients) and each email's head (From, To, Subject,
 * Message-ID, Date… on the body kept). Medians of 5 rounds of 1,000.
 *
 *   deno run -A scripts/compose_cost.ts
 */
import { messageComposer } from "../src/mail/compose.ts";
import { percentile } from "./bench/stats.ts";
import { prepareEmail } from "../src/mail/mailer.ts";
import { messageIdGenerator } from "../src/mail/message_id.ts";
import { benchRequestMessage } from "./bench/emails.ts";

const SENDER = "Teleport <noreply@example.com>";
const ROUNDS = 5;
const N = 1_000;
const nextId = messageIdGenerator(SENDER);

const content = (i: number) => benchRequestMessage(`${crypto.randomUUID()}-${i}`);

const median = (xs: number[]) => percentile(xs, 50);
const bodies: number[] = [];
const heads: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const contents = Array.from({ length: N }, (_, i) => content(i));
  // A new composer per content: its first email composes the body, the later ones reuse it.
  const composers = contents.map(() => messageComposer(SENDER));
  let t0 = performance.now();
  for (const [i, c] of contents.entries()) {
    await composers[i]!(prepareEmail({ to: "rev-a@example.com", ...c }), nextId());
  }
  const first = (performance.now() - t0) / N;
  const prepared = contents.map((c) => prepareEmail({ to: "rev-b@example.com", ...c }));
  t0 = performance.now();
  for (const [i, p] of prepared.entries()) await composers[i]!(p, nextId());
  const head = (performance.now() - t0) / N;
  heads.push(head);
  bodies.push(first - head);
}
console.log(
  `body per request ${(median(bodies) * 1000).toFixed(0)} µs; ` +
    `head per email ${(median(heads) * 1000).toFixed(1)} µs`,
);
