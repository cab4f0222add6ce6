/**
 * Workaround for denoland/deno#36788 (Deno 2.9's nghttp2 binding crashes the
 * process on a GOAWAY frame reaching a `node:http2` client session). Delete
 * this file and its test once the Deno we run has the fix: the connector in
 * `_grpc_connector.ts` then hands grpc-js the TLS socket itself, and what
 * exists only for the guard goes too (`Goaway`, `Http2FrameScanner` and their
 * re-exports in `dial.ts`, the `onGoaway` hooks, `ConnectStats.lastGoaway`,
 * the GOAWAY assertions in `dial_test.ts`).
 *
 * Until then every connection goes through a {@linkcode GoawayGuard}, which
 * ends the connection where a server's GOAWAY starts instead of passing the
 * frame on; grpc-js handles that like any lost connection.
 */

import { Buffer } from "node:buffer";
import process from "node:process";
import { Duplex } from "node:stream";
import type * as tls from "node:tls";

/** HTTP/2 frame type GOAWAY. */
const FRAME_GOAWAY = 7;
/** HTTP/2 frame header length. */
const FRAME_HEADER_BYTES = 9;

/** A server's GOAWAY: its error code (0 = NO_ERROR) and debug text (e.g. `too_many_pings`). */
export interface Goaway {
  readonly errorCode: number;
  readonly lastStreamId: number;
  readonly debugData: string;
}

/**
 * Walks the frames of a server-to-client HTTP/2 byte stream (which starts at
 * a frame boundary: servers send no preface magic) and says how many bytes
 * to pass on. At a GOAWAY it stops: everything before the frame passes,
 * nothing from it on. Pure, for testing.
 */
export class Http2FrameScanner {
  /** Payload bytes of the current frame still to pass. */
  #skip = 0;
  /** A frame header split across chunks. */
  #partial: Uint8Array = new Uint8Array(0);
  /** GOAWAY frame being collected (header + payload so far), once seen. */
  #goaway: { frame: Uint8Array; need: number } | undefined;
  #done = false;

  /**
   * Feeds the next chunk. `pass` is what may go on to the HTTP/2 client;
   * `goaway` is set once the GOAWAY frame is complete, after which the stream
   * must be ended and nothing more is passed.
   */
  feed(chunk: Uint8Array): { pass: Uint8Array; goaway?: Goaway } {
    if (this.#done) return { pass: new Uint8Array(0) };
    if (this.#goaway) return this.#collectGoaway(chunk, new Uint8Array(0));
    const buf = this.#partial.length > 0 ? Buffer.concat([this.#partial, chunk]) : chunk;
    this.#partial = new Uint8Array(0);
    let at = 0;
    for (;;) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, buf.length - at);
        this.#skip -= n;
        at += n;
        if (this.#skip > 0) break;
      }
      if (buf.length - at < FRAME_HEADER_BYTES) {
        this.#partial = buf.slice(at);
        break;
      }
      const length = (buf[at]! << 16) | (buf[at + 1]! << 8) | buf[at + 2]!;
      if (buf[at + 3] === FRAME_GOAWAY) {
        this.#goaway = { frame: new Uint8Array(0), need: FRAME_HEADER_BYTES + length };
        return this.#collectGoaway(buf.subarray(at), buf.subarray(0, at));
      }
      at += FRAME_HEADER_BYTES;
      this.#skip = length;
    }
    return { pass: buf.subarray(0, at) };
  }

  #collectGoaway(more: Uint8Array, pass: Uint8Array): { pass: Uint8Array; goaway?: Goaway } {
    const g = this.#goaway!;
    g.frame = Buffer.concat([g.frame, more.subarray(0, g.need - g.frame.length)]);
    if (g.frame.length < g.need) return { pass };
    this.#done = true;
    const p = g.frame.subarray(FRAME_HEADER_BYTES);
    const word = (i: number) =>
      p.length >= i + 4
        ? ((p[i]! << 24) | (p[i + 1]! << 16) | (p[i + 2]! << 8) | p[i + 3]!) >>> 0
        : 0;
    return {
      pass,
      goaway: {
        lastStreamId: word(0) & 0x7fffffff,
        errorCode: word(4),
        debugData: new TextDecoder().decode(p.subarray(8)),
      },
    };
  }
}

