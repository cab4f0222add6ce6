/**
 * Message-IDs for the emails we send over SMTP (Mailgun assigns its own):
 * `<random>.<time>@<sender domain>`, returned without angle brackets. The
 * random part alone makes them unique; the time part helps people reading
 * mail logs.
 */
import { domainToASCII } from "node:url";
import { addressDomain, parseMailbox } from "../lib/address.ts";

/** Bytes of randomness per Message-ID: 128 bits, collision-free in practice. */
const RANDOM_BYTES = 16;

export interface MessageIdDeps {
  /** Fills the array with random bytes; default `crypto.getRandomValues`. */
  readonly randomBytes?: (bytes: Uint8Array) => void;
  /** Milliseconds since the epoch; default `Date.now`. */
  readonly now?: () => number;
}

/** The domain of the sender mailbox (`Teleport <noreply@example.com>` → `example.com`). */
export function senderDomain(sender: string): string {
  return addressDomain(parseMailbox(sender).address);
}

/**
 * Returns a factory of Message-IDs (without brackets) in the sender's domain.
 * Throws `TypeError` when `sender` is not a valid mailbox.
 */
export function messageIdGenerator(sender: string, deps: MessageIdDeps = {}): () => string {
  // A header is ASCII: an internationalised domain goes in as its punycode (as From does).
  const written = senderDomain(sender);
  // deno-lint-ignore no-control-regex
  const domain = /^[\x00-\x7f]*$/.test(written) ? written : domainToASCII(written) || written;
  const randomBytes = deps.randomBytes ?? ((bytes: Uint8Array) => crypto.getRandomValues(bytes));
  const now = deps.now ?? Date.now;
  return () => {
    const bytes = new Uint8Array(RANDOM_BYTES);
    randomBytes(bytes);
    const random = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${random}.${now().toString(36)}@${domain}`;
  };
}
