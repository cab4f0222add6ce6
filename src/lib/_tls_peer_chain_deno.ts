/**
 * A workaround for a cost of Deno's node:tls (2.9.6), reproduced by
 * `deno run -A scripts/repro_tls_ca_cost.ts`: once a server's certificate
 * is verified, `tls.connect` asks for the *detailed* peer certificate (to
 * hand it to `checkServerIdentity`), and to fill in its issuer chain Deno
 * parses every certificate of the `ca` option again, an X.509 decode and a
 * legacy object each, on the main thread, at every handshake. With the
 * ~160 system and bundled roots the plugin passes beside `smtp.ca_file` or
 * `teleport.proxy_ca_file`, that is ~25 ms of CPU per SMTP (re)connection
 * and per connection-upgrade dial, against ~2 ms with one CA.
 *
 * Sockets made with a secure context from {@linkcode caOption} answer a
 * detailed `getPeerCertificate(true)` with the plain one (the server's
 * certificate without the `issuerCertificate` links), which is all
 * `checkServerIdentity` reads (subject and subject alternative names).
 * Verification itself is untouched: it happens before, in the runtime,
 * against the whole list. Nothing of ours reads the chain. The context is
 * made once per list, not per connection.
 *
 * Importing this module installs the patch (once per process). It reads
 * Deno's `_tlsOptions.secureContext` (the context a TLS socket was made
 * with): if a later Deno drops that field, the patch does nothing and only
 * the cost returns; `_tls_peer_chain_deno_test.ts` then fails and says so.
 * Delete this file once Deno stops re-reading the `ca` list per handshake.
 */
import tls from "node:tls";

/** Secure contexts whose sockets get the plain peer certificate. */
const SHALLOW_CONTEXTS = new WeakSet<object>();
/** Contexts by CA list and minimum version; a process uses a handful. */
const contexts = new Map<string, tls.SecureContext>();
/** More distinct lists than this are not cached (each still gets its context). */
const MAX_CACHED_CONTEXTS = 16;
/** The same, by the list itself: a caller that keeps its list skips building the key. */
const byList = new WeakMap<readonly string[], Map<string, tls.SecureContext>>();

type GetPeerCertificate = (this: tls.TLSSocket, detailed?: boolean) => unknown;

interface PatchedPrototype {
  getPeerCertificate: GetPeerCertificate;
  [PATCHED]?: true;
}

const PATCHED = Symbol.for("teleport-email.shallow-peer-certificate");

let served = 0;

/** How many detailed peer certificates were answered plainly so far (for tests). */
export function shallowPeerCertificatesServed(): number {
  return served;
}

const proto = tls.TLSSocket.prototype as unknown as PatchedPrototype;
if (proto[PATCHED] !== true) {
  const original = proto.getPeerCertificate;
  proto.getPeerCertificate = function (this: tls.TLSSocket, detailed?: boolean) {
    const options = (this as unknown as { _tlsOptions?: { secureContext?: unknown } })._tlsOptions;
    const context = options?.secureContext;
    if (
      detailed === true && typeof context === "object" && context !== null &&
      SHALLOW_CONTEXTS.has(context)
    ) {
      served++;
      return original.call(this, false);
    }
    return original.call(this, detailed);
  };
  proto[PATCHED] = true;
}

/**
 * The trust options for `tls.connect` (or Nodemailer's `tls`): a secure
 * context holding `cas` (and `minVersion`, which a given context carries
 * instead of the connection), its sockets opted in. Spread it where
 * `ca: [...cas]` would go.
 */
export function caOption(
  cas: readonly string[],
  minVersion?: tls.SecureVersion,
): { secureContext: tls.SecureContext } {
  const version = minVersion ?? "";
  let secureContext = byList.get(cas)?.get(version);
  if (secureContext) return { secureContext };
  const key = `${version}\n${cas.join("\n")}`;
  secureContext = contexts.get(key);
  if (!secureContext) {
    secureContext = tls.createSecureContext({
      ca: [...cas],
      ...(minVersion ? { minVersion } : {}),
    });
    SHALLOW_CONTEXTS.add(secureContext);
    if (contexts.size < MAX_CACHED_CONTEXTS) contexts.set(key, secureContext);
  }
  const forList = byList.get(cas) ?? new Map<string, tls.SecureContext>();
  forList.set(version, secureContext);
  byList.set(cas, forList);
  return { secureContext };
}
