/**
 * The CA certificates a TLS client trusts by default: the operating
 * system's roots plus the runtime's bundled Mozilla set, read once. Needed
 * wherever a `ca` option is passed (SMTP with `smtp.ca_file`, the load
 * balancer in front of a Teleport Proxy): a `ca` option replaces the
 * runtime's default store, in Node and in Deno alike, instead of adding to it.
 */
import tls from "node:tls";

/** Node (22.15+) and Deno expose the CA stores one by one; older runtimes only the bundle. */
interface TlsWithCaStores {
  getCACertificates?: (type: "default" | "system" | "bundled" | "extra") => string[];
}

let cached: readonly string[] | undefined;

export function systemTrustedCas(): readonly string[] {
  if (cached) return cached;
  const stores = tls as unknown as TlsWithCaStores;
  if (typeof stores.getCACertificates !== "function") {
    cached = [...tls.rootCertificates];
    return cached;
  }
  let system: string[] = [];
  try {
    system = stores.getCACertificates("system");
  } catch {
    // No readable system store (a minimal container): the bundled roots still apply.
  }
  // The two stores mostly hold the same roots: each is passed (and, per
  // handshake, parsed: _tls_peer_chain_deno.ts) once.
  cached = [...new Set([...system, ...stores.getCACertificates("bundled")])];
  return cached;
}
