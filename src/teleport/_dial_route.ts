/**
 * Connecting one route: on a fresh TCP connection (to Teleport, or to the
 * HTTPS proxy in the way), optionally HTTP CONNECT, optionally the Proxy's
 * connection upgrade (`_conn_upgrade.ts`), then mutual TLS with the
 * identity's certificates, server name `teleport.cluster.local`, a plan's
 * ALPN list offered and `h2` required back, and the server's first HTTP/2
 * bytes awaited. Failures come back in words a Teleport admin can act on.
 */

import type { Buffer } from "node:buffer";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import * as tls from "node:tls";
import { upgradeConnection } from "./_conn_upgrade.ts";
import { type ConnUpgradeMode, TELEPORT_API_SERVER_NAME } from "./_dial_plan.ts";
import { httpConnect, type HttpProxy } from "./_https_proxy.ts";
import { awaitTlsHandshake, toError } from "./_tls_handshake.ts";

/** Budget for one new connection: CONNECT, upgrade, TLS handshake and the server's first bytes. */
const CONNECT_TIMEOUT_MS = 10_000;

/** Verification failures that mean "this chain does not lead to a trusted CA". */
const UNTRUSTED_CERT_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_CHAIN_TOO_LONG",
]);

/** The identity's TLS material, PEM text. */
export interface TlsCredentials {
  /** The client's private key. */
  readonly key: string;
  /** The client certificate. */
  readonly cert: string;
  /** The Teleport CA certificates: the only roots trusted for the server. */
  readonly cas: readonly string[];
}

/**
 * Returns the current credentials; called for every new connection, so it
 * must be cheap (return what the identity refresher last loaded). Throwing
 * fails that connection attempt.
 */
export type CredentialsSource = () => TlsCredentials;

export interface RouteOptions {
  /** Read once, as the connection starts. */
  readonly source: CredentialsSource;
  /** ALPN protocols to offer, in order (a plan's `alpn`). */
  readonly alpn: readonly string[];
  /** First ask `proxy` (the socket's peer) for a tunnel to `target` ("host:port"). */
  readonly connectThrough?: { readonly proxy: HttpProxy; readonly target: string } | undefined;
  /** Then the connection upgrade at the Proxy `addr`, the mutual TLS running inside it. */
  readonly upgrade?: ConnUpgradeSettings | undefined;
  /** Budget for the whole setup, ms. Default {@linkcode CONNECT_TIMEOUT_MS}. */
  readonly timeoutMs?: number | undefined;
  /** Told what the connection is doing as each step starts, e.g. "in the TLS handshake". */
  readonly onPhase: (phase: string) => void;
  /** Holds what this is still setting up (sockets, streams), so the caller can cut it. */
  readonly pending: Set<{ destroy(): void }>;
}

/** The connection upgrade for a Proxy behind an L7 load balancer. */
export interface ConnUpgradeSettings {
  /** The Proxy's address as configured: the load balancer's TLS name and the `Host` header. */
  readonly addr: string;
  readonly mode: ConnUpgradeMode;
  /** Roots trusted for the load balancer's certificate (system roots plus the proxy CA file). */
  readonly cas: readonly string[];
}

/**
 * Sets up one route on `socket` and resolves with the TLS socket, paused,
 * the server's first bytes put back for the HTTP/2 client. Rejects with an
 * `Error` saying why, after destroying both sockets.
 */
export async function connectRoute(socket: Socket, opts: RouteOptions): Promise<tls.TLSSocket> {
  const { alpn, connectThrough, upgrade, pending } = opts;
  const timeoutMs = opts.timeoutMs ?? CONNECT_TIMEOUT_MS;
  let phase = "reading the identity's credentials";
  const setPhase = (p: string) => {
    phase = p;
    opts.onPhase(p);
  };
  setPhase(phase);
  pending.add(socket);
  let tlsSocket: tls.TLSSocket | undefined;
  let transport: Duplex = socket;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`connection not set up within ${timeoutMs} ms (stalled ${phase})`)),
      timeoutMs,
    );
  });
  try {
    const creds = readCredentials(opts.source);
    if (connectThrough) {
      const { proxy, target } = connectThrough;
      setPhase(`asking HTTPS proxy ${proxy.display} for a tunnel`);
      await Promise.race([httpConnect(socket, target, proxy), timeout]);
    }
    if (upgrade) {
      transport = await Promise.race([
        upgradeConnection(socket, { ...upgrade, onPhase: setPhase, pending }),
        timeout,
      ]);
      pending.add(transport);
    }
    setPhase("in the TLS handshake");
    const s = tls.connect({
      socket: transport,
      key: creds.key,
      cert: creds.cert,
      ca: [...creds.cas],
      servername: TELEPORT_API_SERVER_NAME,
      ALPNProtocols: [...alpn],
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    });
    tlsSocket = s;
    pending.add(s);
    // A permanent listener: an error between our hand-over and grpc-js
    // attaching its own must not become an uncaught exception.
    s.on("error", () => {});
    await Promise.race([tlsHandshake(s, alpn), timeout]);
    if (!s.authorized) throw describeTlsError(toError(s.authorizationError), alpn);
    if (s.alpnProtocol !== "h2") {
      throw new Error(
        `the server did not agree to HTTP/2 over ALPN (it chose ${
          JSON.stringify(s.alpnProtocol || "nothing")
        }; offered ${alpn.join(", ")})`,
      );
    }
    setPhase("waiting for the server's first HTTP/2 frame");
    await Promise.race([serverSpeaksFirst(s), timeout]);
    return s;
  } catch (e) {
    tlsSocket?.destroy();
    transport.destroy();
    socket.destroy();
    throw toError(e);
  } finally {
    clearTimeout(timer);
    pending.delete(socket);
    pending.delete(transport);
    if (tlsSocket) pending.delete(tlsSocket);
  }
}

