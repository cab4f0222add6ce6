import assert from "node:assert/strict";

const MIB = 1024 * 1024;

/**
 * Runs in a process of its own: the resident set is the whole process's,
 * and `deno test --parallel` runs other test files in this one, whose
 * memory comes and goes meanwhile.
 */
const CHILD = `
import { releaseMemory } from ${
  JSON.stringify(new URL("./_memory_release_deno.ts", import.meta.url).href)
};
/** The process's own resident memory (not pages of mapped files), from the kernel. */
function rssAnon() {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/RssAnon:\\s+(\\d+) kB/.exec(status)[1]) * 1024;
}
// As a burst leaves it: buffers freed between buffers still alive, so that
// malloc's heap cannot shrink from its top.
const kept = [];
let garbage = [];
for (let i = 0; i < 6_000; i++) {
  garbage.push(new Uint8Array(16 * 1024).fill(1));
  kept.push(new Uint8Array(1024).fill(2));
}
const allocated = rssAnon();
garbage = undefined;
const released = releaseMemory();
const after = rssAnon();
console.log(JSON.stringify({ allocated, after, released, kept: kept.every((b) => b[0] === 2) }));
`;

Deno.test({
  name: "releaseMemory gives back to the system what a burst freed below memory still in use",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", CHILD],
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    assert.equal(code, 0, dec.decode(stderr));
    const { allocated, after, released, kept } = JSON.parse(dec.decode(stdout));
    assert.equal(released.trimmed, true);
    // 94 MiB were garbage; most of it must be gone from the resident set.
    assert.ok(
      allocated - after > 60 * MIB,
      `resident memory went ${(allocated / MIB).toFixed(1)} → ${(after / MIB).toFixed(1)} MiB`,
    );
    assert.ok(released.rssAfter < released.rssBefore);
    assert.equal(kept, true);
  },
});
