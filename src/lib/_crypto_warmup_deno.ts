/**
 * A workaround for a start-up cost of Deno (2.9.6), reproduced by
 * `deno run -A scripts/repro_first_tls_cost.ts`: the first operation of a
 * process that needs random bytes from its crypto library (aws-lc, through
 * aws-lc-rs), such as the first TLS handshake, first sets that library's
 * random generator up, which takes ~60 ms of CPU, once. A TLS handshake
 * (`node:tls`, `Deno.startTls`) does that on the main thread, so the
 * plugin's first connection to Teleport or to the mail server stalls
 * everything else, at every start, on the way to "Plugin is ready".
 *
 * `crypto.subtle.generateKey` for an ECDSA key runs in Deno's blocking
 * thread pool, and the same set-up happens there. Importing this module
 * starts one such key generation and drops its result: the set-up then runs
 * on another CPU while the main thread runs the program's other modules
 * (the npm packages load then, ~0.2 s), and the first handshake finds it
 * done. Nothing is kept, sent or logged; the key is
 * never used. If a Deno release stops doing the set-up in the pool, the
 * handshake pays for it again, nothing else changes.
 *
 * Import it first in the entry point (module bodies run in import order).
 * Delete this file once a first handshake costs Deno no more than a later one.
 */

// The set-up is the same whatever the key; P-256 is the cheapest ECDSA curve.
crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"])
  .catch(() => {});