function readCredentials(source: CredentialsSource): TlsCredentials {
  try {
    return source();
  } catch (e) {
    throw new Error(`cannot read the identity's credentials: ${toError(e).message}`, { cause: e });
  }
}

/** The route's mutual TLS handshake, with a diagnosis on error or close. */
function tlsHandshake(s: tls.TLSSocket, alpn: readonly string[]): Promise<void> {
  return awaitTlsHandshake(s, (e) => describeTlsError(e, alpn), () => closedDuringHandshake(alpn));
}

/**
 * Waits for the server's first bytes (its HTTP/2 SETTINGS, which a gRPC
 * server sends at once) and puts them back for grpc-js. With TLS 1.3 the
 * client's handshake ends before the server has checked the client
 * certificate, so a refused certificate shows only as the connection closing
 * here; without this wait grpc-js would report a bare "Failed to connect".
 */
function serverSpeaksFirst(s: tls.TLSSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      s.off("data", onData);
      s.off("error", onError);
      s.off("end", onClosed);
      s.off("close", onClosed);
    };
    const onData = (chunk: Buffer) => {
      done();
      s.pause();
      s.unshift(chunk);
      resolve();
    };
    const onError = (e: unknown) => {
      done();
      const error = toError(e);
      reject(
        isClientCertAlert(error.message)
          ? new Error(`the server refused the identity's client certificate (${error.message})`, {
            cause: error,
          })
          : new Error(`the connection failed right after the TLS handshake: ${error.message}`, {
            cause: error,
          }),
      );
    };
    const onClosed = () => {
      done();
      reject(
        new Error(
          "the server closed the connection right after the TLS handshake: it refused the " +
            "identity's client certificate (expired, or not issued by this cluster's Teleport CA)",
        ),
      );
    };
    s.on("data", onData);
    s.once("error", onError);
    s.once("end", onClosed);
    s.once("close", onClosed);
  });
}

function isClientCertAlert(message: string): boolean {
  return /alert/i.test(message) &&
    /bad.?certificate|unknown.?ca|certificate.?required|certificate.?expired|certificate.?revoked|certificate.?unknown|unsupported.?certificate|access.?denied/i
      .test(message);
}

/** Turns a TLS error into words a Teleport admin can act on. */
function describeTlsError(error: Error, alpn: readonly string[]): Error {
  const code = (error as { code?: unknown }).code;
  const msg = error.message;
  const make = (text: string) => new Error(text, { cause: error });
  if (typeof code === "string" && UNTRUSTED_CERT_CODES.has(code)) {
    return make(`server certificate is not signed by the identity's Teleport CA (${msg})`);
  }
  switch (code) {
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
      // Deno reports expired and wrong-purpose certificates with this code too.
      return make(
        "server certificate does not verify against the identity's Teleport CA: not signed " +
          `by it, expired, or not a server certificate (${msg})`,
      );
    case "CERT_HAS_EXPIRED":
      return make(`server certificate has expired (${msg})`);
    case "CERT_NOT_YET_VALID":
      return make(`server certificate is not valid yet (${msg})`);
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return make(`server certificate is not valid for ${TELEPORT_API_SERVER_NAME} (${msg})`);
  }
  if (isClientCertAlert(msg)) {
    return make(`the server refused the identity's client certificate (${msg})`);
  }
  if (/no.?application.?protocol/i.test(msg)) {
    return make(`the server does not accept ALPN protocol ${alpn[0]}${routingHint(alpn)} (${msg})`);
  }
  if (code === "ECONNRESET" || /socket disconnected|socket hang up|closed/i.test(msg)) {
    return closedDuringHandshake(alpn, error);
  }
  return make(`TLS handshake failed: ${msg}`);
}

function closedDuringHandshake(alpn: readonly string[], cause?: Error): Error {
  return new Error(
    `the server closed the connection during the TLS handshake${routingHint(alpn)}`,
    cause ? { cause } : {},
  );
}

/** For the routing plan, what a proxy closing on us usually means. */
function routingHint(alpn: readonly string[]): string {
  return alpn[0] === "h2"
    ? ""
    : " (a Teleport proxy does this when TLS routing is off or the ALPN protocol names " +
      "another cluster)";
}
