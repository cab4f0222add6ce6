import assert from "node:assert/strict";
import { releaseMemory } from "./_memory_release_deno.ts";

const MIB = 1024 * 1024;

/** The process's own resident memory (not pages of mapped files), from the kernel. */
function rssAnon(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/RssAnon:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

Deno.test({
  name: "releaseMemory gives back to the system what a burst freed below memory still in use",
  ignore: Deno.build.os !== "linux",
  fn() {
    // As a burst leaves it: buffers freed between buffers still alive, so that
    // malloc's heap cannot shrink from its top.
    const kept: Uint8Array[] = [];
    let garbage: Uint8Array[] | undefined = [];
    for (let i = 0; i < 6_000; i++) {
      garbage.push(new Uint8Array(16 * 1024).fill(1));
      kept.push(new Uint8Array(1024).fill(2));
    }
    const allocated = rssAnon();
    garbage = undefined;
    const released = releaseMemory();
    const after = rssAnon();
    assert.equal(released.trimmed, true);
    // 94 MiB were garbage; most of it must be gone from the resident set.
    assert.ok(
      allocated - after > 60 * MIB,
      `resident memory went ${(allocated / MIB).toFixed(1)} → ${(after / MIB).toFixed(1)} MiB`,
    );
    assert.ok(released.rssAfter < released.rssBefore);
    assert.equal(kept.every((b) => b[0] === 2), true);
  },
});
