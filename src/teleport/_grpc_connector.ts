/**
 * The hook into grpc-js's connection setup: channel credentials whose
 * connector sets up our route on every TCP connection grpc-js opens.
 *
 * grpc-js 1.14.7 asks a channel's `ChannelCredentials` for a "secure
 * connector" once per subchannel (`_createSecureConnector`) and calls its
 * `connect(socket)` with every new TCP connection. Our connector reads the
 * current credentials at that moment, so a refreshed identity file reaches
 * new connections without rebuilding the client. These are grpc-js
 * internals: the version is pinned in deno.json and `dial_test.ts` fails
 * loudly when the hook stops being called.
 */

import * as grpc from "@grpc/grpc-js";
import type { Socket } from "node:net";
import type * as tls from "node:tls";
import { connectRoute, type ConnUpgradeSettings, type CredentialsSource } from "./_dial_route.ts";
import { type Goaway, GoawayGuard } from "./_goaway_guard_deno_36788.ts";
import type { HttpProxy } from "./_https_proxy.ts";

type CreateSecureConnector = grpc.ChannelCredentials["_createSecureConnector"];
type SecureConnector = ReturnType<CreateSecureConnector>;
type SecureConnectResult = Awaited<ReturnType<SecureConnector["connect"]>>;

/** Counters and the last diagnosis of one credentials object's connections. */
export interface ConnectStats {
  /** Connectors grpc-js asked for (one per subchannel). */
  readonly connectors: number;
  /** Connections that completed TLS and got the server's first bytes. */
  readonly handshakes: number;
  /** ALPN protocol of the last good connection. */
  readonly alpnProtocol: string | undefined;
  /** Why the last connection failed; cleared by a good one. */
  readonly lastError: Error | undefined;
  /** What the newest unfinished connection is doing, e.g. "in the TLS handshake". */
  readonly phase: string | undefined;
  /** The last GOAWAY a server sent (the connection was ended there). */
  readonly lastGoaway: Goaway | undefined;
}

export interface TeleportCredentialsOptions {
  source: CredentialsSource;
  /** ALPN protocols to offer, in order (a dial plan's `alpn`). */
  alpn: readonly string[];
  /** Reach `target` ("host:port") by HTTP CONNECT through `proxy`; grpc-js then dials the proxy. */
  connectThrough?: { proxy: HttpProxy; target: string };
  /** Run the mutual TLS inside the Proxy's connection upgrade. */
  upgrade?: ConnUpgradeSettings;
  /** Budget per new connection, ms. Default 10 s. */
  connectTimeoutMs?: number;
  /** Told when a server sends GOAWAY (e.g. `too_many_pings`, or a restart). */
  onGoaway?: (goaway: Goaway) => void;
  /**
   * A connection already set up for this channel (by the dial race): the
   * first connection grpc-js asks for is this one, grpc-js's own TCP
   * connection being closed unused; later ones are set up as usual.
   */
  adopt?: tls.TLSSocket;
}

/**
 * grpc-js channel credentials doing mutual TLS with Teleport: the client
 * certificate and key from `source` at connect time, only the identity's CAs
 * trusted, server name `teleport.cluster.local`, verification always on, the
 * plan's ALPN list offered and `h2` required back.
 */
/** A connection record before any connection: nothing tried yet. */
export function emptyConnectStats(): { -readonly [K in keyof ConnectStats]: ConnectStats[K] } {
  return {
    connectors: 0,
    handshakes: 0,
    alpnProtocol: undefined,
    lastError: undefined,
    phase: undefined,
    lastGoaway: undefined,
  };
}

export class TeleportChannelCredentials extends grpc.ChannelCredentials {
  readonly #opts: TeleportCredentialsOptions;
  /** An established connection from the dial race, for the first connection grpc-js asks for. */
  #adopted: tls.TLSSocket | undefined;
  #stats: { -readonly [K in keyof ConnectStats]: ConnectStats[K] } = emptyConnectStats();

  constructor(opts: TeleportCredentialsOptions) {
    super();
    if (opts.alpn.length === 0) throw new TypeError("At least one ALPN protocol is required");
    this.#opts = { ...opts, alpn: [...opts.alpn] };
    this.#adopted = opts.adopt;
  }

  /** A snapshot of what this object's connections did. */
  get stats(): ConnectStats {
    return { ...this.#stats };
  }

  override _isSecure(): boolean {
    return true;
  }

  /**
   * Identity: each object keeps its own connection record, so two channels
   * must never share subchannels just because their settings look alike.
   */
  override _equals(other: grpc.ChannelCredentials): boolean {
    return other === this;
  }

  override _createSecureConnector(
    _channelTarget: Parameters<CreateSecureConnector>[0],
    _options: Parameters<CreateSecureConnector>[1],
    callCredentials?: grpc.CallCredentials,
  ): SecureConnector {
    this.#stats.connectors++;
    const calls = callCredentials ?? grpc.CallCredentials.createEmpty();
    // Sockets still being set up, so destroy() can cut them when the channel closes.
    const life: ConnectorLife = { pending: new Set(), destroyed: false };
    return {
      connect: (socket: Socket) => this.#connect(socket, life),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => calls,
      destroy: () => {
        life.destroyed = true;
        for (const s of life.pending) s.destroy();
        life.pending.clear();
        this.#adopted?.destroy();
        this.#adopted = undefined;
      },
    };
  }

  async #connect(socket: Socket, life: ConnectorLife): Promise<SecureConnectResult> {
    const stats = this.#stats;
    let s: tls.TLSSocket;
    const adopted = this.#adopted;
    this.#adopted = undefined;
    if (adopted && !adopted.destroyed) {
      socket.destroy();
      s = adopted;
    } else {
      try {
        s = await connectRoute(socket, {
          source: this.#opts.source,
          alpn: this.#opts.alpn,
          connectThrough: this.#opts.connectThrough,
          upgrade: this.#opts.upgrade,
          timeoutMs: this.#opts.connectTimeoutMs,
          onPhase: (phase) => {
            stats.phase = phase;
          },
          pending: life.pending,
        });
      } catch (e) {
        // Cut by destroy(): the channel was closed, the server is not to blame.
        const error = life.destroyed
          ? new Error("connection abandoned: the channel closed")
          : e as Error; // connectRoute rejects with Errors only
        if (!life.destroyed) stats.lastError = error;
        stats.phase = undefined;
        throw error;
      }
    }
    stats.handshakes++;
    stats.alpnProtocol = s.alpnProtocol || undefined; // connectRoute made sure it is "h2"
    stats.lastError = undefined;
    stats.phase = undefined;
    const guard = new GoawayGuard(s, (goaway) => {
      stats.lastGoaway = goaway;
      this.#opts.onGoaway?.(goaway);
    });
    // grpc-js types this as net.Socket but uses it as a stream (see GoawayGuard).
    return { socket: guard as unknown as Socket, secure: true };
  }
}

/** What a connector's connections share: what is being set up, and whether grpc-js let go of it. */
interface ConnectorLife {
  readonly pending: Set<{ destroy(): void }>;
  destroyed: boolean;
}
