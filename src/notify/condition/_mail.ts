/**
 * `email.local`: the local part of an address as Teleport takes it
 * (`parse.EmailLocal`): Go's `net/mail.ParseAddress` reads one RFC 5322
 * address (a bare addr-spec, or a display name and an angle address,
 * comments allowed), and the local part is what comes before the first "@"
 * of the parsed address. This is a port of that parser's grammar and of its
 * error cases; display names are only checked, never kept.
 */
import { quote } from "./_error.ts";

/** The local part of `email`; throws an `Error` worded like Teleport's. */
export function emailLocal(email: string): string {
  if (email === "") throw new Error('found empty "email.local" argument');
  let address: string;
  try {
    address = parseSingleAddress(email);
  } catch (error) {
    throw new Error(
      `failed to parse "email.local" argument ${quote(email)}: ${(error as Error).message}`,
    );
  }
  const at = address.indexOf("@");
  if (at === -1) {
    throw new Error(
      `could not find local part in "email.local" argument ${quote(email)}, ${quote(address)}`,
    );
  }
  return address.slice(0, at);
}

const mailError = (text: string) => new Error(`mail: ${text}`);

/** `net/mail.ParseAddress(s).Address`. */
export function parseSingleAddress(s: string): string {
  const p = new AddrParser(s);
  const addresses = p.parseAddress(true);
  if (!p.skipCFWS()) throw mailError("misformatted parenthetical comment");
  if (!p.empty()) throw mailError(`expected single address, got ${quote(p.s)}`);
  if (addresses.length === 0) throw mailError("empty group");
  if (addresses.length > 1) throw mailError("group with multiple addresses");
  return addresses[0]!;
}

class AddrParser {
  s: string;

  constructor(s: string) {
    this.s = s;
  }

  parseAddress(handleGroup: boolean): string[] {
    this.skipSpace();
    if (this.empty()) throw mailError("no address");
    // addr-spec is more restricted than name-addr: try it first.
    const spec = this.tryAddrSpec();
    if (spec !== undefined) {
      this.skipSpace();
      if (!this.empty() && this.peek() === "(") this.consumeDisplayNameComment();
      return [spec];
    }
    let displayName = "";
    if (this.peek() !== "<") displayName = this.consumePhrase();
    this.skipSpace();
    if (handleGroup && this.consume(":")) return this.consumeGroupList();
    if (!this.consume("<")) {
      const atext = [...displayName].every((ch) => isAtext(ch.codePointAt(0)!, true));
      throw mailError(atext ? "missing '@' or angle-addr" : "no angle-addr");
    }
    const inner = this.consumeAddrSpec();
    if (!this.consume(">")) throw mailError("unclosed angle-addr");
    return [inner];
  }

  consumeGroupList(): string[] {
    const group: string[] = [];
    this.skipSpace();
    if (this.consume(";")) {
      if (!this.skipCFWS()) throw mailError("misformatted parenthetical comment");
      return group;
    }
    for (;;) {
      this.skipSpace();
      group.push(...this.parseAddress(false));
      if (!this.skipCFWS()) throw mailError("misformatted parenthetical comment");
      if (this.consume(";")) {
        if (!this.skipCFWS()) throw mailError("misformatted parenthetical comment");
        return group;
      }
      if (!this.consume(",")) throw mailError("expected comma");
    }
  }

  /** `consumeAddrSpec`, leaving the input as it was when it fails. */
  tryAddrSpec(): string | undefined {
    const saved = this.s;
    try {
      return this.consumeAddrSpec();
    } catch {
      this.s = saved;
      return undefined;
    }
  }

  consumeAddrSpec(): string {
    const saved = this.s;
    try {
      this.skipSpace();
      if (this.empty()) throw mailError("no addr-spec");
      let localPart: string;
      if (this.peek() === '"') {
        localPart = this.consumeQuotedString();
        if (localPart === "") throw mailError("empty quoted string in addr-spec");
      } else {
        localPart = this.consumeAtom(true, false);
      }
      if (!this.consume("@")) throw mailError("missing @ in addr-spec");
      this.skipSpace();
      if (this.empty()) throw mailError("no domain in addr-spec");
      const domain = this.peek() === "["
        ? this.consumeDomainLiteral()
        : this.consumeAtom(true, false);
      return `${localPart}@${domain}`;
    } catch (error) {
      this.s = saved;
      throw error;
    }
  }

