import assert from "node:assert/strict";
import { parse } from "smol-toml";
import { CONFIG_TEMPLATE } from "./template.ts";
import { STARTTLS_POLICIES } from "./types.ts";
import { CONFIG_KEYS, validateConfig } from "./validate.ts";

const PASSWORD_FILE = "/var/lib/teleport/plugins/email/smtp_password";

Deno.test("the template is valid TOML that validates without warnings", () => {
  const reads: string[] = [];
  const { config, warnings } = validateConfig(parse(CONFIG_TEMPLATE), {
    readTextFile(path) {
      reads.push(path);
      if (path !== PASSWORD_FILE) throw new Deno.errors.NotFound(path);
      return "placeholder-password\n";
    },
  });
  assert.deepEqual(warnings, []);
  assert.deepEqual(reads, [PASSWORD_FILE]);
  assert.equal(config.teleport.addr, "teleport.example.com:443");
  assert.deepEqual(config.teleport.credentials, {
    kind: "identity",
    identityFile: "/var/lib/teleport/plugins/email/identity",
  });
  assert.equal(config.teleport.refreshIdentity, true);
  assert.equal(config.mailer.kind, "smtp", "exactly one mailer is active: SMTP");
  assert.equal(config.delivery.sender, "noreply@example.com");
  assert.deepEqual({ ...config.roleToRecipients }, {
    "*": ["security@example.com", "admin@example.com"],
    dev: ["dev-manager@example.com"],
  });
  assert.deepEqual(config.log, { output: "stderr", severity: "info", format: "text" });
});

Deno.test("the template has no active [mailgun] section", () => {
  const raw = parse(CONFIG_TEMPLATE);
  assert.equal(Object.hasOwn(raw, "mailgun"), false);
  assert.match(CONFIG_TEMPLATE, /^# \[mailgun\]$/m);
});

Deno.test("the template documents every key, active or commented out", async (t) => {
  for (const [section, keys] of Object.entries(CONFIG_KEYS)) {
    await t.step(`[${section}]`, () => {
      assert.match(CONFIG_TEMPLATE, new RegExp(`^(# )?\\[${section}\\]$`, "m"));
      for (const key of keys) {
        assert.match(
          CONFIG_TEMPLATE,
          new RegExp(`^(# )*${key} = `, "m"),
          `${section}.${key} is not in the template`,
        );
      }
    });
  }
});

Deno.test("the template explains every smtp.starttls_policy value", () => {
  for (const policy of STARTTLS_POLICIES) {
    assert.match(CONFIG_TEMPLATE, new RegExp(`^#   ${policy}: \\S`, "m"), policy);
  }
});

Deno.test("the template ends with a newline", () => {
  assert.ok(CONFIG_TEMPLATE.endsWith("\n"));
  assert.ok(!CONFIG_TEMPLATE.endsWith("\n\n"));
});
