/**
 * Extension: an SMTP transaction that waits before `DATA`.
 *
 * Why. A new request's first emails may go out only once its claim is
 * written to the cluster (one round trip), and each email then costs four
 * round trips to the mail server without pipelining (`MAIL FROM`, `RCPT TO`,
 * `DATA`, the message). `MAIL FROM` and `RCPT TO` deliver nothing, and `RSET`
 * undoes them, so the mailer sends them while the claim is being written
 * (`SmtpMailer.openEnvelopes`) and holds the transaction there: `DATA` and
 * the message follow once the email is really sent, or `RSET` once it is
 * not (the claim lost to another replica, the request gone).
 *
 * How. An envelope given to Nodemailer may carry a promise under
 * `ENVELOPE_GATE` (Nodemailer copies an envelope's own keys onto the one the
 * connection gets). `SMTPConnection#_advanceEnvelope`, which sends `DATA` once
 * the last `RCPT TO` is answered when pipelining is off (it is:
 * `_smtp_no_pipelining.ts`), waits for that promise first. Resolved, the
 * transaction goes on as Nodemailer would have; rejected, the message fails
 * with `EENVELOPE`, on which Nodemailer's pool resets the session (`RSET`)
 * and keeps the connection. `_smtp_envelope_gate_test.ts` fails if a
 * Nodemailer upgrade changes the method. Delete this file if Nodemailer
 * gains a way to hold a transaction before `DATA`.
 */
import SMTPConnection from "nodemailer/lib/smtp-connection";

/** The envelope key of the promise that `DATA` waits for. */
export const ENVELOPE_GATE = "teleportEmailGate";

interface Envelope {
  pipelined?: boolean;
  mailError?: unknown;
  rcptQueue: unknown[];
  [ENVELOPE_GATE]?: Promise<void>;
}

interface ConnectionInternals {
  _envelope?: Envelope;
  _recipientQueue: unknown[];
  _destroyed?: boolean;
  _advanceEnvelope: (str: string, callback: (err: Error | null) => void) => unknown;
  _envelopeError: (str: string) => unknown;
  _formatError: (message: string, type: string, response: unknown, command: string) => Error;
}

const proto = (SMTPConnection as unknown as { prototype: ConnectionInternals }).prototype;

/** Whether the extension is in place (the method it wraps exists in this Nodemailer). */
export const ENVELOPE_GATE_AVAILABLE: boolean = typeof proto._advanceEnvelope === "function";

if (ENVELOPE_GATE_AVAILABLE && !(proto._advanceEnvelope as { gated?: true }).gated) {
  const original = proto._advanceEnvelope;
  const patched = function (
    this: ConnectionInternals,
    str: string,
    callback: (err: Error | null) => void,
  ): unknown {
    const envelope = this._envelope;
    const gate = envelope?.[ENVELOPE_GATE];
    // Only where Nodemailer is about to send DATA: every reply in, a recipient accepted.
    if (
      gate === undefined || envelope!.pipelined || envelope!.mailError ||
      envelope!.rcptQueue.length > 0 || this._recipientQueue.length > 0 ||
      this._envelopeError(str)
    ) return original.call(this, str, callback);
    // The connection may have failed (and answered the message) meanwhile.
    const current = () => this._envelope === envelope && !this._destroyed;
    gate.then(
      () => {
        if (current()) original.call(this, str, callback);
      },
      (reason) => {
        if (!current()) return;
        const why = reason instanceof Error ? reason.message : String(reason);
        callback(this._formatError(`Not sent: ${why}`, "EENVELOPE", false, "DATA"));
      },
    );
    return undefined;
  };
  proto._advanceEnvelope = Object.assign(patched, { gated: true as const });
}
