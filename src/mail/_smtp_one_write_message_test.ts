/**
 * A message and its terminating "." leave in one write (see
 * `_smtp_one_write_message.ts`): Nodemailer's own `_createSendStream`,
 * piped into a socket that records its writes, and the mailer's own sends
 * through a real connection (with the other extensions of `_createSendStream`)
 * to a scripted server. A peer nobody here wrote takes such messages in
 * `smtp_aiosmtpd_test.ts`.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Writable } from "node:stream";
import net from "node:net";
import SMTPConnection from "nodemailer/lib/smtp-connection";
import { joinMessageEnd, MAX_JOINED_BYTES, MESSAGE_END_JOINED } from "./_smtp_one_write_message.ts";
import { createSmtpMailer } from "./smtp.ts";
import { scriptedSmtpServer } from "../../tests/scripted_smtp.ts";

/** A socket stand-in that keeps every write it is given, as Nodemailer's pipe makes them. */
function recordingSocket() {
  const writes: Buffer[] = [];
  const socket = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push(Buffer.from(chunk));
      done();
    },
  });
  return { writes, socket: Object.assign(socket, { setTimeout: () => socket }) };
}

/** Nodemailer's send stream for a connection whose socket is `socket`. */
function sendStream(socket: Writable): NodeJS.ReadWriteStream {
  const connection = {
    _envelope: { accepted: [] },
    options: {},
    _responseActions: [] as unknown[],
    _socket: socket,
    logger: { info() {}, debug() {} },
  };
  const proto = (SMTPConnection as unknown as {
    prototype: { _createSendStream(this: unknown, cb: () => void): NodeJS.ReadWriteStream };
  }).prototype;
  return proto._createSendStream.call(connection, () => {});
}

/**
 * Feeds `chunks` into Nodemailer's send stream (joined) or into a stream of
 * the same class made without the extension; resolves with the writes.
 */
async function written(chunks: string[], join: boolean): Promise<Buffer[]> {
  const { writes, socket } = recordingSocket();
  let stream: NodeJS.ReadWriteStream;
  if (join) {
    stream = sendStream(socket);
  } else {
    const { socket: unused } = recordingSocket();
    const Plain = Object.getPrototypeOf(sendStream(unused)).constructor as new () =>
    NodeJS.ReadWriteStream;
    stream = new Plain();
    stream.pipe(socket);
  }
  for (const c of chunks) stream.write(c);
  stream.end();
  // The pipe writes on the stream's 'data' events, all before its 'end'.
  await new Promise((r) => stream.on("end", r));
  return writes;
}

const MESSAGE = "Subject: s\r\n\r\n.hidden\r\n.\r\nlast line";

Deno.test("smtp: a message and its final dot are one write, with Nodemailer's bytes", async () => {
  assert.ok(MESSAGE_END_JOINED, "the Nodemailer method the extension wraps exists");
  const joined = await written([MESSAGE], true);
  const plain = await written([MESSAGE], false);
  assert.equal(plain.length, 2, "without the extension: the message, then the terminator");
  assert.equal(joined.length, 1, JSON.stringify(joined.map(String)));
  assert.equal(String(joined[0]), String(Buffer.concat(plain)));
  assert.equal(String(joined[0]), "Subject: s\r\n\r\n..hidden\r\n..\r\nlast line\r\n.\r\n");
});

Deno.test("smtp: a message in several chunks keeps its bytes, one write fewer", async () => {
  const chunks = ["Subject: s\r\n\r\n", ".one\r\n", "two\r\n.", "\r\nend\r\n"];
  const joined = await written(chunks, true);
  const plain = await written(chunks, false);
  assert.equal(joined.length, plain.length - 1);
  assert.equal(String(Buffer.concat(joined)), String(Buffer.concat(plain)));
  assert.ok(String(joined.at(-1)).endsWith("end\r\n.\r\n"));
});

Deno.test("smtp: a stream that never flushes still gives what it held", async () => {
  // Not Nodemailer's stream: a stand-in whose flush pushes nothing.
  const pushed: unknown[] = [];
  const stream = {
    push(chunk: unknown) {
      pushed.push(chunk);
      return true;
    },
    _flush(done: () => void) {
      done();
    },
  };
  joinMessageEnd(stream);
  stream.push(Buffer.from("a"));
  stream.push(Buffer.from("b"));
  assert.deepEqual(pushed.map(String), ["a"]);
  await new Promise<void>((r) => stream._flush(r));
  assert.deepEqual(pushed.map(String), ["a", "b"]);
  stream.push(null);
  assert.deepEqual(pushed, [Buffer.from("a"), Buffer.from("b"), null]);
});

Deno.test("smtp: a last chunk too long to copy is written before the terminator", async () => {
  const long = "x".repeat(MAX_JOINED_BYTES + 1);
  const joined = await written([long], true);
  const plain = await written([long], false);
  assert.equal(joined.length, 2);
  assert.equal(String(Buffer.concat(joined)), String(Buffer.concat(plain)));
});

Deno.test("smtp: the mailer's message and its final dot reach the socket as one write", async () => {
  const server = scriptedSmtpServer();
  const mailer = createSmtpMailer(
    { kind: "smtp", host: "127.0.0.1", port: server.port, starttlsPolicy: "disabled" },
    "noreply@example.com",
    { trustedCas: () => [] },
  );
  // Every write the mailer's connection makes, as it makes it.
  const writes: string[] = [];
  const proto = net.Socket.prototype as unknown as { write: (...args: unknown[]) => boolean };
  const write = proto.write;
  proto.write = function (this: unknown, chunk: unknown, ...rest: unknown[]) {
    writes.push(String(chunk));
    return write.call(this, chunk, ...rest);
  };
  try {
    for (const subject of ["one", "two"]) {
      await mailer.send({ to: "a@example.com", subject, text: "hello\n." });
    }
  } finally {
    proto.write = write;
    await mailer.close();
    await server.close();
  }
  assert.equal(server.messages, 2);
  const ends = writes.filter((w) => w.endsWith("\r\n.\r\n"));
  assert.equal(ends.length, 2, JSON.stringify(writes));
  for (const [i, subject] of ["one", "two"].entries()) {
    assert.match(
      ends[i]!,
      new RegExp(`^[\\s\\S]*Subject: ${subject}\\r\\n[\\s\\S]*hello\\r\\n\\.\\.\\r\\n\\.\\r\\n$`),
    );
  }
  assert.ok(!writes.includes(".\r\n") && !writes.includes("\r\n.\r\n"), JSON.stringify(writes));
});
