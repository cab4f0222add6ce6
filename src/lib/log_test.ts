import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { closeLogging, logger, type LoggingDeps, type LogOptions, setupLogging } from "./log.ts";
import { moduleGraph } from "../../tests/command.ts";

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

const base: LogOptions = { output: "stderr", severity: "info", format: "text" };

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

Deno.test("a value cannot forge a key=value field of a text line", async () => {
  const c = capture();
  await setupLogging(base, {}, c.deps);
  try {
    logger().with({ requestId: "r-1" }).warn("Not emailing {who}", {
      who: "x requestId=forged",
      reason: '"x requestId=forged to=evil@x',
      note: "two words",
    });
  } finally {
    await closeLogging();
  }
  const line = c.err.join("");
  assert.ok(
    line.endsWith(
      'Not emailing "x requestId=forged" requestId=r-1 ' +
        'reason="\\"x requestId=forged to=evil@x" note="two words"\n',
    ),
    line,
  );
});

Deno.test("a message value that merely contains ' = ' (a config hint) is not quoted", async () => {
  const c = capture();
  await setupLogging(base, {}, c.deps);
  try {
    logger().warn("{warning}", {
      warning: 'smtp.allow_insecure_auth = true (starttls_policy = "x")',
    });
  } finally {
    await closeLogging();
  }
  assert.match(
    c.err.join(""),
    / WARN {2}smtp\.allow_insecure_auth = true \(starttls_policy = "x"\)\n$/,
  );
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
  assert.equal(record.message, "Failed for a@b.c");
  assert.deepEqual(record.properties, { requestId: "r-2", to: "a@b.c" });
  assert.equal(record.logger, "teleport-email");
  assert.match(record["@timestamp"], /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
});

/** Logs with `log` in JSON format and returns the parsed lines. */
async function jsonRecords(log: () => void): Promise<Record<string, unknown>[]> {
  const c = capture();
  await setupLogging({ ...base, format: "json" }, {}, c.deps);
  try {
    log();
  } finally {
    await closeLogging();
  }
  const text = c.err.join("");
  assert.ok(text.endsWith("\n"));
  return text.trimEnd().split("\n").map((line) => JSON.parse(line));
}

Deno.test("json messages are plain text, values are not quoted again", async () => {
  const [warning, numbers, object] = await jsonRecords(() => {
    const log = logger();
    log.warn("{warning}", { warning: "smtp.hots: unknown key, ignored" });
    log.info("Sent {count} emails in {ms} ms", { count: 3, ms: 12.5 });
    log.info("Roles {roles}", { roles: ["dev", "ops"] });
  });
  assert.equal(warning!.level, "WARN");
  assert.equal(warning!.message, "smtp.hots: unknown key, ignored");
  assert.deepEqual(warning!.properties, { warning: "smtp.hots: unknown key, ignored" });
  assert.equal(numbers!.message, "Sent 3 emails in 12.5 ms");
  assert.deepEqual(numbers!.properties, { count: 3, ms: 12.5 });
  assert.equal(object!.message, 'Roles ["dev","ops"]');
  assert.deepEqual(object!.properties, { roles: ["dev", "ops"] });
});

Deno.test("json renders an error as its name, message and code, not {} or a stack", async () => {
  const error = Object.assign(new Error('Cannot read identity file "/id": not found'), {
    code: "ENOENT",
  });
  const [record, plain] = await jsonRecords(() => {
    logger().error("Plugin failed: {error}", { error });
    logger().error("Send failed", { error: new TypeError("bad header") });
  });
  assert.equal(record!.message, 'Plugin failed: Cannot read identity file "/id": not found');
  assert.deepEqual(record!.properties, {
    error: { name: "Error", message: 'Cannot read identity file "/id": not found', code: "ENOENT" },
  });
  assert.equal(plain!.message, "Send failed");
  assert.deepEqual(plain!.properties, { error: { name: "TypeError", message: "bad header" } });
  assert.doesNotMatch(JSON.stringify([record, plain]), /stack|at .*log_test/);
});

Deno.test("json keeps CR/LF inside the line and a cyclic value does not lose it", async () => {
  const cyclic: Record<string, unknown> = { name: "loop" };
  cyclic.self = cyclic;
  const records = await jsonRecords(() => {
    logger().warn("Reason {reason}", { reason: "a\r\nERROR forged" });
    logger().info("Odd {value}", { value: cyclic, big: 10n, ok: [1] });
  });
  assert.equal(records.length, 2);
  assert.equal(records[0]!.message, "Reason a\r\nERROR forged");
  assert.equal(records[1]!.message, "Odd [object Object]");
  assert.deepEqual(records[1]!.properties, { value: "[object Object]", big: "10", ok: [1] });
});

Deno.test("text lines render an error as its message", async () => {
  const c = capture();
  await setupLogging(base, {}, c.deps);
  try {
    logger().error("Plugin failed: {error}", { error: new Error("boom"), requestId: "r-3" });
  } finally {
    await closeLogging();
  }
  assert.match(c.err.join(""), / ERROR Plugin failed: boom requestId=r-3\n$/);
});

Deno.test("the logger depends on nothing in src/config (config imports lib, not the reverse)", async () => {
  const modules = await moduleGraph(fileURLToPath(new URL("./log.ts", import.meta.url)));
  const local = modules.filter((s) => s.startsWith("file:"));
  assert.ok(local.some((s) => s.endsWith("/src/lib/log.ts")), local.join("\n"));
  assert.deepEqual(local.filter((s) => s.includes("/src/config/")), []);
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
