import assert from "node:assert/strict";
import { closeLogging, logger, type LoggingDeps, setupLogging } from "./log.ts";
import type { LogConfig } from "../config/types.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  const files = new Map<string, string[]>();
  const decoder = new TextDecoder();
  const deps: LoggingDeps = {
    stdout: { writeSync: (b) => (out.push(decoder.decode(b)), b.length) },
    stderr: { writeSync: (b) => (err.push(decoder.decode(b)), b.length) },
    openAppend: (path) => {
      const lines = files.get(path) ?? [];
      files.set(path, lines);
      return { writeSync: (b) => (lines.push(decoder.decode(b)), b.length), close: () => {} };
    },
  };
  return { out, err, files, deps };
}

const base: LogConfig = { output: "stderr", severity: "info", format: "text" };

Deno.test("text lines carry level, message and context, and honour severity", async () => {
  const c = capture();
  await setupLogging(base, {}, c.deps);
  try {
    logger("notify").with({ requestId: "r-1" }).info("Email sent to {to}", { to: "a@b.c" });
    logger().debug("hidden");
  } finally {
    await closeLogging();
  }
  assert.equal(c.err.length, 1);
  assert.match(
    c.err[0]!,
    /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}Email sent to a@b.c requestId=r-1\n$/,
  );
});

Deno.test("--debug forces debug severity; stdout output", async () => {
  const c = capture();
  await setupLogging({ ...base, output: "stdout", severity: "error" }, { debug: true }, c.deps);
  try {
    logger().debug("details");
  } finally {
    await closeLogging();
  }
  assert.equal(c.err.length, 0);
  assert.match(c.out.join(""), /DEBUG details/);
});

Deno.test("CR/LF in a value cannot forge a log line", async () => {
  const c = capture();
  await setupLogging(base, {}, c.deps);
  try {
    logger().with({ reason: "x\nFAKE" }).warn("Reason {reason}", { reason: "a\r\nERROR forged" });
  } finally {
    await closeLogging();
  }
  const text = c.err.join("");
  assert.equal(text.split("\n").length, 2, text);
  assert.match(text, /Reason "a\\r\\nERROR forged"/);
});

Deno.test("json format writes one JSON object per line", async () => {
  const c = capture();
  await setupLogging({ ...base, format: "json", output: "/var/log/x.log" }, {}, c.deps);
  try {
    logger().with({ requestId: "r-2" }).error("Failed for {to}", { to: "a@b.c" });
  } finally {
    await closeLogging();
  }
  const lines = c.files.get("/var/log/x.log")!;
  assert.equal(lines.length, 1);
  const record = JSON.parse(lines[0]!);
  assert.equal(record.level, "ERROR");
  assert.equal(record.message, 'Failed for "a@b.c"');
  assert.equal(record.properties.requestId, "r-2");
  assert.equal(record.logger, "teleport-email");
});

Deno.test("a log file is appended to and created owner-only", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/plugin.log`;
  await Deno.writeTextFile(path, "old line\n");
  await Deno.chmod(path, 0o600);
  await setupLogging({ ...base, output: path });
  try {
    logger().info("new line");
  } finally {
    await closeLogging();
  }
  const text = await Deno.readTextFile(path);
  assert.match(text, /^old line\n.*INFO {2}new line\n$/);
  const fresh = `${dir}/fresh.log`;
  await setupLogging({ ...base, output: fresh });
  await closeLogging();
  assert.equal((await Deno.stat(fresh)).mode! & 0o777, 0o600);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an unwritable log path is an error naming log.output and the path", async () => {
  await assert.rejects(
    setupLogging({ ...base, output: "/nonexistent-dir/x.log" }),
    /Cannot open log file "\/nonexistent-dir\/x.log" \(log.output\)/,
  );
});
