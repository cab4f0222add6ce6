import assert from "node:assert/strict";
import {
  formatBytes,
  KIB,
  MIB,
  readBoundedTextFile,
  readBoundedTextFileSync,
} from "./read_file.ts";

/** A read must answer within this (a FIFO that blocked or /dev/zero read to the end never would). */
const PROMPT_MS = 2_000;

/** Makes a FIFO with mkfifo(1); undefined where there is none. */
async function makeFifo(path: string): Promise<string | undefined> {
  try {
    const { code } = await new Deno.Command("mkfifo", { args: [path] }).output();
    return code === 0 ? path : undefined;
  } catch {
    return undefined;
  }
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "read_file_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Rejects when `promise` has not settled within `ms`. */
async function prompt<T>(promise: Promise<T>, what: string, ms = PROMPT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("formatBytes names limits as people write them", () => {
  assert.equal(formatBytes(64 * KIB), "64 KiB");
  assert.equal(formatBytes(4 * MIB), "4 MiB");
  assert.equal(formatBytes(1 * MIB), "1 MiB");
  assert.equal(formatBytes(1500), "1500 bytes");
});

Deno.test("bounded reads: regular files up to the limit, nothing else", async (t) => {
  await withDir(async (dir) => {
    const exact = `${dir}/exact`;
    const over = `${dir}/over`;
    await Deno.writeTextFile(exact, "x".repeat(100));
    await Deno.writeTextFile(over, "x".repeat(101));
    await Deno.writeFile(`${dir}/latin1`, Uint8Array.of(0x63, 0x61, 0x66, 0xe9));
    await Deno.symlink(exact, `${dir}/link`);
    const fifo = await makeFifo(`${dir}/fifo`);

    const table: Array<[name: string, path: string | undefined, outcome: string | RegExp]> = [
      ["a file of exactly the limit", exact, "x".repeat(100)],
      ["a symlink to a regular file", `${dir}/link`, "x".repeat(100)],
      ["one byte over the limit", over, /^is larger than the 100 bytes limit$/],
      ["a directory", dir, /^is a directory$/],
      ["/dev/zero, which never ends", "/dev/zero", /^is a character device, not a regular file$/],
      ["/dev/null", "/dev/null", /^is a character device, not a regular file$/],
      [
        "a FIFO, which would block the open",
        fifo,
        /^is a FIFO \(named pipe\), not a regular file$/,
      ],
      ["invalid UTF-8", `${dir}/latin1`, /valid UTF-8/],
      ["a missing file", `${dir}/absent`, /No such file|not found/i],
    ];
    for (const [name, path, outcome] of table) {
      await t.step({
        name,
        ignore: path === undefined || (path.startsWith("/dev/") && Deno.build.os === "windows"),
        fn: async () => {
          const p = path!;
          for (
            const [how, read] of [
              ["sync", () => Promise.resolve().then(() => readBoundedTextFileSync(p, 100))],
              ["async", () => readBoundedTextFile(p, 100)],
            ] as const
          ) {
            if (typeof outcome === "string") {
              assert.equal(await prompt(read(), how), outcome, how);
            } else {
              const error = await prompt(read().then(() => undefined, (e: Error) => e), how);
              assert.ok(error instanceof Error, `${how}: expected an error`);
              assert.match(error.message, outcome, how);
            }
          }
        },
      });
    }
  });
});

Deno.test("bounded reads: a file that grows past its limit is still cut at the limit", async () => {
  // /proc files say size 0 and yet have content: the read itself must stop at limit + 1.
  const path = "/proc/self/status";
  const ok = await Deno.stat(path).then((i) => i.isFile && i.size === 0, () => false);
  if (!ok) return;
  assert.throws(() => readBoundedTextFileSync(path, 16), /is larger than the 16 bytes limit/);
  await assert.rejects(readBoundedTextFile(path, 16), /is larger than the 16 bytes limit/);
  assert.match(readBoundedTextFileSync(path, MIB), /^Name:/);
});
