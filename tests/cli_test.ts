/**
 * Black-box tests of the command line: spawn `main.ts` the way an operator
 * runs the binary and check exit codes, stdout and stderr.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse as parseToml } from "smol-toml";
import { runCommand, type RunResult } from "./command.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

export type { RunResult };

/** Runs `deno run -A main.ts …args` in `cwd` (default: a temp dir, to prove cwd does not matter). */
export async function runMain(args: string[], options: { cwd?: string } = {}): Promise<RunResult> {
  const cwd = options.cwd ?? await Deno.makeTempDir();
  return await runCommand(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
  });
}

Deno.test("version prints one line: teleport-email v<version> git:<ref> deno<version>", async () => {
  const { code, stdout, stderr } = await runMain(["version"]);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^teleport-email v\d+\.\d+\.\d+\S* git:\S+ deno\d+\.\d+\.\d+\n$/);
  assert.equal(stdout, stdout.trim() + "\n");
});

Deno.test("help, --help and -h print usage on stdout and exit 0", async () => {
  for (const args of [["help"], ["--help"], ["-h"], ["help", "start"], ["start", "--help"]]) {
    const { code, stdout } = await runMain(args);
    assert.equal(code, 0, args.join(" "));
    assert.match(stdout, /Usage: teleport-email/, args.join(" "));
  }
});

Deno.test("unknown command and unknown flag: one line plus a hint on stderr, exit 2", async () => {
  for (
    const [args, message] of [
      [["frobnicate"], 'Unknown command "frobnicate"'],
      [["start", "--frob"], 'Unknown flag "--frob"'],
    ] as const
  ) {
    const { code, stdout, stderr } = await runMain([...args]);
    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.equal(stderr, `teleport-email: ${message}\nTry 'teleport-email --help' for usage.\n`);
  }
});

Deno.test("configure prints valid TOML that start accepts once its placeholders are filled", async () => {
  const { code, stdout } = await runMain(["configure"]);
  assert.equal(code, 0);
  const parsed = parseToml(stdout) as Record<string, Record<string, unknown>>;
  assert.ok(parsed.teleport && parsed.delivery && parsed.role_to_recipients, "sections present");

  // Fill in the placeholders: the secret file the template points at.
  const dir = await Deno.makeTempDir();
  const passwordFile = `${dir}/smtp_password`;
  await Deno.writeTextFile(passwordFile, "s3cret-value\n");
  await Deno.chmod(passwordFile, 0o600); // as the template says
  const config = stdout.replaceAll("/var/lib/teleport/plugins/email/smtp_password", passwordFile);
  await Deno.writeTextFile(`${dir}/teleport-email.toml`, config);

  const run = await runMain(["start", "-c", "teleport-email.toml"], { cwd: dir });
  assert.match(run.stderr, /Starting Teleport Access Email Plugin/);
  assert.doesNotMatch(run.stderr, /s3cret-value/);
  assert.doesNotMatch(run.stderr, /WARN/, "the template draws no warning");
  // The config is accepted; what stops the run is the identity file the template names.
  assert.equal(run.code, 1);
  assert.match(run.stderr, /\/var\/lib\/teleport\/plugins\/email\/identity/);
});

Deno.test("start with a missing config file: exit 1 naming the path and how to create it", async () => {
  const { code, stdout, stderr } = await runMain([
    "start",
    "--config",
    "/nonexistent/teleport-email.toml",
  ]);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    'teleport-email: Cannot read config file "/nonexistent/teleport-email.toml": not found; ' +
      "create one with: teleport-email configure > /nonexistent/teleport-email.toml\n",
  );
});

Deno.test("start with a misspelt key: the error comes with the unknown key and its likely fix", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/typo.toml`,
    [
      "[teleport]",
      'identity = "/nonexistent/identity"',
      "[smtp]",
      'hots = "smtp.example.com"',
      "[delivery]",
      'sender = "noreply@example.com"',
      "[role_to_recipients]",
      '"*" = "security@example.com"',
    ].join("\n"),
  );
  const { code, stderr } = await runMain(["start", "-c", "typo.toml"], { cwd: dir });
  assert.equal(code, 1);
  assert.equal(
    stderr,
    "teleport-email: warning: smtp.hots: unknown key, ignored (did you mean smtp.host?)\n" +
      'teleport-email: Invalid config file "typo.toml": smtp.host: is required\n',
  );
});

Deno.test("start with a bad config: exit 1, every problem named by its key, no secret", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/bad.toml`,
    [
      "[smtp]",
      'host = "smtp.example.com"',
      "port = 70000",
      'username = "u"',
      'password = "hunter2-secret"',
      'starttls_policy = "sometimes"',
      "[delivery]",
      'sender = "noreply@example.com"',
      "[role_to_recipients]",
      '"dev" = ["eng@example.com"]',
    ].join("\n"),
  );
  const { code, stderr } = await runMain(["start", "-c", `${dir}/bad.toml`]);
  assert.equal(code, 1);
  assert.match(stderr, /smtp\.port/);
  assert.match(stderr, /smtp\.starttls_policy/);
  assert.match(stderr, /role_to_recipients/);
  assert.doesNotMatch(stderr, /hunter2-secret/);
});

