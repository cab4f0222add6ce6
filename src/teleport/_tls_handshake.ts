/**
 * Waiting for a TLS handshake, shared by the routes (the mutual TLS with
 * Auth) and the connection upgrade (the TLS with a load balancer).
 */
import type * as tls from "node:tls";

/** `e` as an `Error` (what was thrown may be anything). */
export function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * Resolves at `secureConnect` (when `authorized`, also checks the peer was
 * verified); rejects with `describe(error)` on an error and `closed()` when
 * the connection closes first.
 */
export function awaitTlsHandshake(
  s: tls.TLSSocket,
  describe: (error: Error) => Error,
  closed: () => Error,
  authorized = false,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      s.off("secureConnect", onSecure);
      s.off("error", onError);
      s.off("close", onClose);
    };
    const onSecure = () => {
      done();
      if (!authorized || s.authorized) resolve();
      else reject(describe(toError(s.authorizationError)));
    };
    const onError = (e: unknown) => {
      done();
      reject(describe(toError(e)));
    };
    const onClose = () => {
      done();
      reject(closed());
    };
    s.once("secureConnect", onSecure);
    s.once("error", onError);
    s.once("close", onClose);
  });
}
