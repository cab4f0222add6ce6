/**
 * Teleport credentials: parsing an identity file (as written by
 * `tctl auth sign --format=file` or Machine ID) or a key/certificate/CA file
 * triple into PEM texts plus the client certificate's details, and judging
 * whether that certificate is still usable.
 *
 * Only the TLS parts matter here: SSH certificate lines are skipped, except
 * that the `@cert-authority` line names the cluster.
 */

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { exposedFileWarning } from "../lib/file_mode.ts";

/** Private key PEM labels Teleport writes (PKCS#1, SEC 1, PKCS#8). */
const KEY_LABELS = ["RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY"];
/** The PKCS#8 label of an encrypted private key. */
const ENCRYPTED_KEY_LABEL = "ENCRYPTED PRIVATE KEY";
/** The header OpenSSL's legacy PEM encryption puts in a key block ("RSA PRIVATE KEY"...). */
const LEGACY_ENCRYPTED_HEADER = /^Proc-Type:\s*4,\s*ENCRYPTED\s*$/m;

/** TLS credentials for talking to Teleport, with the client certificate's details. */
export interface Identity {
  /** PEM of the private key. */
  readonly key: string;
  /** PEM of the TLS client certificate (the one matching `key`). */
  readonly cert: string;
  /** PEMs of the CA certificates that the Auth server's certificate must chain to. */
  readonly cas: readonly string[];
  /** From the identity file's `@cert-authority` line; absent for the file triple. */
  readonly clusterName?: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Hex, as `X509Certificate.serialNumber` gives it. */
  readonly serial: string;
  /** One line, e.g. `CN=bot-email, O=editor`. */
  readonly subject: string;
  /** Where the client certificate came from (identity file or certificate file). */
  readonly source: string;
  /** How the credentials were supplied, which decides how to renew them. */
  readonly format: "identity" | "tls";
}

/** Credentials plus problems worth a warning (not logged here). */
export interface LoadedIdentity {
  readonly identity: Identity;
  readonly warnings: readonly string[];
}

/** File access, injected so tests need no real files. */
export interface IdentityFs {
  /** Reads a whole text file; the real one refuses non-regular and oversized files. */
  readTextFile(path: string): Promise<string>;
  /** `mode` is null where the platform has no Unix permissions. */
  stat(path: string): Promise<{ mode: number | null }>;
}

/** The verdict of {@linkcode checkExpiry}. */
export type ExpiryCheck =
  | { readonly ok: true; readonly warning?: string }
  | { readonly ok: false; readonly error: Error };

interface PemBlock {
  readonly label: string;
  /** Canonical PEM text (LF line ends, trailing newline). */
  readonly pem: string;
  /** 1-based position among the text's PEM blocks, for messages. */
  readonly index: number;
}

interface ParsedCert {
  readonly block: PemBlock;
  readonly x509: X509Certificate;
}

/**
 * Parses the text of an identity file. PEM blocks may come in any order;
 * the client certificate is the one matching the private key and every
 * other certificate is a CA. `path` only names the file in errors.
 */
export function parseIdentityFile(text: string, path: string): Identity {
  const what = `Identity file "${path}"`;
  const blocks = pemBlocks(text, what);
  const key = privateKey(blocks, what);
  const certs = certificates(blocks, what);
  if (certs.length === 0) throw new Error(`${what} has no certificate`);
  const client = certs.find((c) => c.x509.checkPrivateKey(key.object));
  if (client === undefined) {
    throw new Error(`${what} has no certificate matching its private key`);
  }
  const cas = certs.filter((c) => c !== client);
  if (cas.length === 0) throw new Error(`${what} has no CA certificate`);
  const clusterName = clusterNameOf(client, cas, text);
  return {
    key: key.block.pem,
    cert: client.block.pem,
    cas: cas.map((c) => c.block.pem),
    ...(clusterName === undefined ? {} : { clusterName }),
    ...certDetails(client.x509),
    source: path,
    format: "identity",
  };
}

