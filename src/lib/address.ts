/**
 * Email address checks for what operators write in the config and what
 * Teleport hands us as reviewers: plain `local@domain` addresses (recipients)
 * and mailboxes with an optional display name (the sender). Deliberately a
 * practical subset of RFC 5321/5322: dot-atom local parts, hostname-like
 * domains, no quoted local parts, comments or domain literals, and never a CR
 * or LF (header injection).
 */

/** RFC 5321 §4.5.3.1: longest local part, domain and whole address. */
const MAX_LOCAL_LENGTH = 64;
const MAX_DOMAIN_LENGTH = 253;
const MAX_ADDRESS_LENGTH = 254;
/** RFC 1035: longest DNS label. */
const MAX_LABEL_LENGTH = 63;

/** RFC 5322 `atext` punctuation (letters, digits and non-ASCII are allowed too). */
const ATEXT_PUNCTUATION = "!#$%&'*+-/=?^_`{|}~";

/** A sender mailbox: `Name <address>` or a bare address. */
export interface Mailbox {
  readonly name?: string;
  readonly address: string;
}

/**
 * Beyond ASCII, what an address may hold: anything but white space (U+00A0,
 * U+2028, U+3000...), controls, and invisible format characters (U+200B,
 * U+FEFF, U+00AD, direction overrides), which Nodemailer's address parser
 * reads as separators or the domain's IDNA conversion drops, so that the
 * address checked, de-duplicated and recorded would not be the one mailed.
 * The zero-width joiner and non-joiner stay allowed: IDNA keeps them where
 * a script needs them (Persian, Indic labels).
 */
const NOT_IN_ADDRESS = /[\s\p{Cc}\p{Cf}\p{Z}\p{Cs}\p{Co}\p{Cn}]/u;
const JOINERS = new Set(["\u200c", "\u200d"]);

function isAddressChar(char: string): boolean {
  if (/^[A-Za-z0-9]$/.test(char)) return true;
  return char.charCodeAt(0) >= 0x80 && (JOINERS.has(char) || !NOT_IN_ADDRESS.test(char));
}

function hasControlCharacter(text: string): boolean {
  // C0 controls (CR, LF, TAB, NUL...), DEL, C1 controls (NEL...) and the Unicode line and
  // paragraph separators.
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029) {
      return true;
    }
  }
  return false;
}

function isDotAtom(text: string, isAllowed: (char: string) => boolean): boolean {
  const atoms = text.split(".");
  return atoms.every((atom) => atom !== "" && [...atom].every(isAllowed));
}

function isLocalPart(local: string): boolean {
  return local.length <= MAX_LOCAL_LENGTH &&
    isDotAtom(local, (char) => isAddressChar(char) || ATEXT_PUNCTUATION.includes(char));
}

function isDomain(domain: string): boolean {
  if (domain.length > MAX_DOMAIN_LENGTH) return false;
  if (!isDotAtom(domain, (char) => isAddressChar(char) || char === "-" || char === "_")) {
    return false;
  }
  return domain.split(".").every((label) =>
    label.length <= MAX_LABEL_LENGTH && !label.startsWith("-") && !label.endsWith("-")
  );
}

/**
 * True for a bare `local@domain` address: no display name, angle brackets,
 * spaces or control characters, exactly one `@`, a dot-atom local part and a
 * hostname-like domain (a dotless one such as `localhost` is allowed).
 */
export function isPlainAddress(text: string): boolean {
  if (typeof text !== "string" || text.length > MAX_ADDRESS_LENGTH) return false;
  if (hasControlCharacter(text)) return false;
  const parts = text.split("@");
  if (parts.length !== 2) return false;
  const [local = "", domain = ""] = parts;
  return isLocalPart(local) && isDomain(domain);
}

/**
 * True for a plain address that can be a recipient: one whose thread plugin
 * data can keep. A thread is stored as `<address>/<time>/<id>`, and the Go
 * plugin drops an entry that does not split into three, so a recipient with
 * a `/` would lose its thread after a swap to it. (The sender, never stored,
 * may have one; so may threads stored before this rule, which are still
 * mailed.)
 */
export function isRecipientAddress(text: string): boolean {
  return isPlainAddress(text) && !text.includes("/");
}

/** Characters that need quoting in a display name (RFC 5322 `specials`). */
const NAME_SPECIALS = /[()<>\[\]:;@\\,"]/;

function invalidMailbox(text: string, reason: string): TypeError {
  return new TypeError(`Invalid email address ${JSON.stringify(text)}: ${reason}`);
}

/** Reads a quoted display name (`"Team, Ops"`), undoing backslash escapes. */
function parseQuotedName(text: string, quoted: string): { name: string; rest: string } {
  let name = "";
  for (let i = 1; i < quoted.length; i++) {
    const char = quoted[i];
    if (char === "\\") {
      i++;
      const escaped = quoted[i];
      if (escaped === undefined) break;
      name += escaped;
    } else if (char === '"') {
      return { name, rest: quoted.slice(i + 1) };
    } else {
      name += char;
    }
  }
  throw invalidMailbox(text, "unterminated quoted display name");
}

/**
 * Parses a sender mailbox: a plain address, `Display Name <address>`,
 * `"Quoted, Name" <address>` or `<address>`. Throws `TypeError` naming the
 * text when it is not one of those or the address is not plain.
 */
export function parseMailbox(text: string): Mailbox {
  if (hasControlCharacter(text)) throw invalidMailbox(text, "contains a control character");
  const trimmed = text.trim();
  if (trimmed === "") throw invalidMailbox(text, "empty");

  let name: string;
  let rest: string;
  if (trimmed.startsWith('"')) {
    ({ name, rest } = parseQuotedName(text, trimmed));
    rest = rest.trimStart();
    if (!rest.startsWith("<")) throw invalidMailbox(text, "expected <address> after the name");
  } else if (!trimmed.includes("<")) {
    if (!isPlainAddress(trimmed)) throw invalidMailbox(text, "not a valid address");
    return { address: trimmed };
  } else {
    const open = trimmed.indexOf("<");
    name = trimmed.slice(0, open).trim();
    rest = trimmed.slice(open);
    if (NAME_SPECIALS.test(name)) {
      throw invalidMailbox(text, "display name has special characters and must be quoted");
    }
  }
  if (!rest.endsWith(">") || rest.indexOf(">") !== rest.length - 1) {
    throw invalidMailbox(text, "expected the address to end with >");
  }
  const address = rest.slice(1, -1);
  if (!isPlainAddress(address)) throw invalidMailbox(text, "not a valid address");
  return name === "" ? { address } : { name, address };
}

/** The domain of a plain address (`a@example.com` → `example.com`), as written. */
export function addressDomain(address: string): string {
  if (!isPlainAddress(address)) {
    throw new TypeError(`Invalid email address ${JSON.stringify(address)}: not a plain address`);
  }
  return address.slice(address.indexOf("@") + 1);
}