  consumePhrase(): string {
    const words: string[] = [];
    let failure: Error | undefined;
    for (;;) {
      if (words.length > 0 && !this.skipCFWS()) {
        throw mailError("misformatted parenthetical comment");
      }
      this.skipSpace();
      if (this.empty()) break;
      try {
        if (this.peek() === '"') words.push(this.consumeQuotedString());
        else words.push(decodeRfc2047Word(this.consumeAtom(true, true)));
      } catch (error) {
        failure = error as Error;
        break;
      }
    }
    if (failure && words.length === 0) {
      throw mailError(`missing word in phrase: ${failure.message}`);
    }
    return words.join(" ");
  }

  consumeQuotedString(): string {
    let i = 1; // the opening quote
    let out = "";
    let escaped = false;
    for (;;) {
      const cp = this.s.codePointAt(i);
      if (cp === undefined) throw mailError("unclosed quoted-string");
      const ch = String.fromCodePoint(cp);
      if (escaped) {
        if (!isVchar(cp) && !isWSP(cp)) {
          throw mailError(`bad character in quoted-string: ${goQuoteRune(cp)}`);
        }
        out += ch;
        escaped = false;
      } else if (isQtext(cp) || isWSP(cp)) {
        out += ch;
      } else if (cp === 0x22) {
        break;
      } else if (cp === 0x5c) {
        escaped = true;
      } else {
        throw mailError(`bad character in quoted-string: ${goQuoteRune(cp)}`);
      }
      i += ch.length;
    }
    this.s = this.s.slice(i + 1);
    return out;
  }

  consumeAtom(dot: boolean, permissive: boolean): string {
    let i = 0;
    for (;;) {
      const cp = this.s.codePointAt(i);
      if (cp === undefined || !isAtext(cp, dot)) break;
      i += cp > 0xffff ? 2 : 1;
    }
    if (i === 0) throw mailError("invalid string");
    const atom = this.s.slice(0, i);
    this.s = this.s.slice(i);
    if (!permissive) {
      if (atom.startsWith(".")) throw mailError("leading dot in atom");
      if (atom.includes("..")) throw mailError("double dot in atom");
      if (atom.endsWith(".")) throw mailError("trailing dot in atom");
    }
    return atom;
  }

  consumeDomainLiteral(): string {
    if (!this.consume("[")) throw mailError('missing "[" in domain-literal');
    let dtext = "";
    for (;;) {
      if (this.empty()) throw mailError("unclosed domain-literal");
      if (this.peek() === "]") break;
      const cp = this.s.codePointAt(0)!;
      if (!isDtext(cp)) throw mailError(`bad character in domain-literal: ${goQuoteRune(cp)}`);
      const ch = String.fromCodePoint(cp);
      dtext += ch;
      this.s = this.s.slice(ch.length);
    }
    this.consume("]");
    if (dtext.startsWith("IPv6:")) {
      // net.ParseIP gives 16 bytes for an IPv4 address too.
      const ip = dtext.slice(5);
      if (!isIPv6(ip) && !isIPv4(ip)) {
        throw mailError(`invalid IPv6 address in domain-literal: ${JSON.stringify(dtext)}`);
      }
    } else if (!isIPv4(dtext) && !isIPv4MappedIPv6(dtext)) {
      throw mailError(`invalid IP address in domain-literal: ${JSON.stringify(dtext)}`);
    }
    return `[${dtext}]`;
  }

  consumeDisplayNameComment(): void {
    if (!this.consume("(")) throw mailError("comment does not start with (");
    const { comment, ok } = this.consumeComment();
    if (!ok) throw mailError("misformatted parenthetical comment");
    for (const word of comment.split(/[ \t]+/)) if (word !== "") decodeRfc2047Word(word);
  }

  consume(c: string): boolean {
    if (this.empty() || this.peek() !== c) return false;
    this.s = this.s.slice(1);
    return true;
  }

  skipSpace(): void {
    this.s = this.s.replace(/^[ \t]+/, "");
  }

  peek(): string {
    return this.s[0]!;
  }

  empty(): boolean {
    return this.s.length === 0;
  }

  skipCFWS(): boolean {
    this.skipSpace();
    while (this.consume("(")) {
      if (!this.consumeComment().ok) return false;
      this.skipSpace();
    }
    return true;
  }

  /** After "(": the comment's text, and whether it was closed. */
  consumeComment(): { comment: string; ok: boolean } {
    let depth = 1;
    let comment = "";
    while (!this.empty() && depth > 0) {
      if (this.peek() === "\\" && this.s.length > 1) this.s = this.s.slice(1);
      else if (this.peek() === "(") depth++;
      else if (this.peek() === ")") depth--;
      if (depth > 0) comment += this.s[0];
      this.s = this.s.slice(1);
    }
    return { comment, ok: depth === 0 };
  }
}