/** Reads and parses an identity file; warns when others may read it. */
export async function loadIdentityFile(path: string, deps: IdentityFs): Promise<LoadedIdentity> {
  const text = await readFile(deps, path, "identity file", "teleport.identity");
  const identity = parseIdentityFile(text, path);
  const warnings = await modeWarnings(deps, path, "Identity file");
  return { identity, warnings };
}

/**
 * Reads the alternative to an identity file: a private key file, a client
 * certificate file and a file of CA certificates (PEM).
 */
export async function loadCredentialFiles(
  keyPath: string,
  certPath: string,
  casPath: string,
  deps: IdentityFs,
): Promise<LoadedIdentity> {
  const [keyText, certText, casText] = await Promise.all([
    readFile(deps, keyPath, "key file", "teleport.client_key"),
    readFile(deps, certPath, "certificate file", "teleport.client_crt"),
    readFile(deps, casPath, "CA file", "teleport.root_cas"),
  ]);
  const key = privateKey(pemBlocks(keyText, `Key file "${keyPath}"`), `Key file "${keyPath}"`);
  const certs = certificates(
    pemBlocks(certText, `Certificate file "${certPath}"`),
    `Certificate file "${certPath}"`,
  );
  const client = certs[0];
  if (client === undefined) throw new Error(`Certificate file "${certPath}" has no certificate`);
  if (!client.x509.checkPrivateKey(key.object)) {
    throw new Error(
      `Certificate file "${certPath}" does not match the private key in "${keyPath}"`,
    );
  }
  const cas = certificates(pemBlocks(casText, `CA file "${casPath}"`), `CA file "${casPath}"`);
  if (cas.length === 0) throw new Error(`CA file "${casPath}" has no certificate`);
  const identity: Identity = {
    key: key.block.pem,
    cert: client.block.pem,
    cas: cas.map((c) => c.block.pem),
    ...certDetails(client.x509),
    source: certPath,
    format: "tls",
  };
  return { identity, warnings: await modeWarnings(deps, keyPath, "Key file") };
}

/**
 * Whether the client certificate is usable at `now`: an error when it has
 * expired (or is not valid yet), a warning when it expires within
 * `refreshIntervalMs`, i.e. before the next reload could pick up a new one.
 */
export function checkExpiry(identity: Identity, now: Date, refreshIntervalMs: number): ExpiryCheck {
  const which = `TLS certificate "${identity.subject}" (serial ${identity.serial}) from ` +
    `"${identity.source}"`;
  if (now.getTime() >= identity.notAfter.getTime()) {
    return {
      ok: false,
      error: new Error(
        `${which} expired at ${identity.notAfter.toISOString()}; ${renewHint(identity)}`,
      ),
    };
  }
  if (now.getTime() < identity.notBefore.getTime()) {
    return {
      ok: false,
      error: new Error(
        `${which} is not valid until ${identity.notBefore.toISOString()}; check the system clock`,
      ),
    };
  }
  const left = identity.notAfter.getTime() - now.getTime();
  if (left <= refreshIntervalMs) {
    return {
      ok: true,
      warning:
        `${which} expires at ${identity.notAfter.toISOString()} (in ${
          formatDuration(left)
        }), within the refresh interval of ${formatDuration(refreshIntervalMs)}; ` +
        renewHint(identity),
    };
  }
  return { ok: true };
}

function renewHint(identity: Identity): string {
  const user = /(?:^|, )CN=([^,]+)/.exec(identity.subject)?.[1] ?? "<user>";
  if (identity.format === "tls") {
    const prefix = identity.source.replace(/\.crt$/, "");
    return `renew it with "tctl auth sign --user=${user} --format=tls --out=${prefix}"`;
  }
  return `renew it with "tctl auth sign --user=${user} --format=file --out=${identity.source}" ` +
    `or let Machine ID (tbot) renew it`;
}

