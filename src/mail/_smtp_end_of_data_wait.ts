/**
 * Workaround: Nodemailer waits the server's answer to the message's final
 * "." as long as any other reply, `socketTimeout` (10 s here, so that a
 * server silent in the middle of a session is given up on quickly).
 *
 * Why. A server answers the final "." only after it has taken the message:
 * a relay that scans content first (a milter such as rspamd or amavis;
 * Postfix waits for one up to `milter_content_timeout`, 300 s) takes well
 * over 10 s under load. Timing out then and sending again delivers the email
 * once per try (reproduced with Postfix and a 12 s end-of-data check: three
 * tries, three copies). RFC 5321 §4.5.3.2.6 asks the client to wait 10
 * minutes here for that reason.
 *
 * How. From the moment the message starts to stream (Nodemailer's
 * `SMTPConnection#_createSendStream`, after the server's 354) to its answer
 * (`_actionSMTPStream`), the socket's inactivity limit is
 * `END_OF_DATA_TIMEOUT_MS`; then it is Nodemailer's again. Nodemailer has no
 * option for it (checked in 10.6.0, pinned in deno.json;
 * `_smtp_end_of_data_wait_test.ts` fails if an upgrade changes either method).
 */
import SMTPConnection from "nodemailer/lib/smtp-connection";

/**
 * How long the answer to the final "." is waited for: longer than Postfix
 * waits for a milter (300 s), shorter than the 10 minutes a request's
 * handling may take.
 */
export const END_OF_DATA_TIMEOUT_MS = 6 * 60_000;

interface ConnectionInternals {
  _socket?: { setTimeout(ms: number): unknown };
  options: { socketTimeout?: number };
  _createSendStream: (...args: unknown[]) => unknown;
  _actionSMTPStream: (...args: unknown[]) => unknown;
}

const proto = (SMTPConnection as unknown as { prototype: ConnectionInternals }).prototype;

/** Whether the patch is in place (the methods it wraps exist in this Nodemailer). */
export const END_OF_DATA_WAIT_PATCHED: boolean = typeof proto._createSendStream === "function" &&
  typeof proto._actionSMTPStream === "function";

type Marked = { endOfDataWait?: true };

if (END_OF_DATA_WAIT_PATCHED && !(proto._createSendStream as Marked).endOfDataWait) {
  const createSendStream = proto._createSendStream;
  const actionSmtpStream = proto._actionSMTPStream;
  proto._createSendStream = Object.assign(
    function (this: ConnectionInternals, ...args: unknown[]): unknown {
      this._socket?.setTimeout(END_OF_DATA_TIMEOUT_MS);
      return createSendStream.apply(this, args);
    },
    { endOfDataWait: true as const },
  );
  proto._actionSMTPStream = function (this: ConnectionInternals, ...args: unknown[]): unknown {
    // Nodemailer's own default (10 min) when no socketTimeout was given.
    this._socket?.setTimeout(this.options.socketTimeout ?? 10 * 60_000);
    return actionSmtpStream.apply(this, args);
  };
}
