/**
 * Extension: a message and its final "." leave in one write.
 *
 * Why. Nodemailer streams a message through its `DataStream` (dot-stuffing),
 * piped into the socket: the message's last chunk is one write and the
 * terminating `.` line, pushed when the stream ends, another. Each write to
 * a TLS socket is a TLS record, a system call and, on a relay on the same
 * host, a wake-up of the server; five per email (`MAIL FROM`, `RCPT TO`,
 * `DATA`, the message, the `.`), and the last two carry nothing that cannot
 * go together (strace of the plugin: 55, 49, 28, 2973 and 25 bytes a
 * transaction; what that saves in CPU is in the README's "What changed").
 *
 * How. On each stream `SMTPConnection#_createSendStream` returns (checked in
 * Nodemailer 10.6.0, pinned in deno.json), the chunk the stream would push
 * is held until the next one, and the terminator that its `_flush` pushes
 * is joined to the held chunk: the same bytes in the same order, one push,
 * so one write, and never more than one chunk held. The message and its
 * "." are one write when the message's last chunk holds its end, as the
 * mailer's raw messages (one string ending in CRLF) do; a chunk longer than
 * `MAX_JOINED_BYTES` is not copied to save a write. Nodemailer has no option
 * for it; `_smtp_one_write_message_test.ts` fails if an upgrade changes the
 * method or the stream's shape.
 */
import SMTPConnection from "nodemailer/lib/smtp-connection";
import { Buffer } from "node:buffer";

/**
 * The longest last chunk joined to the terminator: joining copies it, which
 * beyond a few TLS records (16 KiB each) costs more than the write it saves.
 */
export const MAX_JOINED_BYTES = 64 * 1024;

/** What the extension touches on Nodemailer's `DataStream` (a `Transform`). */
interface DataStreamInternals {
  push(chunk: unknown, encoding?: string): boolean;
  _flush(done: (err?: Error | null) => void): void;
}

interface ConnectionInternals {
  _createSendStream: (...args: unknown[]) => unknown;
}

const proto = (SMTPConnection as unknown as { prototype: ConnectionInternals }).prototype;

/** Whether a stream is one this extension can join the end of. */
function isDataStream(stream: unknown): stream is DataStreamInternals {
  const s = stream as Partial<DataStreamInternals> | null;
  return typeof s?.push === "function" && typeof s._flush === "function";
}

/** Holds each chunk `stream` pushes until the next, and joins the last to the terminator. */
export function joinMessageEnd(stream: DataStreamInternals): void {
  const push = stream.push;
  const flush = stream._flush;
  let held: Uint8Array | undefined;
  let flushing = false;
  stream.push = function (this: DataStreamInternals, chunk: unknown, encoding?: string): boolean {
    if (!(chunk instanceof Uint8Array)) {
      // The end (null) or something this does not hold: what is held goes first.
      if (held !== undefined) {
        const before = held;
        held = undefined;
        push.call(this, before);
      }
      return push.call(this, chunk, encoding);
    }
    if (flushing) {
      // The terminator: one chunk with the message's last bytes, unless they are many.
      if (held !== undefined && held.length > MAX_JOINED_BYTES) {
        push.call(this, held);
        held = undefined;
      }
      const last = held === undefined ? chunk : Buffer.concat([held, chunk]);
      held = undefined;
      return push.call(this, last);
    }
    const before = held;
    held = chunk;
    return before === undefined ? true : push.call(this, before);
  };
  stream._flush = function (this: DataStreamInternals, done): void {
    flushing = true;
    flush.call(this, (err) => {
      // Nothing came from the flush (not this Nodemailer's): what is held still goes.
      if (held !== undefined) {
        const before = held;
        held = undefined;
        push.call(this, before);
      }
      done(err);
    });
  };
}

/** Whether the extension is in place (the method it wraps exists in this Nodemailer). */
export const MESSAGE_END_JOINED: boolean = typeof proto._createSendStream === "function";

type Marked = { messageEndJoined?: true };

if (MESSAGE_END_JOINED && !(proto._createSendStream as Marked).messageEndJoined) {
  const createSendStream = proto._createSendStream;
  proto._createSendStream = Object.assign(
    function (this: ConnectionInternals, ...args: unknown[]): unknown {
      const stream = createSendStream.apply(this, args);
      if (isDataStream(stream)) joinMessageEnd(stream);
      return stream;
    },
    { messageEndJoined: true as const },
  );
}