/** `1h2m3s`-style, to the second. */
function formatDuration(ms: number): string {
  let s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts = [h ? `${h}h` : "", m ? `${m}m` : "", s || (!h && !m) ? `${s}s` : ""];
  return parts.join("");
}

/** Reads `path`; the error names the file, the config key that names it, and why. */
async function readFile(
  deps: IdentityFs,
  path: string,
  what: string,
  key: string,
): Promise<string> {
  try {
    return await deps.readTextFile(path);
  } catch (err) {
    throw new Error(`Cannot read ${what} "${path}" (${key}): ${errorReason(err)}`, { cause: err });
  }
}

function errorReason(err: unknown): string {
  const name = err instanceof Error ? err.name : "";
  if (name === "NotFound") return "no such file";
  if (name === "PermissionDenied" || name === "NotCapable") return "permission denied";
  if (name === "IsADirectory") return "is a directory";
  return err instanceof Error ? err.message : String(err);
}

async function modeWarnings(deps: IdentityFs, path: string, what: string): Promise<string[]> {
  let mode: number | null;
  try {
    mode = (await deps.stat(path)).mode;
  } catch {
    return []; // The file was just read; a failing stat says nothing about its secrecy.
  }
  const warning = exposedFileWarning(path, mode);
  return warning === undefined ? [] : [`${what} "${path}" holds a private key but ${warning}`];
}

const PEM_BEGIN = /^-----BEGIN ([A-Z0-9 ]+)-----[ \t]*$/;
const PEM_END = /^-----END ([A-Z0-9 ]+)-----[ \t]*$/;

/** The PEM blocks of `text`, in one pass over its lines (linear in any input). */
function pemBlocks(text: string, what: string): PemBlock[] {
  const normalized = text.replace(/\r\n?/g, "\n");
  if (normalized.trim() === "") throw new Error(`${what} is empty`);
  const blocks: PemBlock[] = [];
  let open: { label: string; lines: string[] } | undefined;
  for (const line of normalized.split("\n")) {
    if (open === undefined) {
      if (!line.startsWith("-----BEGIN ")) continue; // other lines (SSH certificates) are not PEM
      const label = PEM_BEGIN.exec(line)?.[1];
      if (label === undefined) {
        throw new Error(`${what} has an unterminated PEM block (truncated file?)`);
      }
      open = { label, lines: [] };
      continue;
    }
    const endLabel = PEM_END.exec(line)?.[1];
    if (endLabel !== undefined) {
      if (endLabel !== open.label) {
        throw new Error(`${what} has a PEM block "${open.label}" ended by "${endLabel}"`);
      }
      blocks.push({
        label: open.label,
        pem: `-----BEGIN ${open.label}-----\n${
          open.lines.join("\n")
        }\n-----END ${open.label}-----\n`,
        index: blocks.length + 1,
      });
      open = undefined;
      continue;
    }
    const trimmed = line.trim();
    if (trimmed.startsWith("-----")) {
      throw new Error(`${what} has an unterminated PEM block "${open.label}"`);
    }
    if (trimmed !== "") open.lines.push(trimmed);
  }
  // A half-written file typically ends inside a block.
  if (open !== undefined) {
    throw new Error(`${what} has an unterminated PEM block (truncated file?)`);
  }
  if (blocks.length === 0) throw new Error(`${what} has no PEM blocks`);
  return blocks;
}

