/**
 * CPU of handing the plugin's raw messages to Nodemailer's pool through
 * `sendMail` against below it (`src/mail/_smtp_pool_handover.ts`), in this
 * process, against aiosmtpd from Debian (STARTTLS + AUTH, a process of its
 * own): the plugin's built-in emails (~3 KB, composed beforehand), the
 * plugin's pool options, 10 handed over at a time as the mailer does. Rounds
 * of N emails each way, one after the other (which goes first alternates),
 * so that both see the same machine.
 *
 *   deno run -A scripts/pool_handover.ts [--emails 900] [--rounds 4] [--server aiosmtpd|stall]
 */
import { parseArgs } from "node:util";
import nodemailer from "nodemailer";
import { poolHandover } from "../src/mail/_smtp_pool_handover.ts";
import { smtpTransportOptions } from "../src/mail/smtp.ts";
import { messageComposer } from "../src/mail/compose.ts";
import { prepareEmail } from "../src/mail/mailer.ts";
import { messageIdGenerator } from "../src/mail/message_id.ts";
import { benchRequestMessage } from "./bench/emails.ts";
import { Secret } from "../src/lib/secret.ts";
import { localhostTls, startAiosmtpd, startStallSink } from "./bench/servers.ts";
import { cpuSeconds } from "./bench/proc.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    emails: { type: "string", default: "900" },
    rounds: { type: "string", default: "4" },
    server: { type: "string", default: "aiosmtpd" },
  },
});
const EMAILS = Number(flags.emails);
const ROUNDS = Number(flags.rounds);
/** As many in flight as the mailer hands over at once (`MAX_HANDED_OVER`). */
const IN_FLIGHT = 10;
const SENDER = "Teleport <noreply@example.com>";
const PASSWORD = "bench-Pa55word";

interface Email {
  envelope: { from: string; to: readonly string[] };
  raw: string;
  messageId: string;
}

const compose = messageComposer(SENDER);
const nextId = messageIdGenerator(SENDER);
async function emails(n: number): Promise<Email[]> {
  const out: Email[] = [];
  for (let i = 0; i < n; i++) {
    const id = crypto.randomUUID();
    const content = benchRequestMessage(id);
    const messageId = nextId();
    const { envelope, raw } = await compose(
      prepareEmail({ to: `r${i}@example.com`, ...content }),
      messageId,
    );
    out.push({ envelope, raw, messageId });
  }
  return out;
}

const dir = await Deno.makeTempDir({ prefix: "teleport-email-handover-" });
const { ca, certPath, keyPath } = await localhostTls("pool handover CA", dir);
const server = flags.server === "stall"
  ? await startStallSink(certPath, keyPath)
  : await startAiosmtpd(certPath, keyPath);
const transport = nodemailer.createTransport(smtpTransportOptions({
  kind: "smtp",
  host: "localhost",
  port: server.port,
  username: "bench",
  password: new Secret(PASSWORD),
  starttlsPolicy: "mandatory",
  ca: ca.cert,
}, []));
try {
  const handover = poolHandover(transport);
  if (handover === undefined) throw new Error("this Nodemailer has no pool to hand over to");
  const ways = {
    sendMail: (e: Email) =>
      transport.sendMail({
        envelope: { from: e.envelope.from, to: [...e.envelope.to] },
        raw: e.raw,
        messageId: `<${e.messageId}>`,
      }),
    "hand-over": (e: Email) => handover(e.envelope, e.raw, `<${e.messageId}>`, undefined),
  };
  const run = async (send: (e: Email) => Promise<unknown>, list: Email[]) => {
    let next = 0;
    const worker = async () => {
      while (next < list.length) await send(list[next++]!);
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  };
  for (const send of Object.values(ways)) await run(send, await emails(50)); // warm up
  console.log(`${EMAILS} emails each way, ${IN_FLIGHT} at a time, ${server.name}:`);
  for (let round = 0; round < ROUNDS; round++) {
    const figures: string[] = [];
    // Each way first in every other round, so that neither gains from going second.
    const order = Object.entries(ways);
    if (round % 2 === 1) order.reverse();
    for (const [name, send] of order) {
      const list = await emails(EMAILS);
      const cpu0 = cpuSeconds();
      const t0 = performance.now();
      await run(send, list);
      figures.push(
        `${name} ${((performance.now() - t0) / 1000).toFixed(2)} s, CPU ${
          (cpuSeconds() - cpu0).toFixed(2)
        } s`,
      );
    }
    console.log(`  round ${round + 1}: ${figures.join("; ")}`);
  }
} finally {
  transport.close();
  await server.stop();
  await Deno.remove(dir, { recursive: true });
}
