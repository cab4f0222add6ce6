/**
 * The AUTH guard against an SMTP peer nobody here wrote: aiosmtpd (Debian's
 * `python3-aiosmtpd`) as a plain sink on loopback, which offers neither
 * STARTTLS nor AUTH and logs every command it receives (`-d`). With a
 * username and `starttls_policy = "opportunistic"`, Nodemailer used to skip
 * AUTH there without a word: the health check passed and mail went out
 * unauthenticated. Now the health check and the send fail, and the sink's
 * own log shows that no AUTH command (hence no password) ever reached it.
 * The same sink also shows transactions opened ahead (`openEnvelopes`)
 * waiting before DATA, one going on with its email and one reset, and
 * takes messages whose lines start with a dot intact.
 * Skipped, with one line, where aiosmtpd is not installed.
 */
import assert from "node:assert/strict";
import type { SmtpConfig } from "../config/types.ts";
import { Secret } from "../lib/secret.ts";
import { MailError } from "./mailer.ts";
import { createSmtpMailer, INSECURE_AUTH_CODE } from "./smtp.ts";
import { eventually } from "../../tests/harness.ts";

/** How long aiosmtpd may take to listen. */
const START_TIMEOUT_MS = 10_000;
/** Python interpreters to try: the Debian package installs for the system one. */
const PYTHONS = ["python3", "/usr/bin/python3"];