Deno.test("start with a TOML syntax error: exit 1 with line and column", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/broken.toml`, '[smtp]\nhost = "a"\nport = = 3\n');
  const { code, stderr } = await runMain(["start", "-c", `${dir}/broken.toml`]);
  assert.equal(code, 1);
  assert.match(stderr, /line 3/i);
  assert.match(stderr, /column \d+/i);
});

/** A config that validates (the identity file is not read by validation), plus `extra` TOML. */
async function previewConfig(extra = ""): Promise<string> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/teleport-email.toml`;
  await Deno.writeTextFile(
    path,
    [
      "[teleport]",
      'identity = "/nonexistent/identity"',
      "[smtp]",
      'host = "smtp.example.com"',
      "[delivery]",
      'sender = "noreply@example.com"',
      "[role_to_recipients]",
      '"*" = ["ops@example.com"]',
      extra,
    ].join("\n"),
  );
  return path;
}

Deno.test("preview without [templates] prints the built-in email of every kind", async () => {
  const { code, stdout, stderr } = await runMain(["preview", "--config", await previewConfig()]);
  assert.equal(code, 0, stderr);
  assert.equal(stderr, "");
  for (const kind of ["new_request", "review", "resolution", "reminder", "requester"]) {
    assert.match(stdout, new RegExp(`^==> ${kind} \\(built-in\\) to \\S+@example\\.com$`, "m"));
  }
  assert.match(stdout, /^Subject: teleport\.example\.com Role Request [0-9a-f-]{36}$/m);
  assert.match(stdout, /^You have a new Role Request:$/m);
  assert.match(stdout, /^--- HTML ---\n<!DOCTYPE html>$/m);
});

Deno.test("preview --kind renders the config's templates on made-up data", async () => {
  const config = await previewConfig(
    [
      "[templates]",
      'subject = "[OPS-{{request_id}}]\\r\\nBcc: x@example.com {{user}}"',
      'time_zone = "Europe/Berlin"',
      "[templates.new_request]",
      'text = "Neue Anfrage von {{user}} ({{created}})"',
    ].join("\n"),
  );
  const { code, stdout, stderr } = await runMain([
    "preview",
    "-c",
    config,
    "--kind",
    "new_request",
  ]);
  assert.equal(code, 0, stderr);
  const lines = stdout.split("\n");
  assert.equal(lines[0], "==> new_request (templates) to ops@example.com");
  assert.equal(
    lines[1],
    "Subject: [OPS-2d3c4b5a-6f70-4819-a2b3-c4d5e6f70819] Bcc: x@example.com alice@example.com",
  );
  assert.equal(lines[3], "Neue Anfrage von alice@example.com (2026-11-22 10:30 GMT+1)");
  assert.doesNotMatch(stdout, /==> review/);
});

Deno.test("preview and start with a broken template: exit 1 naming the key and the line", async () => {
  const config = await previewConfig('[templates.review]\ntext = "ok\\n{{#if user}}"');
  for (const command of ["preview", "start"]) {
    const { code, stdout, stderr } = await runMain([command, "-c", config]);
    assert.equal(code, 1, command);
    assert.equal(stdout, "");
    assert.match(stderr, /templates\.review\.text: line 2: syntax error/, command);
  }
});

Deno.test("preview --kind with an unknown kind is a usage error (exit 2)", async () => {
  const { code, stderr } = await runMain(["preview", "--kind", "nope"]);
  assert.equal(code, 2);
  assert.match(stderr, /^teleport-email: Unknown kind "nope" \(one of new_request, review, /);
});

Deno.test({
  name: "configure into a full disk: exit 1 with one line, no stack trace",
  ignore: !(await Deno.stat("/dev/full").then(() => true, () => false)),
  async fn() {
    const { code, stderr } = await runCommand("bash", {
      args: ["-c", 'exec "$0" run -A "$1" configure > /dev/full', Deno.execPath(), MAIN],
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    });
    assert.equal(code, 1);
    assert.equal(
      stderr,
      "teleport-email: cannot write the output: No space left on device (os error 28)\n",
    );
  },
});
