import assert from "node:assert/strict";
import { type ConfigDeps, ConfigError, loadConfig, loadConfigSync } from "./load.ts";

const PASSWORD = "pw-4b9e1c7d";

const VALID = `[teleport]
identity = "/id"

[smtp]
host = "smtp.example.com"
username = "teleport"
password_file = "/secrets/smtp_password"

[delivery]
sender = "Teleport <noreply@example.com>"

[role_to_recipients]
"*" = "security@example.com"
`;

function filesDeps(files: Record<string, string>): ConfigDeps {
  return {
    readTextFile(path) {
      const text = files[path];
      if (text === undefined) throw new Deno.errors.NotFound(`readfile '${path}'`);
      return text;
    },
  };
}

function loadError(path: string, deps: ConfigDeps): ConfigError {
  try {
    loadConfigSync(path, deps);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("loadConfig reads, parses and validates the file", async () => {
  const { config, warnings } = await loadConfig(
    "/etc/teleport-email.toml",
    filesDeps({ "/etc/teleport-email.toml": VALID, "/secrets/smtp_password": `${PASSWORD}\n` }),
  );
  assert.deepEqual(warnings, []);
  assert.equal(config.delivery.sender, "Teleport <noreply@example.com>");
  assert.equal(config.mailer.kind === "smtp" && config.mailer.password?.reveal(), PASSWORD);
});

Deno.test("an unreadable config file names the path", async (t) => {
  const cases: Array<[name: string, error: Error, message: string]> = [
    [
      "missing",
      new Deno.errors.NotFound("x"),
      'Cannot read config file "/x.toml": not found; ' +
      "create one with: teleport-email configure > /x.toml",
    ],
    [
      "forbidden",
      new Deno.errors.PermissionDenied("x"),
      'Cannot read config file "/x.toml": permission denied',
    ],
    [
      "a directory",
      new Deno.errors.IsADirectory("x"),
      'Cannot read config file "/x.toml": is a directory',
    ],
  ];
  for (const [name, thrown, message] of cases) {
    await t.step(name, () => {
      const error = loadError("/x.toml", {
        readTextFile() {
          throw thrown;
        },
      });
      assert.equal(error.message, message);
      assert.deepEqual(error.problems, [message]);
      assert.equal(error.cause, thrown);
    });
  }
});

Deno.test("the configure hint quotes a path the shell would split", () => {
  const error = loadError("/etc/my config's.toml", filesDeps({}));
  assert.equal(
    error.message,
    `Cannot read config file "/etc/my config's.toml": not found; ` +
      `create one with: teleport-email configure > '/etc/my config'\\''s.toml'`,
  );
});

Deno.test("validation warnings survive a failed load", () => {
  const error = loadError(
    "/etc/teleport-email.toml",
    filesDeps({
      "/etc/teleport-email.toml": VALID.replace("host =", "hots ="),
      "/secrets/smtp_password": PASSWORD,
    }),
  );
  assert.deepEqual(error.problems, ["smtp.host: is required"]);
  assert.deepEqual(error.warnings, ["smtp.hots: unknown key, ignored (did you mean smtp.host?)"]);
  assert.equal(
    error.message,
    'Invalid config file "/etc/teleport-email.toml": smtp.host: is required',
  );
});

Deno.test("a TOML syntax error gives line and column, without quoting the file", async (t) => {
  const cases: Array<[name: string, toml: string, problem: string]> = [
    [
      "an unterminated string holding a secret",
      `[smtp]\nhost = "h"\npassword = "${PASSWORD}\nport = 25\n`,
      "TOML syntax error at line 3, column 24: control characters are not allowed in strings",
    ],
    [
      "a key without a value",
      `[teleport]\naddr =\n`,
      "TOML syntax error at line 2, column 7: invalid value",
    ],
    [
      "a duplicated key",
      `[log]\nseverity = "INFO"\nseverity = "DEBUG"\n`,
      "TOML syntax error at line 3, column 1: trying to redefine an already defined table or value",
    ],
  ];
  for (const [name, toml, problem] of cases) {
    await t.step(name, () => {
      const error = loadError(
        "/etc/teleport-email.toml",
        filesDeps({ "/etc/teleport-email.toml": toml }),
      );
      assert.deepEqual(error.problems, [problem]);
      assert.equal(error.message, `Invalid config file "/etc/teleport-email.toml": ${problem}`);
      assert.ok(!error.message.includes(PASSWORD));
      assert.ok(!String(error.cause ?? "").includes(PASSWORD));
    });
  }
});

Deno.test("validation problems are reported with the config file's path", () => {
  const error = loadError(
    "/etc/teleport-email.toml",
    filesDeps({
      "/etc/teleport-email.toml": VALID.replace('"/id"', '"/id"\nrefresh_identity = 1'),
    }),
  );
  assert.deepEqual(error.problems, [
    'teleport.refresh_identity: must be a boolean, got an integer "1"',
    'smtp.password_file: cannot read "/secrets/smtp_password": not found',
  ]);
  assert.equal(
    error.message,
    'Invalid config file "/etc/teleport-email.toml" (2 problems):\n' +
      '  - teleport.refresh_identity: must be a boolean, got an integer "1"\n' +
      '  - smtp.password_file: cannot read "/secrets/smtp_password": not found',
  );
});

Deno.test("by default loadConfig reads the real file system", async () => {
  const dir = await Deno.makeTempDir({ prefix: "teleport_email_config_" });
  try {
    const passwordFile = `${dir}/smtp_password`;
    const configFile = `${dir}/teleport-email.toml`;
    await Deno.writeTextFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    await Deno.chmod(passwordFile, 0o600);
    await Deno.writeTextFile(
      configFile,
      VALID.replace("/secrets/smtp_password", passwordFile.replaceAll("\\", "\\\\")),
    );
    const { config, warnings } = loadConfigSync(configFile);
    assert.equal(config.mailer.kind === "smtp" && config.mailer.password?.reveal(), PASSWORD);
    assert.deepEqual(warnings, []);
    // Written with `echo … | sudo tee`, the file is readable by every local user.
    await Deno.chmod(passwordFile, 0o644);
    assert.deepEqual(loadConfigSync(configFile).warnings, [
      `smtp.password_file: file "${passwordFile}" holds a secret but is accessible by group or ` +
      `others (mode 0644); restrict it with "chmod 600 ${passwordFile}"`,
    ]);

    const missing = loadError(`${dir}/absent.toml`, { readTextFile: Deno.readTextFileSync });
    assert.equal(
      missing.message,
      `Cannot read config file "${dir}/absent.toml": not found; ` +
        `create one with: teleport-email configure > ${dir}/absent.toml`,
    );
    assert.throws(() => loadConfigSync(dir), {
      message: `Cannot read config file "${dir}": is a directory`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig loads the template engine for a file with [templates] and checks them", async () => {
  const files = (templates: string) =>
    filesDeps({
      "/etc/teleport-email.toml": VALID + templates,
      "/secrets/smtp_password": `${PASSWORD}\n`,
    });
  const { config } = await loadConfig(
    "/etc/teleport-email.toml",
    files(`\n[templates]\nsubject = "Access for {{user}}"\n`),
  );
  assert.equal(config.templates?.subject?.source, "Access for {{user}}");
  await assert.rejects(
    loadConfig(
      "/etc/teleport-email.toml",
      files(`\n[templates.reminder]\ntext = """\nline one\n{{#each roles}}"""\n`),
    ),
    (error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.problems[0]!, /^templates\.reminder\.text: line 2: syntax error/);
      return true;
    },
  );
});