/** The first interpreter that can import aiosmtpd, if any. */
async function findPython(): Promise<string | undefined> {
  for (const python of PYTHONS) {
    try {
      const { code } = await new Deno.Command(python, {
        args: ["-c", "import aiosmtpd"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (code === 0) return python;
    } catch {
      // Not there.
    }
  }
  return undefined;
}

interface Sink {
  readonly port: number;
  /** Everything aiosmtpd logged so far (`>> b'EHLO …'` per command received). */
  log(): string;
  /** The messages it printed (aiosmtpd's Debugging handler writes them to stdout). */
  output(): string;
  close(): Promise<void>;
}

async function startSink(python: string): Promise<Sink> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const child = new Deno.Command(python, {
    args: ["-m", "aiosmtpd", "-n", "-d", "-l", `127.0.0.1:${port}`],
    env: { PYTHONUNBUFFERED: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  let output = "";
  const decoder = () => new TextDecoderStream();
  const pumps = [
    child.stderr.pipeThrough(decoder()).pipeTo(
      new WritableStream({ write: (c) => void (log += c) }),
    ),
    child.stdout.pipeThrough(decoder()).pipeTo(
      new WritableStream({ write: (c) => void (output += c) }),
    ),
  ];
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!log.includes("Server is listening")) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`aiosmtpd did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port,
    log: () => log,
    output: () => output,
    async close() {
      child.kill("SIGTERM");
      await child.status;
      await Promise.allSettled(pumps);
    },
  };
}

const python = await findPython();

/** A mailer without a password for `sink`. */
function mailerFor(sink: Sink, starttlsPolicy: SmtpConfig["starttlsPolicy"]) {
  return createSmtpMailer(
    { kind: "smtp", host: "127.0.0.1", port: sink.port, starttlsPolicy },
    "noreply@example.com",
    { trustedCas: () => [] },
  );
}

Deno.test({
  name: "smtp against aiosmtpd: no STARTTLS offered, a username: nothing sent, no AUTH on the wire",
  ignore: python === undefined,
  async fn() {
    const sink = await startSink(python!);
    const cfg = (o: Partial<SmtpConfig>): SmtpConfig => ({
      kind: "smtp",
      host: "127.0.0.1",
      port: sink.port,
      starttlsPolicy: "opportunistic",
      ...o,
    });
    const secured = createSmtpMailer(
      cfg({ username: "teleport", password: new Secret("pa55-for-aiosmtpd") }),
      "noreply@example.com",
      { trustedCas: () => [] },
    );
    const open = createSmtpMailer(cfg({}), "noreply@example.com", { trustedCas: () => [] });
    try {
      for (
        const attempt of [
          () => secured.checkHealth(),
          () => secured.send({ to: "a@example.com", subject: "with a password", text: "t" }),
        ]
      ) {
        const error = await attempt().then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof MailError, `expected a MailError, got ${error}`);
        assert.equal(error.code, INSECURE_AUTH_CODE);
        assert.match(error.message, /refusing to send the password unencrypted/);
      }
      // The same sink takes mail from a mailer without a password: the refusal was ours.
      await open.send({ to: "a@example.com", subject: "without a password", text: "t" });
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (!sink.output().includes("without a password") && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.match(sink.output(), /Subject: without a password/);
      assert.doesNotMatch(sink.output(), /with a password/);
      assert.match(sink.log(), />> b'EHLO /, "aiosmtpd logs what it receives");
      assert.doesNotMatch(sink.log(), />> b'AUTH/i, sink.log());
      assert.ok(!sink.log().includes("pa55-for-aiosmtpd"));
    } finally {
      await secured.close();
      await open.close();
      await sink.close();
    }
  },
});

Deno.test({
  name: "smtp against aiosmtpd: envelopes opened ahead wait before DATA; one goes on, one is reset",
  ignore: python === undefined,
  async fn() {
    const sink = await startSink(python!);
    const mailer = mailerFor(sink, "opportunistic");
    const count = (pattern: RegExp) => sink.log().match(pattern)?.length ?? 0;
    try {
      const release = mailer.openEnvelopes!(["a@example.com", "b@example.com"]);
      await eventually(
        () => count(/>> b'RCPT TO:<[ab]@example\.com>'/g) === 2,
        START_TIMEOUT_MS,
        "RCPT TO",
      );
      assert.equal(count(/>> b'DATA'/g), 0, sink.log());
      await mailer.send({ to: "a@example.com", subject: "opened ahead", text: "t" });
      await eventually(() => sink.output().includes("opened ahead"), START_TIMEOUT_MS, "message");
      release();
      await eventually(() => count(/>> b'RSET'/g) === 1, START_TIMEOUT_MS, "RSET");
      assert.equal(count(/>> b'DATA'/g), 1, sink.log());
      assert.equal(count(/>> b'MAIL FROM/g), 2, sink.log());
      // The reset connection takes the next email.
      await mailer.send({ to: "b@example.com", subject: "after the reset", text: "t" });
      await eventually(
        () => sink.output().includes("after the reset"),
        START_TIMEOUT_MS,
        "message",
      );
      assert.equal(sink.output().match(/^Subject: /gm)?.length, 2, sink.output());
    } finally {
      await mailer.close();
      await sink.close();
    }
  },
});

Deno.test({
  name: "smtp against aiosmtpd: lines that start with a dot arrive as written",
  ignore: python === undefined,
  async fn() {
    // What a peer receives once the message and its final "." go in one write
    // (_smtp_one_write_message.ts; the write itself is counted in its own test).
    const sink = await startSink(python!);
    const mailer = mailerFor(sink, "disabled");
    try {
      const text = ".first\n.\n..two dots\nmiddle\n.";
      for (const subject of ["dots one", "dots two"]) {
        await mailer.send({ to: "a@example.com", subject, text });
      }
      await eventually(
        () => (sink.output().match(/^Subject: dots /gm)?.length ?? 0) === 2,
        START_TIMEOUT_MS,
        "both messages",
      );
      // aiosmtpd's Debugging handler prints each message as it took it, the dot-stuffing undone.
      const bodies = sink.output().split(/^Subject: dots /m).slice(1);
      assert.equal(bodies.length, 2);
      for (const body of bodies) {
        assert.match(body, /^\.first\r?\n\.\r?\n\.\.two dots\r?\nmiddle\r?\n\.\r?$/m, body);
      }
    } finally {
      await mailer.close();
      await sink.close();
    }
  },
});

if (python === undefined) {
  console.log(
    "smtp_aiosmtpd_test: skipped, aiosmtpd is not installed (apt-get install -y python3-aiosmtpd)",
  );
}
