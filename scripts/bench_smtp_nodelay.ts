/**
 * Measures what TCP_NODELAY is worth on the SMTP socket (SPEC §7): sequential
 * sends over one pooled connection to the fake SMTP server on loopback, in
 * milliseconds per message, with Nagle's algorithm on and off, in plaintext
 * and with STARTTLS.
 *
 *   deno run -A scripts/bench_smtp_nodelay.ts [messages]
 *
 * Modes:
 * - `mailer`: `createSmtpMailer` as shipped (Nodemailer sets TCP_NODELAY itself).
 * - `nagle`: the same options, but the socket comes from a `getSocket` hook
 *   that leaves Nagle on and stops Nodemailer from turning it off.
 * - `hook`: the same hook setting `setNoDelay(true)` itself, to show the hook
 *   alone gives the gain (what we would do if Nodemailer stopped doing it).
 */
import net from "node:net";
import nodemailer, { type SMTPPoolOptions } from "nodemailer";
import type { SmtpConfig } from "../src/config/types.ts";
import { createSmtpMailer, smtpTransportOptions } from "../src/mail/smtp.ts";
import { issueCert, makeCa } from "../tests/pki.ts";
import { startSmtpServer } from "../tests/smtp_server.ts";

/** Messages per measurement, after the warm-up. */
const DEFAULT_MESSAGES = 100;
/** Messages sent first to open the connection and warm the JIT. */
const WARM_UP_MESSAGES = 5;

type Mode = "mailer" | "nagle" | "hook";

interface Send {
  send(i: number): Promise<unknown>;
  close(): void | Promise<void>;
}

const EMAIL = (i: number) => ({
  to: "bench@example.com",
  subject: `Role Request ${i}`,
  text: "You have a new Role Request:\n\nID: 1234\nUser: alice\n",
  html: "<p>You have a new Role Request</p>",
});

function transportFor(mode: Mode, cfg: SmtpConfig, ca: string): Send {
  if (mode === "mailer") {
    const mailer = createSmtpMailer(cfg, "bench@example.com", { trustedCas: () => [] });
    return { send: (i) => mailer.send(EMAIL(i)), close: () => mailer.close() };
  }
  const getSocket: NonNullable<SMTPPoolOptions["getSocket"]> = (_opts, callback) => {
    const socket = net.connect({ host: cfg.host, port: cfg.port }, () => {
      socket.setNoDelay(mode === "hook");
      // Nodemailer calls setNoDelay(true) on every socket; keep Nagle on for "nagle".
      if (mode === "nagle") socket.setNoDelay = () => socket;
      callback(null, { connection: socket });
    });
    socket.once("error", (err) => callback(err, false));
  };
  const options = smtpTransportOptions(cfg, [ca]);
  const transporter = nodemailer.createTransport({ ...options, maxConnections: 1, getSocket });
  return {
    send: (i) => transporter.sendMail({ from: "bench@example.com", ...EMAIL(i) }),
    close: () => transporter.close(),
  };
}

async function measure(mode: Mode, starttls: boolean, messages: number): Promise<number> {
  const ca = await makeCa("Bench CA");
  const cert = await issueCert(ca, {
    commonName: "localhost",
    ipAddresses: ["127.0.0.1"],
    usage: "server",
  });
  const server = await startSmtpServer(starttls ? { tls: cert } : {});
  const cfg: SmtpConfig = {
    kind: "smtp",
    host: "127.0.0.1",
    port: server.port,
    starttlsPolicy: starttls ? "mandatory" : "disabled",
    ca: ca.cert,
  };
  const transport = transportFor(mode, cfg, ca.cert);
  try {
    for (let i = 0; i < WARM_UP_MESSAGES; i++) await transport.send(i);
    const start = performance.now();
    for (let i = 0; i < messages; i++) await transport.send(i);
    return (performance.now() - start) / messages;
  } finally {
    await transport.close();
    await server.close();
  }
}

const messages = Number(Deno.args[0] ?? DEFAULT_MESSAGES);
console.log(
  `${messages} sequential messages over one pooled connection, Deno ${Deno.version.deno}`,
);
for (const starttls of [false, true]) {
  for (const mode of ["mailer", "nagle", "hook"] as const) {
    const ms = await measure(mode, starttls, messages);
    const label = `${starttls ? "STARTTLS " : "plaintext"} ${mode.padEnd(6)}`;
    console.log(`${label} ${ms.toFixed(2).padStart(7)} ms/message`);
  }
}
