/**
 * Where log lines go, when that place is hostile or careless (issue 12): a
 * pre-existing log file that others may read is warned about, and an output
 * that refuses writes (`/dev/full`) is reported once on stderr instead of
 * losing every line without a word.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { closeLogging, logger, type LoggingDeps, setupLogging } from "./log.ts";

function stderrCapture() {
  const lines: string[] = [];
  const decoder = new TextDecoder();
  return {
    lines,
    writer: { writeSync: (b: Uint8Array) => (lines.push(decoder.decode(b)), b.length) },
  };
}

/** The real file system, with stdout/stderr captured. */
function realFiles(stderr: { writeSync(b: Uint8Array): number }): LoggingDeps {
  return {
    stderr,
    stdout: stderr,
    openAppend: (path) =>
      Deno.openSync(path, { append: true, create: true, write: true, mode: 0o600 }),
  };
}

Deno.test({
  name: "a pre-existing log file that group or others may read is warned about",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "log_output_test_" });
    try {
      const loose = `${dir}/loose.log`;
      await Deno.writeTextFile(loose, "");
      await Deno.chmod(loose, 0o644);
      const created = `${dir}/created.log`;
      for (const path of [loose, created]) {
        const err = stderrCapture();
        await setupLogging(
          { output: path, severity: "info", format: "text" },
          {},
          realFiles(err.writer),
        );
        logger().info("hello");
        await closeLogging();
        const text = await Deno.readTextFile(path);
        const warning =
          `WARN  Log file "${path}" (log.output) is accessible by group or others (mode 0644); ` +
          `restrict it with "chmod 600 ${path}"`;
        if (path === loose) assert.ok(text.includes(warning), text);
        else {
          assert.ok(!text.includes("WARN"), text);
          assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600, "created owner-only");
        }
        assert.match(text, /INFO {2}hello/);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a log output that refuses writes (/dev/full) is reported once on stderr",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const err = stderrCapture();
    await setupLogging(
      { output: "/dev/full", severity: "info", format: "text" },
      {},
      realFiles(err.writer),
    );
    try {
      for (let i = 0; i < 5; i++) logger().info("line {i}", { i });
    } finally {
      await closeLogging();
    }
    assert.equal(err.lines.length, 1, err.lines.join(""));
    assert.match(
      err.lines[0]!,
      /^teleport-email: cannot write to log output "\/dev\/full" \(log\.output\): .*; log lines are lost until it accepts writes again\n$/,
    );
  },
});

Deno.test({
  name: "log.output = /dev/stdout works when stdout is a pipe (only a named FIFO is refused)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "log_output_test_" });
    try {
      const script = `${dir}/log_to_stdout.ts`;
      const log = new URL("./log.ts", import.meta.url).href;
      await Deno.writeTextFile(
        script,
        `import { closeLogging, logger, setupLogging } from ${JSON.stringify(log)};\n` +
          `await setupLogging({ output: "/dev/stdout", severity: "info", format: "text" }, {});\n` +
          `logger().info("through the pipe");\nawait closeLogging();\n`,
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--config",
          fileURLToPath(new URL("../../deno.json", import.meta.url)),
          script,
        ],
        env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      assert.match(new TextDecoder().decode(out.stdout), /INFO {2}through the pipe\n$/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