/**
 * `mime.WordDecoder.Decode` as net/mail uses it: a word that is not a
 * well-formed encoded-word stays as it is; one in a charset Go cannot
 * convert (anything but UTF-8, ISO-8859-1 and US-ASCII) is an error.
 */
function decodeRfc2047Word(word: string): string {
  if (
    word.length < 8 || !word.startsWith("=?") || !word.endsWith("?=") ||
    word.split("?").length !== 5
  ) return word;
  const [charset = "", encoding = "", text = ""] = word.slice(2, -2).split("?");
  if (charset === "" || encoding.length !== 1) return word;
  const decodes = /^[bB]$/.test(encoding)
    ? isBase64(text)
    : /^[qQ]$/.test(encoding)
    ? isQEncoded(text)
    : false;
  if (!decodes) return word;
  if (!/^(utf-8|iso-8859-1|us-ascii)$/i.test(charset)) {
    throw new Error(`charset not supported: ${JSON.stringify(charset)}`);
  }
  return word;
}

function isBase64(text: string): boolean {
  const clean = text.replace(/[\r\n]/g, "");
  return clean.length % 4 === 0 &&
    /^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(clean);
}

function isQEncoded(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x3d) {
      if (i + 2 >= text.length || !/^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) return false;
      i += 2;
    } else if (!((c >= 0x20 && c <= 0x7e) || c === 0x0a || c === 0x0d || c === 0x09)) {
      return false;
    }
  }
  return true;
}

function isIPv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 &&
    parts.every((p) => /^[0-9]{1,3}$/.test(p) && Number(p) <= 255 && !/^0[0-9]/.test(p));
}

/** `net.ParseIP(text).To4() != nil` for an IPv6 spelling: "::ffff:a.b.c.d" and its long forms. */
function isIPv4MappedIPv6(text: string): boolean {
  if (!isIPv6(text)) return false;
  const groups = expandIPv6(text);
  return groups !== undefined && groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
}

function isIPv6(text: string): boolean {
  return expandIPv6(text) !== undefined;
}

/** The eight 16-bit groups of an IPv6 address as `net.ParseIP` reads it, or undefined. */
function expandIPv6(text: string): number[] | undefined {
  let body = text;
  const tail: number[] = [];
  const lastColon = body.lastIndexOf(":");
  if (lastColon !== -1 && body.slice(lastColon + 1).includes(".")) {
    const v4 = body.slice(lastColon + 1);
    if (!isIPv4(v4)) return undefined;
    const [a, b, c, d] = v4.split(".").map(Number) as [number, number, number, number];
    tail.push((a << 8) | b, (c << 8) | d);
    body = body.slice(0, lastColon + 1);
    if (body.endsWith(":") && !body.endsWith("::")) body = body.slice(0, -1);
  }
  const halves = body.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string) =>
    part === ""
      ? []
      : part.split(":").map((g) => (/^[0-9A-Fa-f]{1,4}$/.test(g) ? parseInt(g, 16) : NaN));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  if ([...head, ...rest].some(Number.isNaN)) return undefined;
  const known = head.length + rest.length + tail.length;
  if (halves.length === 1) return known === 8 ? [...head, ...tail] : undefined;
  if (known > 7) return undefined;
  return [...head, ...new Array<number>(8 - known).fill(0), ...rest, ...tail];
}

/** RFC 5322 atext; with `dot`, "." too. */
function isAtext(cp: number, dot: boolean): boolean {
  if (cp === 0x2e) return dot;
  if ('()<>[]:;@\\,"'.includes(String.fromCodePoint(cp))) return false;
  return isVchar(cp);
}

function isQtext(cp: number): boolean {
  return cp !== 0x5c && cp !== 0x22 && isVchar(cp);
}

function isDtext(cp: number): boolean {
  return cp !== 0x5b && cp !== 0x5d && cp !== 0x5c && isVchar(cp);
}

/** Visible characters, and any non-ASCII one (RFC 6532). */
function isVchar(cp: number): boolean {
  return (cp >= 0x21 && cp <= 0x7e) || cp >= 0x80;
}

function isWSP(cp: number): boolean {
  return cp === 0x20 || cp === 0x09;
}

/** Go's `%q` of a rune, for the printable ones; `'\x00'`-style otherwise. */
function goQuoteRune(cp: number): string {
  if (cp === 0x27) return "'\\''";
  if (cp >= 0x20 && cp !== 0x7f) return `'${String.fromCodePoint(cp)}'`;
  const named: Record<number, string> = {
    7: "a",
    8: "b",
    9: "t",
    10: "n",
    11: "v",
    12: "f",
    13: "r",
  };
  return named[cp] ? `'\\${named[cp]}'` : `'\\x${cp.toString(16).padStart(2, "0")}'`;
}
