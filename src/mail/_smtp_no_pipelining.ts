/**
 * Workaround: Nodemailer sends without SMTP PIPELINING (RFC 2920).
 *
 * Why. Nodemailer 10 pipelines `MAIL FROM`, `RCPT TO` and `DATA` in one
 * write when the server advertises PIPELINING. A server that answers the
 * three with three separate writes while Nagle's algorithm is on for its
 * socket (smtp-server ≤ 3.13, any Node or Deno server that leaves
 * `noDelay` off) sends the first reply at once and holds the other two until
 * that segment is acknowledged; Linux delays that ACK by up to 40 ms, so every
 * message stalls 40–48 ms (measured: 48 ms p50 per message; strace shows the
 * second and third replies leave the server 42 ms after the first, while our
 * own socket has TCP_NODELAY set, as Nodemailer and grpc-js both set it). The
 * client cannot turn the server's Nagle off, and Deno offers no
 * TCP_QUICKACK. Without pipelining every reply is the only unacknowledged
 * segment and leaves at once: 2–3 ms per message against the same server,
 * no slower against servers that batch their replies (Postfix, aiosmtpd,
 * smtp-server 3.21), at the price of two round trips per message, which on
 * a relay's LAN cost far less than the stall. Go's `net/smtp`, which the Go
 * plugin uses, does not pipeline either.
 *
 * How. Nodemailer decides per message, in `SMTPConnection#_setEnvelope`,
 * from the extensions the server advertised; the patch hides PIPELINING
 * from that one decision. Nodemailer has no option for it (checked in
 * 10.6.0, the version pinned in deno.json; `_smtp_no_pipelining_test.ts`
 * fails if an upgrade changes the method). Delete this file if Nodemailer
 * gains such an option or replies to pipelined commands stop being split by
 * the servers users run.
 */
import SMTPConnection from "nodemailer/lib/smtp-connection";

/** The extension whose use is turned off. */
const PIPELINING = "PIPELINING";

interface ConnectionInternals {
  _supportedExtensions: string[];
  _setEnvelope: (...args: unknown[]) => unknown;
}

const proto = (SMTPConnection as unknown as { prototype: ConnectionInternals }).prototype;

/** Whether the patch is in place (the method it wraps exists in this Nodemailer). */
export const PIPELINING_DISABLED: boolean = typeof proto._setEnvelope === "function";

if (PIPELINING_DISABLED && !(proto._setEnvelope as { noPipelining?: true }).noPipelining) {
  const original = proto._setEnvelope;
  const patched = function (this: ConnectionInternals, ...args: unknown[]): unknown {
    const advertised = this._supportedExtensions;
    this._supportedExtensions = advertised.filter((ext) => ext !== PIPELINING);
    try {
      return original.apply(this, args);
    } finally {
      this._supportedExtensions = advertised;
    }
  };
  proto._setEnvelope = Object.assign(patched, { noPipelining: true as const });
}