function privateKey(blocks: PemBlock[], what: string): { block: PemBlock; object: KeyObject } {
  const keys = blocks.filter((b) => b.label.endsWith("PRIVATE KEY"));
  const block = keys[0];
  if (block === undefined) throw new Error(`${what} has no private key`);
  if (keys.length > 1) throw new Error(`${what} has ${keys.length} private keys; expected one`);
  // Without this, OpenSSL's answer to a key it has no passphrase for is "interrupted or
  // cancelled" (legacy PEM encryption) or an unsupported label (PKCS#8).
  if (block.label === ENCRYPTED_KEY_LABEL || LEGACY_ENCRYPTED_HEADER.test(block.pem)) {
    throw new Error(
      `${what} has an encrypted private key, and the plugin has no passphrase for it; ` +
        `write it again with "tctl auth sign" or Machine ID (tbot), which leave the key unencrypted`,
    );
  }
  if (!KEY_LABELS.includes(block.label)) {
    throw new Error(
      `${what} has an unsupported private key "${block.label}"; expected one of ${
        KEY_LABELS.map((l) => `"${l}"`).join(", ")
      }`,
    );
  }
  try {
    return { block, object: createPrivateKey(block.pem) };
  } catch (err) {
    throw new Error(`${what} has an unreadable private key "${block.label}": ${errorReason(err)}`, {
      cause: err,
    });
  }
}

function certificates(blocks: PemBlock[], what: string): ParsedCert[] {
  return blocks.filter((b) => b.label === "CERTIFICATE").map((block) => {
    try {
      return { block, x509: new X509Certificate(block.pem) };
    } catch (err) {
      throw new Error(
        `${what} has an unreadable certificate (PEM block ${block.index}): ${errorReason(err)}`,
        { cause: err },
      );
    }
  });
}

function certDetails(x509: X509Certificate) {
  return {
    notBefore: certDate(x509.validFrom),
    notAfter: certDate(x509.validTo),
    serial: x509.serialNumber,
    subject: x509.subject.split("\n").join(", "),
  };
}

/** `X509Certificate`'s `validFrom`/`validTo` text, e.g. `Nov 23 04:50:33 2026 GMT`. */
function certDate(text: string): Date {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw new Error(`Cannot parse certificate time "${text}"`);
  return date;
}

/** The values of attribute `name` (e.g. `O`) in a Node `X509Certificate` subject or issuer. */
function nameAttributes(dn: string, name: string): string[] {
  return dn.split("\n").flatMap((part) => {
    const at = part.indexOf("=");
    return at > 0 && part.slice(0, at).trim() === name ? [part.slice(at + 1).trim()] : [];
  });
}

/**
 * The cluster name, where Teleport takes it (`tlsca.ClusterName`): the
 * organization (O) of the client certificate's issuer, which is the
 * cluster's CA (the CA among `cas` whose subject is that issuer must agree).
 * Last resort, for files whose certificates carry no O: the host of the
 * `@cert-authority <hosts> <key>` line that has a `*.` twin (identity files
 * made through a proxy list the proxy's host first:
 * `@cert-authority proxy.example.com,teleport.example.com,*.teleport.example.com`).
 */
function clusterNameOf(
  client: ParsedCert,
  cas: readonly ParsedCert[],
  text: string,
): string | undefined {
  const issuerOrg = nameAttributes(client.x509.issuer, "O")[0];
  const issuerCa = cas.find((ca) => ca.x509.subject === client.x509.issuer);
  const caOrg = issuerCa && nameAttributes(issuerCa.x509.subject, "O")[0];
  if (issuerOrg !== undefined && issuerOrg !== "" && (caOrg === undefined || caOrg === issuerOrg)) {
    return issuerOrg;
  }
  return knownHostsClusterName(text);
}

/** The cluster of the first `@cert-authority` line: the host with a `*.` twin, else the first host. */
export function knownHostsClusterName(text: string): string | undefined {
  for (const line of text.split(/\r?\n/)) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] !== "@cert-authority" || fields[1] === undefined) continue;
    const hosts = fields[1].split(",").filter((h) => h !== "");
    const wildcards = new Set(hosts.filter((h) => h.startsWith("*.")).map((h) => h.slice(2)));
    const named = hosts.filter((h) => !h.startsWith("*."));
    const host = named.find((h) => wildcards.has(h)) ?? named[0];
    if (host !== undefined) return host;
  }
  return undefined;
}