/**
 * Sits between the TLS socket and grpc-js's HTTP/2 session and ends the
 * connection where the server sent GOAWAY, without passing that frame on:
 * Deno 2.9's nghttp2 binding crashes the process on an incoming GOAWAY
 * (assertion in `find_stream_on_goaway_func`, or a segfault) before any
 * JavaScript runs, so it must never see one. grpc-js then sees a closed
 * connection and reconnects; calls still open on it fail with UNAVAILABLE
 * instead of finishing, and grpc-js's own `too_many_pings` back-off does not
 * happen (our keepalive already respects the server's minimum). Exposes the
 * few socket methods Deno's `node:http2` and grpc-js call on their socket.
 */
export class GoawayGuard extends Duplex {
  readonly #inner: tls.TLSSocket;
  readonly #scanner = new Http2FrameScanner();
  /** Corked until the end of this tick (see `write`). */
  #corked = false;

  constructor(inner: tls.TLSSocket, onGoaway: (goaway: Goaway) => void) {
    super({ allowHalfOpen: false });
    this.#inner = inner;
    inner.on("data", (chunk: Buffer) => {
      const { pass, goaway } = this.#scanner.feed(chunk);
      if (pass.length > 0 && !this.push(pass)) inner.pause();
      if (goaway) {
        onGoaway(goaway);
        this.push(null);
        inner.destroy();
      }
    });
    inner.on("end", () => this.push(null));
    inner.on("error", (e: Error) => this.destroy(e));
    inner.on("close", () => this.destroy());
  }

  override _read(): void {
    this.#inner.resume();
  }
  /**
   * The frames HTTP/2 writes in one go (a call's HEADERS and DATA, from one
   * `sendPending` of Deno's binding) leave as one write to the TLS socket: one
   * TLS record and one system call. Without it, a `Duplex` hands on a chunk
   * only once the one before has been written, so a call's DATA followed its
   * HEADERS by a whole write to the socket (0.1–0.7 ms, on the claim's path).
   * The stream stays corked until the end of the current tick only.
   */
  override write(chunk: unknown, ...rest: unknown[]): boolean {
    if (!this.#corked && !this.writableEnded && !this.destroyed) {
      this.#corked = true;
      this.cork();
      process.nextTick(() => {
        if (!this.#corked) return; // destroyed meanwhile, and uncorked then
        this.#corked = false;
        this.uncork();
      });
    }
    return (Duplex.prototype.write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  }

  /** What was written in this tick still goes to the TLS socket before it is destroyed. */
  override destroy(error?: Error): this {
    if (this.#corked && !this.destroyed) {
      this.#corked = false;
      this.uncork();
    }
    return super.destroy(error);
  }

  override _write(chunk: Buffer, _encoding: string, done: (e?: Error | null) => void): void {
    this.#inner.write(chunk, done);
  }
  override _writev(
    chunks: { chunk: Buffer; encoding: string }[],
    done: (e?: Error | null) => void,
  ): void {
    this.#inner.write(Buffer.concat(chunks.map((c) => c.chunk)), done);
  }
  override _final(done: (e?: Error | null) => void): void {
    this.#inner.end(() => done());
  }
  override _destroy(error: Error | null, done: (e?: Error | null) => void): void {
    this.#inner.destroy();
    done(error);
  }

  ref(): this {
    this.#inner.ref();
    return this;
  }
  unref(): this {
    this.#inner.unref();
    return this;
  }
  setNoDelay(noDelay?: boolean): this {
    this.#inner.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.#inner.setKeepAlive(enable, initialDelay);
    return this;
  }
  setTimeout(ms: number, callback?: () => void): this {
    this.#inner.setTimeout(ms, callback);
    return this;
  }
  get encrypted(): boolean {
    return true;
  }
  get alpnProtocol(): string | false | null {
    return this.#inner.alpnProtocol;
  }
  get remoteAddress(): string | undefined {
    return this.#inner.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.#inner.remotePort;
  }
  get localAddress(): string | undefined {
    return this.#inner.localAddress;
  }
  get localPort(): number | undefined {
    return this.#inner.localPort;
  }
}
