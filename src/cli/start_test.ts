import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { EXIT_FAILURE } from "./exit_codes.ts";
import { startCommand, type StartDeps } from "./start.ts";
import { moduleGraph } from "../../tests/command.ts";

/** A valid config (no SMTP auth, so no secret file) logging to `logFile` in `format`. */
function config(logFile: string, format: "text" | "json", smtpHostKey = "host"): string {
  return `[teleport]
identity = "/nonexistent/identity"
[smtp]
${smtpHostKey} = "smtp.example.com"
[delivery]
sender = "noreply@example.com"
[role_to_recipients]
"*" = "security@example.com"
[log]
output = ${JSON.stringify(logFile)}
format = "${format}"
`;
}

function fakeDeps(runPlugin: StartDeps["runPlugin"] = () => Promise.resolve(0)) {
  const stderr: string[] = [];
  const deps: StartDeps = { printError: (text) => void stderr.push(text), runPlugin };
  return { stderr, deps };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "teleport_email_start_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a config error is printed after the warnings that explain it", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/teleport-email.toml`;
    await Deno.writeTextFile(path, config(`${dir}/plugin.log`, "text", "hots"));
    const { stderr, deps } = fakeDeps(() => assert.fail("the plugin must not start"));
    const code = await startCommand({ configPath: path, debug: false }, deps);
    assert.equal(code, EXIT_FAILURE);
    assert.deepEqual(stderr, [
      "teleport-email: warning: smtp.hots: unknown key, ignored (did you mean smtp.host?)\n",
      `teleport-email: Invalid config file ${JSON.stringify(path)}: smtp.host: is required\n`,
    ]);
  });
});

Deno.test("a missing config file names the configure command", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/absent.toml`;
    const { stderr, deps } = fakeDeps();
    assert.equal(await startCommand({ configPath: path, debug: false }, deps), EXIT_FAILURE);
    assert.deepEqual(stderr, [
      `teleport-email: Cannot read config file "${path}": not found; ` +
      `create one with: teleport-email configure > ${path}\n`,
    ]);
  });
});

Deno.test("in JSON format the fatal line carries the error's message, which stderr gets too", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/teleport-email.toml`;
    const logFile = `${dir}/plugin.log`;
    await Deno.writeTextFile(path, config(logFile, "json"));
    const failure = new Error('Cannot read identity file "/nonexistent/identity": not found');
    const { stderr, deps } = fakeDeps(() => Promise.reject(failure));
    assert.equal(await startCommand({ configPath: path, debug: false }, deps), EXIT_FAILURE);
    // The log goes to a file: the journal (stderr) still says why the plugin stopped.
    assert.deepEqual(stderr, [`teleport-email: Plugin failed: ${failure.message}\n`]);
    const records = (await Deno.readTextFile(logFile)).trimEnd().split("\n")
      .map((line) => JSON.parse(line) as { level: string; message: string; properties: unknown });
    const fatal = records.at(-1)!;
    assert.equal(fatal.level, "ERROR");
    assert.equal(fatal.message, `Plugin failed: ${failure.message}`);
    assert.deepEqual(fatal.properties, { error: { name: "Error", message: failure.message } });
  });
});

Deno.test("the fatal line on stderr is one line, whatever the error's text holds", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/teleport-email.toml`;
    await Deno.writeTextFile(path, config(`${dir}/plugin.log`, "text"));
    const failure = new Error("refused: 550 no\r\nERROR forged line\u001b[31m red\u009b2J clear");
    const { stderr, deps } = fakeDeps(() => Promise.reject(failure));
    assert.equal(await startCommand({ configPath: path, debug: false }, deps), EXIT_FAILURE);
    assert.deepEqual(stderr, [
      "teleport-email: Plugin failed: refused: 550 no ERROR forged line [31m red 2J clear\n",
    ]);
  });
});

Deno.test("start.ts does not import run.ts (no import cycle between the commands)", async () => {
  const specifiers = await moduleGraph(fileURLToPath(new URL("./start.ts", import.meta.url)));
  assert.ok(specifiers.some((s) => s.endsWith("/src/cli/start.ts")));
  assert.deepEqual(specifiers.filter((s) => s.endsWith("/src/cli/run.ts")), []);
});
