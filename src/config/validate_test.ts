import assert from "node:assert/strict";
import { parse } from "smol-toml";
import { Secret } from "../lib/secret.ts";
import type { Config, LoadedConfig } from "./types.ts";
import { type ConfigDeps, ConfigError, validateConfig } from "./validate.ts";
import { makeCa } from "../../tests/pki.ts";

// Secret values the tests look for in every message.
const SMTP_PASSWORD = "smtp-pa55word-7f3a";
const MAILGUN_KEY = "key-9c1d5e0b2a";

/** A real certificate: CA files are parsed. */
const CA_PEM = (await makeCa("Test SMTP CA")).cert;

const FILES: Readonly<Record<string, string>> = {
  "/secrets/smtp_password": `  ${SMTP_PASSWORD}\n`,
  "/secrets/mailgun_key": `${MAILGUN_KEY}\n`,
  "/secrets/empty": " \n\t\n",
  "/secrets/unreadable": "",
  "/etc/ssl/smtp_ca.pem": CA_PEM,
  "/etc/ssl/garbage.pem": "-----BEGIN CERTIFICATE-----\nMIIBgarbage\n-----END CERTIFICATE-----\n",
  "/etc/ssl/not_pem.txt": "hello",
};

interface FakeDeps extends ConfigDeps {
  readonly reads: string[];
}

function fakeDeps(files: Readonly<Record<string, string>> = FILES): FakeDeps {
  const reads: string[] = [];
  return {
    reads,
    readTextFile(path) {
      reads.push(path);
      if (path === "/secrets/unreadable") {
        throw new Deno.errors.PermissionDenied(
          `Permission denied (os error 13): readfile '${path}'`,
        );
      }
      const text = files[path];
      if (text === undefined) {
        throw new Deno.errors.NotFound(
          `No such file or directory (os error 2): readfile '${path}'`,
        );
      }
      return text;
    },
  };
}

// Sections of a valid config; each test replaces or drops the ones it is about.
const TELEPORT = `[teleport]
addr = "teleport.example.com:443"
identity = "/var/lib/teleport/plugins/email/identity"
`;
const SMTP = `[smtp]
host = "smtp.example.com"
username = "teleport"
password_file = "/secrets/smtp_password"
`;
const MAILGUN = `[mailgun]
domain = "mg.example.com"
private_key = "${MAILGUN_KEY}"
`;
const DELIVERY = `[delivery]
sender = "noreply@example.com"
`;
const ROLES = `[role_to_recipients]
"*" = ["security@example.com"]
`;

interface Sections {
  teleport?: string;
  mailer?: string;
  delivery?: string;
  roles?: string;
  extra?: string;
}

/** A config document from the default sections, with `sections` replacing some of them. */
function doc(sections: Sections = {}): string {
  const {
    teleport = TELEPORT,
    mailer = SMTP,
    delivery = DELIVERY,
    roles = ROLES,
    extra = "",
  } = sections;
  return [teleport, mailer, delivery, roles, extra].join("\n");
}

function accept(toml: string, deps: ConfigDeps = fakeDeps()): LoadedConfig {
  return validateConfig(parse(toml), deps);
}

function problemsOf(toml: string, deps: ConfigDeps = fakeDeps()): readonly string[] {
  try {
    validateConfig(parse(toml), deps);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}

/** Plain-object copy of the role map (it has a null prototype). */
function roles(config: Config): Record<string, readonly string[]> {
  return { ...config.roleToRecipients };
}

Deno.test("a minimal config gets every default", () => {
  const { config, warnings } = accept(doc());
  assert.deepEqual(warnings, []);
  const { mailer, ...rest } = config;
  assert.deepEqual({ ...rest, roleToRecipients: roles(config) }, {
    teleport: {
      addr: "teleport.example.com:443",
      credentials: { kind: "identity", identityFile: "/var/lib/teleport/plugins/email/identity" },
      refreshIdentity: false,
      refreshIdentityIntervalMs: 60_000,
    },
    delivery: {
      sender: "noreply@example.com",
      notifyRequester: false,
      maxRecipients: 100,
      catchUpWindowMs: 86_400_000,
    },
    roleToRecipients: { "*": ["security@example.com"] },
    log: { output: "stderr", severity: "info", format: "text" },
    status: {},
  });
  assert.equal(mailer.kind, "smtp");
  if (mailer.kind !== "smtp") return;
  assert.equal(mailer.host, "smtp.example.com");
  assert.equal(mailer.port, 587);
  assert.equal(mailer.username, "teleport");
  assert.equal(mailer.starttlsPolicy, "mandatory");
  assert.equal(mailer.ca, undefined);
  assert.ok(mailer.password instanceof Secret);
  assert.equal(mailer.password.reveal(), SMTP_PASSWORD, "the password file is trimmed");
});

Deno.test("[teleport]", async (t) => {
  const cases: Array<{
    name: string;
    teleport: string;
    expect: Partial<Config["teleport"]>;
    warnings?: string[];
  }> = [
    {
      name: "addr defaults to localhost:3025",
      teleport: `[teleport]\nidentity = "/id"`,
      expect: { addr: "localhost:3025" },
    },
    {
      name: "an empty addr counts as unset",
      teleport: `[teleport]\naddr = ""\nidentity = "/id"`,
      expect: { addr: "localhost:3025" },
    },
    {
      name: "auth_server is a deprecated alias of addr",
      teleport: `[teleport]\nauth_server = "auth.example.com:3025"\nidentity = "/id"`,
      expect: { addr: "auth.example.com:3025" },
      warnings: ["teleport.auth_server: deprecated, use teleport.addr instead"],
    },
    {
      name: "auth_server equal to addr only warns",
      teleport: `[teleport]\naddr = "a:3025"\nauth_server = "a:3025"\nidentity = "/id"`,
      expect: { addr: "a:3025" },
      warnings: ["teleport.auth_server: deprecated, use teleport.addr instead"],
    },
    {
      name: "addr wins over a different auth_server, as in the Go plugin",
      teleport: `[teleport]\naddr = "a:443"\nauth_server = "b:3025"\nidentity = "/id"`,
      expect: { addr: "a:443" },
      warnings: [
        "teleport.auth_server: deprecated, use teleport.addr instead",
        'teleport.auth_server: ignored: teleport.addr is set ("a:443" is used, not "b:3025")',
      ],
    },
    {
      name: "identity wins over the key/cert/CA triple, with a warning",
      teleport: `[teleport]
identity = "/id"
client_key = "/k"
client_crt = "/c"
root_cas = "/ca"`,
      expect: { credentials: { kind: "identity", identityFile: "/id" } },
      warnings: [
        "teleport.client_key, teleport.client_crt, teleport.root_cas: " +
        "ignored because teleport.identity is set",
      ],
    },
    {
      name: "the key/cert/CA triple without identity",
      teleport: `[teleport]\nclient_key = "/k"\nclient_crt = "/c"\nroot_cas = "/ca"`,
      expect: { credentials: { kind: "files", clientKey: "/k", clientCrt: "/c", rootCas: "/ca" } },
    },
    {
      name: "refresh_identity with identity, and a Go duration",
      teleport: `[teleport]
identity = "/id"
refresh_identity = true
refresh_identity_interval = "1h30m"`,
      expect: { refreshIdentity: true, refreshIdentityIntervalMs: 5_400_000 },
    },
    {
      name: "fractional and sub-second durations",
      teleport: `[teleport]\nidentity = "/id"\nrefresh_identity_interval = "1.5s"`,
      expect: { refreshIdentityIntervalMs: 1_500 },
    },
  ];
  for (const { name, teleport, expect, warnings = [] } of cases) {
    await t.step(name, () => {
      const loaded = accept(doc({ teleport }));
      assert.deepEqual(loaded.warnings, warnings);
      for (const [key, value] of Object.entries(expect)) {
        assert.deepEqual(loaded.config.teleport[key as keyof Config["teleport"]], value, key);
      }
    });
  }
});

Deno.test("[teleport] problems", async (t) => {
  const cases: Array<[name: string, teleport: string, problems: string[]]> = [
    ["no credentials at all", "", [
      "teleport.identity: is required " +
      "(or set all of teleport.client_key, teleport.client_crt and teleport.root_cas)",
    ]],
    ["a partial triple names the missing keys", `[teleport]\nclient_key = "/k"`, [
      "teleport.client_crt, teleport.root_cas: required together with teleport.client_key " +
      "(or use teleport.identity)",
    ]],
    ["a triple missing one key", `[teleport]\nclient_key = "/k"\nclient_crt = "/c"`, [
      "teleport.root_cas: required together with teleport.client_key and teleport.client_crt " +
      "(or use teleport.identity)",
    ]],
    [
      "refresh_identity needs identity",
      `[teleport]\nclient_key = "/k"\nclient_crt = "/c"\nroot_cas = "/ca"\nrefresh_identity = true`,
      ["teleport.refresh_identity: requires teleport.identity"],
    ],
    ...[
      ["https://teleport.example.com", "addr"],
      ["teleport.example.com", "addr"],
      ["teleport.example.com:99999", "addr"],
      ["::1:3025", "addr"],
      ["teleport.example.com:0", "auth_server"],
    ].map(([value, key]): [string, string, string[]] => [
      `teleport.${key} = ${JSON.stringify(value)}`,
      `[teleport]\n${key} = ${JSON.stringify(value)}\nidentity = "/id"`,
      [
        `teleport.${key}: must be host:port (an IPv6 host in brackets, a port from 1 to 65535), ` +
        `e.g. "teleport.example.com:443", got ${JSON.stringify(value)}`,
      ],
    ]),
    ["a bad duration", `[teleport]\nidentity = "/id"\nrefresh_identity_interval = "5x"`, [
      'teleport.refresh_identity_interval: invalid duration "5x": unknown unit "x" ' +
      "(use ns, us, ms, s, m or h)",
    ]],
    ["a duration in days", `[teleport]\nidentity = "/id"\nrefresh_identity_interval = "1d"`, [
      'teleport.refresh_identity_interval: invalid duration "1d": unknown unit "d" ' +
      "(use ns, us, ms, s, m or h)",
    ]],
    ["a negative duration", `[teleport]\nidentity = "/id"\nrefresh_identity_interval = "-1m"`, [
      'teleport.refresh_identity_interval: invalid duration "-1m": must not be negative',
    ]],
    ["a zero duration", `[teleport]\nidentity = "/id"\nrefresh_identity_interval = "0s"`, [
      'teleport.refresh_identity_interval: must be longer than zero, got "0s"',
    ]],
    ["a duration as a number", `[teleport]\nidentity = "/id"\nrefresh_identity_interval = 60`, [
      "teleport.refresh_identity_interval: must be at least 1s (re-reading the identity file more " +
      "often only burns CPU), got 60 (nanoseconds)",
    ]],
    ["refresh_identity as a string", `[teleport]\nidentity = "/id"\nrefresh_identity = "yes"`, [
      'teleport.refresh_identity: must be a boolean, got a string "yes"',
    ]],
    ["identity as a number", `[teleport]\nidentity = 1`, [
      'teleport.identity: must be a string, got an integer "1"',
    ]],
    ["teleport as a string", `teleport = "teleport.example.com:443"`, [
      'teleport: must be a table ([teleport]), got a string "teleport.example.com:443"',
    ]],
  ];
  for (const [name, teleport, problems] of cases) {
    await t.step(name, () => {
      // The teleport line must come first: a bare key after a table header belongs to it.
      const text = teleport.startsWith("teleport =")
        ? `${teleport}\n${doc({ teleport: "" })}`
        : doc({ teleport });
      assert.deepEqual(problemsOf(text), problems);
    });
  }
});

Deno.test("mailer choice", async (t) => {
  await t.step("both [smtp] and [mailgun]: SMTP wins, [mailgun] is named and not validated", () => {
    const { config, warnings } = accept(doc({ mailer: `${SMTP}\n[mailgun]\ndomain = ""` }));
    assert.equal(config.mailer.kind, "smtp");
    assert.deepEqual(warnings, [
      "mailgun: the [mailgun] section is ignored because [smtp] is also present; SMTP is used",
    ]);
  });
  await t.step("neither [smtp] nor [mailgun]", () => {
    assert.deepEqual(problemsOf(doc({ mailer: "" })), [
      "smtp: no mailer configured: add an [smtp] or a [mailgun] section",
    ]);
  });
  await t.step("[mailgun] alone, with the default API base", () => {
    const { config, warnings } = accept(doc({ mailer: MAILGUN }));
    assert.deepEqual(warnings, []);
    assert.equal(config.mailer.kind, "mailgun");
    if (config.mailer.kind !== "mailgun") return;
    assert.equal(config.mailer.domain, "mg.example.com");
    assert.equal(config.mailer.privateKey.reveal(), MAILGUN_KEY);
    assert.equal(config.mailer.apiBase, "https://api.mailgun.net");
  });
});

Deno.test("[mailgun]", async (t) => {
  const cases: Array<{ name: string; mailgun: string; apiBase?: string; warnings?: string[] }> = [
    {
      name: "private_key_file is read and trimmed",
      mailgun: `domain = "mg.example.com"\nprivate_key_file = "/secrets/mailgun_key"`,
    },
    {
      name: "private_key wins over private_key_file, which is not read",
      mailgun: `domain = "mg.example.com"
private_key = "${MAILGUN_KEY}"
private_key_file = "/secrets/missing"`,
      warnings: ["mailgun.private_key_file: ignored because mailgun.private_key is set"],
    },
    {
      name: "api_base for the EU region, trailing slash stripped",
      mailgun: `domain = "mg.example.com"
private_key = "${MAILGUN_KEY}"
api_base = "https://api.eu.mailgun.net/"`,
      apiBase: "https://api.eu.mailgun.net",
    },
    {
      name: "a plain http api_base (a test server)",
      mailgun: `domain = "mg.example.com"
private_key = "${MAILGUN_KEY}"
api_base = "http://127.0.0.1:8080"`,
      apiBase: "http://127.0.0.1:8080",
    },
  ];
  for (const { name, mailgun, apiBase = "https://api.mailgun.net", warnings = [] } of cases) {
    await t.step(name, () => {
      const deps = fakeDeps();
      const { config, warnings: got } = accept(doc({ mailer: `[mailgun]\n${mailgun}` }), deps);
      assert.deepEqual(got, warnings);
      assert.equal(config.mailer.kind, "mailgun");
      if (config.mailer.kind !== "mailgun") return;
      assert.equal(config.mailer.privateKey.reveal(), MAILGUN_KEY);
      assert.equal(config.mailer.apiBase, apiBase);
      assert.ok(!deps.reads.includes("/secrets/missing"));
    });
  }

  const problems: Array<[name: string, mailgun: string, problems: string[]]> = [
    ["nothing set", "", [
      "mailgun.domain: is required",
      "mailgun.private_key: is required (or set mailgun.private_key_file)",
    ]],
    ["an empty private_key_file", `domain = "d"\nprivate_key_file = "/secrets/empty"`, [
      'mailgun.private_key_file: file "/secrets/empty" is empty',
    ]],
    ["a missing private_key_file", `domain = "d"\nprivate_key_file = "/secrets/missing"`, [
      'mailgun.private_key_file: cannot read "/secrets/missing": not found',
    ]],
    ["a non-http api_base", `domain = "d"\nprivate_key = "k"\napi_base = "ftp://mg.example.com"`, [
      'mailgun.api_base: must be an http(s) URL, got "ftp://mg.example.com"',
    ]],
    [
      "an api_base that is no URL",
      `domain = "d"\nprivate_key = "k"\napi_base = "api.mailgun.net"`,
      [
        'mailgun.api_base: must be an http(s) URL, got "api.mailgun.net"',
      ],
    ],
  ];
  for (const [name, mailgun, expected] of problems) {
    await t.step(name, () => {
      assert.deepEqual(problemsOf(doc({ mailer: `[mailgun]\n${mailgun}` })), expected);
    });
  }
});

Deno.test("smtp.starttls_policy", async (t) => {
  const cases: Array<[written: string | undefined, policy: string]> = [
    ["mandatory", "mandatory"],
    ["opportunistic", "opportunistic"],
    ["disabled", "disabled"],
    ["", "mandatory"],
    [undefined, "mandatory"],
  ];
  for (const [written, policy] of cases) {
    await t.step(`${JSON.stringify(written)} → ${policy}`, () => {
      const line = written === undefined ? "" : `starttls_policy = "${written}"`;
      // With a username, "disabled" needs the opt-in (it would send the password in the clear).
      const optIn = written === "disabled" ? "\nallow_insecure_auth = true" : "";
      const { config } = accept(doc({ mailer: `${SMTP}${line}${optIn}` }));
      assert.equal(config.mailer.kind === "smtp" && config.mailer.starttlsPolicy, policy);
    });
  }
  for (const bad of ["tls", "Mandatory", "none"]) {
    await t.step(`${JSON.stringify(bad)} is rejected`, () => {
      assert.deepEqual(problemsOf(doc({ mailer: `${SMTP}starttls_policy = "${bad}"` })), [
        `smtp.starttls_policy: must be one of mandatory, opportunistic or disabled, got "${bad}"`,
      ]);
    });
  }
});

Deno.test("[smtp]", async (t) => {
  await t.step("port 465 and an inline password", () => {
    const { config } = accept(doc({
      mailer: `[smtp]\nhost = "h"\nport = 465\nusername = "u"\npassword = "${SMTP_PASSWORD}"`,
    }));
    assert.equal(config.mailer.kind, "smtp");
    if (config.mailer.kind !== "smtp") return;
    assert.equal(config.mailer.port, 465);
    assert.equal(config.mailer.password?.reveal(), SMTP_PASSWORD);
  });
  await t.step("port 0 is the default 587, as in the Go plugin", () => {
    const { config, warnings } = accept(doc({
      mailer: `[smtp]\nhost = "h"\nport = 0\nusername = "u"\npassword = "${SMTP_PASSWORD}"`,
    }));
    assert.equal(config.mailer.kind === "smtp" && config.mailer.port, 587);
    assert.deepEqual(warnings, []);
  });
  await t.step("no username: no authentication, password settings ignored with a warning", () => {
    const deps = fakeDeps();
    const { config, warnings } = accept(
      doc({ mailer: `[smtp]\nhost = "relay.internal"\npassword_file = "/secrets/missing"` }),
      deps,
    );
    assert.deepEqual(warnings, [
      "smtp.password_file: ignored because smtp.username is not set (no SMTP authentication)",
    ]);
    assert.equal(config.mailer.kind, "smtp");
    if (config.mailer.kind !== "smtp") return;
    assert.equal("username" in config.mailer, false);
    assert.equal("password" in config.mailer, false);
    assert.deepEqual(deps.reads, []);
  });
  await t.step("password wins over password_file, which is not read", () => {
    const deps = fakeDeps();
    const { warnings } = accept(
      doc({ mailer: `${SMTP}password = "${SMTP_PASSWORD}"` }),
      deps,
    );
    assert.deepEqual(warnings, ["smtp.password_file: ignored because smtp.password is set"]);
    assert.deepEqual(deps.reads, []);
  });
  await t.step("the Go template's empty password with a password_file uses the file", () => {
    const deps = fakeDeps();
    const { config, warnings } = accept(doc({ mailer: `${SMTP}password = ""` }), deps);
    assert.deepEqual(warnings, []);
    assert.equal(config.mailer.kind === "smtp" && config.mailer.password?.reveal(), SMTP_PASSWORD);
    assert.deepEqual(deps.reads, ["/secrets/smtp_password"], "secret files are read once");
  });
  await t.step("ca_file is read as PEM text", () => {
    const { config } = accept(doc({ mailer: `${SMTP}ca_file = "/etc/ssl/smtp_ca.pem"` }));
    assert.equal(
      config.mailer.kind === "smtp" && config.mailer.ca,
      FILES["/etc/ssl/smtp_ca.pem"],
    );
  });

  const base = `[smtp]\nhost = "h"\nusername = "u"\n`;
  const cases: Array<[name: string, smtp: string, problems: string[]]> = [
    ["no host", `[smtp]\nusername = "u"\npassword = "p"`, ["smtp.host: is required"]],
    ["a username without a password", `[smtp]\nhost = "h"\nusername = "u"`, [
      "smtp.password: is required when smtp.username is set (or set smtp.password_file)",
    ]],
    ["an empty password_file", `${base}password_file = "/secrets/empty"`, [
      'smtp.password_file: file "/secrets/empty" is empty',
    ]],
    ["a missing password_file", `${base}password_file = "/secrets/missing"`, [
      'smtp.password_file: cannot read "/secrets/missing": not found',
    ]],
    ["an unreadable password_file", `${base}password_file = "/secrets/unreadable"`, [
      'smtp.password_file: cannot read "/secrets/unreadable": permission denied',
    ]],
    ["port 70000", `${base}password = "p"\nport = 70000`, [
      'smtp.port: must be an integer from 1 to 65535 (0: the default, 587), got "70000"',
    ]],
    ["a fractional port", `${base}password = "p"\nport = 587.5`, [
      'smtp.port: must be an integer from 1 to 65535 (0: the default, 587), got "587.5"',
    ]],
    ["port as a string", `${base}password = "p"\nport = "587"`, [
      'smtp.port: must be an integer from 1 to 65535 (0: the default, 587), got a string "587"',
    ]],
    ["a missing ca_file", `${base}password = "p"\nca_file = "/etc/ssl/missing.pem"`, [
      'smtp.ca_file: cannot read "/etc/ssl/missing.pem": not found',
    ]],
    ["a ca_file without a certificate", `${base}password = "p"\nca_file = "/etc/ssl/not_pem.txt"`, [
      'smtp.ca_file: file "/etc/ssl/not_pem.txt" holds no PEM certificate',
    ]],
    [
      "a ca_file whose certificate does not parse",
      `${base}password = "p"\nca_file = "/etc/ssl/garbage.pem"`,
      [
        'smtp.ca_file: file "/etc/ssl/garbage.pem": certificate 1 is not a readable X.509 certificate',
      ],
    ],
    ["a password of the wrong type without a username", `[smtp]\nhost = "h"\npassword = 1234`, [
      "smtp.password: must be a string, got an integer",
    ]],
    ["host as a number", `[smtp]\nhost = 25`, ['smtp.host: must be a string, got an integer "25"']],
    ["smtp as an array", `smtp = ["smtp.example.com"]`, [
      "smtp: must be a table ([smtp]), got an array",
    ]],
  ];
  for (const [name, smtp, problems] of cases) {
    await t.step(name, () => {
      const text = smtp.startsWith("smtp =")
        ? `${smtp}\n${doc({ mailer: "" })}`
        : doc({ mailer: smtp });
      assert.deepEqual(problemsOf(text), problems);
    });
  }
});

Deno.test("delivery.sender", async (t) => {
  for (
    const sender of [
      "noreply@example.com",
      "Teleport <noreply@example.com>",
      '"Access, Teleport" <a@b.c>',
    ]
  ) {
    await t.step(`${JSON.stringify(sender)} is kept as written`, () => {
      const { config } = accept(
        doc({ delivery: `[delivery]\nsender = ${JSON.stringify(sender)}` }),
      );
      assert.equal(config.delivery.sender, sender);
    });
  }
  const cases: Array<[name: string, delivery: string, problems: string[]]> = [
    ["no [delivery] section", "", ["delivery.sender: is required"]],
    ["an empty sender", `[delivery]\nsender = ""`, ["delivery.sender: is required"]],
    ["not an address", `[delivery]\nsender = "noreply"`, [
      'delivery.sender: must be an email address, optionally with a display name, got "noreply"',
    ]],
    ["a header injection", `[delivery]\nsender = "a@b.c\\r\\nBcc: x@y.z"`, [
      "delivery.sender: must be an email address, optionally with a display name, " +
      'got "a@b.c\\r\\nBcc: x@y.z"',
    ]],
  ];
  for (const [name, delivery, problems] of cases) {
    await t.step(name, () => {
      assert.deepEqual(problemsOf(doc({ delivery })), problems);
    });
  }
});

Deno.test("recipients", async (t) => {
  await t.step('delivery.recipients moves to "*", with a deprecation warning', () => {
    const { config, warnings } = accept(doc({
      delivery: `${DELIVERY}recipients = ["a@example.com", "b@example.com"]`,
      roles: "",
    }));
    assert.deepEqual(roles(config), { "*": ["a@example.com", "b@example.com"] });
    assert.deepEqual(warnings, [
      'delivery.recipients: deprecated, use role_to_recipients."*" instead',
    ]);
  });
  await t.step("a role mapped to a string and one to an array", () => {
    const { config, warnings } = accept(doc({
      roles: `[role_to_recipients]
"*" = ["security@example.com", "admin@example.com"]
"dev" = "dev-manager@example.com"
"prod" = ["sre@example.com", "cto@example.com"]
"empty" = []`,
    }));
    assert.deepEqual(warnings, []);
    assert.deepEqual(roles(config), {
      "*": ["security@example.com", "admin@example.com"],
      dev: ["dev-manager@example.com"],
      prod: ["sre@example.com", "cto@example.com"],
      empty: [],
    });
  });
  await t.step('"*" as a string', () => {
    const { config } = accept(doc({ roles: `[role_to_recipients]\n"*" = "all@example.com"` }));
    assert.deepEqual(roles(config), { "*": ["all@example.com"] });
  });
  await t.step("role names that are Object.prototype members stay plain data", () => {
    const { config } = accept(doc({
      roles: `${ROLES}"constructor" = "c@example.com"\n"__proto__" = "p@example.com"`,
    }));
    assert.deepEqual(roles(config), {
      "*": ["security@example.com"],
      constructor: ["c@example.com"],
      ["__proto__"]: ["p@example.com"],
    });
    assert.equal(Object.getPrototypeOf(config.roleToRecipients), null);
  });

  const cases: Array<[name: string, sections: Sections, problems: string[]]> = [
    ['no "*"', { roles: `[role_to_recipients]\n"dev" = "dev@example.com"` }, [
      'role_to_recipients."*": is required: the recipients of requests for roles without their own entry',
    ]],
    ['an empty "*"', { roles: `[role_to_recipients]\n"*" = []` }, [
      'role_to_recipients."*": must list at least one email address',
    ]],
    ['an empty string for "*"', { roles: `[role_to_recipients]\n"*" = ""` }, [
      'role_to_recipients."*": must be a plain email address (no display name or spaces), got ""',
    ]],
    ['an address with a "/"', { roles: `[role_to_recipients]\n"*" = "ops/oncall@example.com"` }, [
      'role_to_recipients."*": must be a plain email address (no "/": plugin data keeps a ' +
      'thread as <address>/<time>/<id>, as the Go plugin reads it), got "ops/oncall@example.com"',
    ]],
    ["neither recipients nor a mapping", { roles: "" }, [
      'role_to_recipients: is required: map "*" to the recipients of requests for roles without their own entry',
    ]],
    ["an empty mapping", { roles: "[role_to_recipients]" }, [
      'role_to_recipients: is required: map "*" to the recipients of requests for roles without their own entry',
    ]],
    ["both recipients and a mapping", { delivery: `${DELIVERY}recipients = ["a@example.com"]` }, [
      "delivery.recipients: cannot be used together with [role_to_recipients]; " +
      'move the addresses to role_to_recipients."*"',
    ]],
    ["a display name in a role's array", {
      roles: `${ROLES}"dev" = ["dev@example.com", "Dev Team <team@example.com>"]`,
    }, [
      'role_to_recipients."dev"[1]: must be a plain email address (no display name or spaces), ' +
      'got "Dev Team <team@example.com>"',
    ]],
    ["surrounding spaces in a role's string", { roles: `${ROLES}"dev" = " dev@example.com"` }, [
      'role_to_recipients."dev": must be a plain email address (no display name or spaces), ' +
      'got " dev@example.com"',
    ]],
    ["an invisible character in a role's address, shown escaped", {
      roles: `${ROLES}"dev" = ["sec\u00a0urity@example.com", "ops@example.com\u200b"]`,
    }, [
      'role_to_recipients."dev"[0]: must be a plain email address (no display name or spaces), ' +
      'got "sec\\u00a0urity@example.com"',
      'role_to_recipients."dev"[1]: must be a plain email address (no display name or spaces), ' +
      'got "ops@example.com\\u200b"',
    ]],
    ["a number in a role's array", { roles: `[role_to_recipients]\n"*" = ["a@example.com", 42]` }, [
      'role_to_recipients."*"[1]: must be an email address, got an integer "42"',
    ]],
    ["a table as a role's value", { roles: `${ROLES}dev.team = "t@example.com"` }, [
      'role_to_recipients."dev": must be an email address or an array of email addresses, got a table',
    ]],
    ["a bad address in delivery.recipients", {
      delivery: `${DELIVERY}recipients = ["ok@example.com", "not-an-address"]`,
      roles: "",
    }, [
      'delivery.recipients[1]: must be a plain email address (no display name or spaces), got "not-an-address"',
    ]],
    ["delivery.recipients as a string", {
      delivery: `${DELIVERY}recipients = "a@example.com"`,
      roles: "",
    }, ['delivery.recipients: must be an array of email addresses, got a string "a@example.com"']],
  ];
  for (const [name, sections, problems] of cases) {
    await t.step(name, () => {
      assert.deepEqual(problemsOf(doc(sections)), problems);
    });
  }
});

Deno.test("[log]", async (t) => {
  const cases: Array<[log: string, expected: Config["log"]]> = [
    ["", { output: "stderr", severity: "info", format: "text" }],
    [`severity = "INFO"`, { output: "stderr", severity: "info", format: "text" }],
    [`severity = "Debug"`, { output: "stderr", severity: "debug", format: "text" }],
    [`severity = "WARN"`, { output: "stderr", severity: "warning", format: "text" }],
    [`severity = "warning"`, { output: "stderr", severity: "warning", format: "text" }],
    [`severity = "ERROR"`, { output: "stderr", severity: "error", format: "text" }],
    [`severity = "err"`, { output: "stderr", severity: "error", format: "text" }],
    [`severity = "TRACE"`, { output: "stderr", severity: "debug", format: "text" }],
    [`output = "syslog"`, { output: "stderr", severity: "info", format: "text" }],
    [`output = "stdout"`, { output: "stdout", severity: "info", format: "text" }],
    [`output = "1"`, { output: "stdout", severity: "info", format: "text" }],
    [`output = "2"`, { output: "stderr", severity: "info", format: "text" }],
    [`output = "/var/log/teleport-email.log"`, {
      output: "/var/log/teleport-email.log",
      severity: "info",
      format: "text",
    }],
    [`format = "json"`, { output: "stderr", severity: "info", format: "json" }],
    [`format = "JSON"`, { output: "stderr", severity: "info", format: "json" }],
  ];
  for (const [log, expected] of cases) {
    await t.step(log || "(empty section)", () => {
      assert.deepEqual(accept(doc({ extra: `[log]\n${log}` })).config.log, expected);
    });
  }
  await t.step("syslog: stderr, with a warning (never a file named syslog)", () => {
    assert.deepEqual(accept(doc({ extra: `[log]\noutput = "syslog"` })).warnings, [
      'log.output: "syslog" is written to stderr (under systemd the journal collects it)',
    ]);
  });
  await t.step("bad severity and format", () => {
    assert.deepEqual(problemsOf(doc({ extra: `[log]\nseverity = "verbose"\nformat = "xml"` })), [
      'log.severity: must be one of DEBUG, INFO, WARN or ERROR (or TRACE, read as DEBUG), got "verbose"',
      'log.format: must be text or json, got "xml"',
    ]);
  });
});

Deno.test("unknown keys and sections are warned about, not fatal", () => {
  const { config, warnings } = accept(
    `debug = true\n${doc({ mailer: `${SMTP}hots = "typo"`, extra: `[slack]\ntoken = "x"` })}`,
  );
  assert.equal(config.mailer.kind, "smtp");
  assert.deepEqual(warnings, [
    "debug: unknown key, ignored",
    "slack: unknown section, ignored",
    "smtp.hots: unknown key, ignored (did you mean smtp.host?)",
  ]);
});

Deno.test("an unknown key close to a known one is named as the likely typo", async (t) => {
  const cases: Array<[toml: string, warning: string]> = [
    [
      `${SMTP}pasword_file = "/x"`,
      "smtp.pasword_file: unknown key, ignored (did you mean smtp.password_file?)",
    ],
    [`${SMTP}pOrt = 25`, "smtp.pOrt: unknown key, ignored (did you mean smtp.port?)"],
    [`${SMTP}starttls = "disabled"`, "smtp.starttls: unknown key, ignored"],
    [`${SMTP}ca = "/x"`, "smtp.ca: unknown key, ignored"],
    [`${SMTP}[lgo]\nformat = "json"`, "lgo: unknown section, ignored (did you mean [log]?)"],
    [
      `${SMTP}[reminder]\nafter = "1h"`,
      "reminder: unknown section, ignored (did you mean [reminders]?)",
    ],
  ];
  for (const [mailer, warning] of cases) {
    await t.step(warning, () => {
      assert.deepEqual(accept(doc({ mailer })).warnings, [warning]);
    });
  }
});

Deno.test("the spellings the Go plugin's TOML decoder reads are read as ours", async (t) => {
  await t.step("upper-cased sections and keys, field names where Go has no tag", () => {
    const { config, warnings } = accept(`[TELEPORT]
ADDR = "teleport.example.com:443"
IDENTITY = "/id"
[SMTP]
Host = "smtp.example.com"
PORT = 2525
Username = "u"
PASSWORD = "${SMTP_PASSWORD}"
STARTTLS_POLICY = "opportunistic"
[DELIVERY]
Sender = "teleport@example.com"
[role_to_recipients]
"*" = ["security@example.com"]
[LOG]
SEVERITY = "debug"`);
    assert.deepEqual(warnings, []);
    assert.equal(config.teleport.addr, "teleport.example.com:443");
    assert.equal(config.mailer.kind === "smtp" && config.mailer.host, "smtp.example.com");
    assert.equal(config.mailer.kind === "smtp" && config.mailer.port, 2525);
    assert.equal(config.log.severity, "debug");
  });
  await t.step("a key in two spellings: the one Go reads wins, the other is warned about", () => {
    const cases: Array<[extra: string, host: string, ignored: string, read: string]> = [
      [`HOST = "other.example.com"`, "smtp.example.com", "smtp.HOST", "smtp.host"],
      // For a field without a tag go-toml tries its name first.
      [`Host = "field.example.com"`, "field.example.com", "smtp.host", "smtp.Host"],
    ];
    for (const [extra, host, ignored, read] of cases) {
      const { config, warnings } = accept(doc({ mailer: `${SMTP}${extra}` }));
      assert.equal(config.mailer.kind === "smtp" && config.mailer.host, host);
      assert.deepEqual(warnings, [
        `${ignored}: ignored: also set as ${read}, which is read (as the Go plugin does)`,
      ]);
    }
  });
  await t.step("other spellings stay unknown keys", () => {
    assert.deepEqual(accept(doc({ mailer: `${SMTP}Ca_File = "/x"` })).warnings, [
      "smtp.Ca_File: unknown key, ignored (did you mean smtp.ca_file?)",
    ]);
  });
});

Deno.test("a failed validation carries the warnings that explain it", () => {
  const mailer = SMTP.replace('host = "smtp.example.com"', 'hots = "smtp.example.com"');
  assert.throws(() => accept(`${doc({ mailer })}\n[log]\nseverty = "debug"`), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.deepEqual(error.problems, ["smtp.host: is required"]);
    assert.deepEqual(error.warnings, [
      "smtp.hots: unknown key, ignored (did you mean smtp.host?)",
      "log.severty: unknown key, ignored (did you mean log.severity?)",
    ]);
    return true;
  });
});

Deno.test("several problems are reported together, in file order", () => {
  let error: unknown;
  try {
    validateConfig(
      parse(`[teleport]
refresh_identity_interval = "soon"
[smtp]
port = 70000
starttls_policy = "always"
[delivery]
sender = "nobody"
[role_to_recipients]
"dev" = "Dev <dev@example.com>"
[log]
severity = "loud"`),
      fakeDeps(),
    );
  } catch (caught) {
    error = caught;
  }
  assert.ok(error instanceof ConfigError);
  const problems = [
    "teleport.identity: is required " +
    "(or set all of teleport.client_key, teleport.client_crt and teleport.root_cas)",
    'teleport.refresh_identity_interval: invalid duration "soon": ' +
    "expected a number followed by a unit such as 1m or 30s",
    "smtp.host: is required",
    'smtp.port: must be an integer from 1 to 65535 (0: the default, 587), got "70000"',
    'smtp.starttls_policy: must be one of mandatory, opportunistic or disabled, got "always"',
    'delivery.sender: must be an email address, optionally with a display name, got "nobody"',
    'role_to_recipients."dev": must be a plain email address (no display name or spaces), ' +
    'got "Dev <dev@example.com>"',
    'role_to_recipients."*": is required: the recipients of requests for roles without their own entry',
    'log.severity: must be one of DEBUG, INFO, WARN or ERROR (or TRACE, read as DEBUG), got "loud"',
  ];
  assert.deepEqual(error.problems, problems);
  assert.equal(
    error.message,
    `Invalid configuration (9 problems):\n${problems.map((p) => `  - ${p}`).join("\n")}`,
  );
  assert.equal(error.name, "ConfigError");
});

Deno.test("a single problem makes a one-line message", () => {
  assert.throws(
    () => accept(doc({ delivery: "" })),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.message, "Invalid configuration: delivery.sender: is required");
      return true;
    },
  );
});

Deno.test("secrets never appear in problems, warnings or the config's text forms", async (t) => {
  const secrets = [SMTP_PASSWORD, MAILGUN_KEY];
  const failing: Array<[name: string, toml: string]> = [
    [
      "password of the wrong type elsewhere",
      doc({
        mailer: `[smtp]\nhost = "h"\nusername = "u"\npassword = ["${SMTP_PASSWORD}"]`,
      }),
    ],
    [
      "password set but other problems",
      doc({
        mailer: `[smtp]\nusername = "u"\npassword = "${SMTP_PASSWORD}"\nport = -1`,
        delivery: "",
      }),
    ],
    [
      "mailgun key with a bad domain",
      doc({
        mailer: `[mailgun]\nprivate_key = "${MAILGUN_KEY}"\napi_base = "nope"`,
      }),
    ],
    [
      "mailgun key of the wrong type",
      doc({ mailer: `[mailgun]\ndomain = "d"\nprivate_key = 123456` }),
    ],
    ["secret in an ignored [mailgun]", doc({ mailer: `${SMTP}port = -1\n${MAILGUN}` })],
  ];
  for (const [name, toml] of failing) {
    await t.step(name, () => {
      assert.throws(() => accept(toml), (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        for (const secret of [...secrets, "123456"]) {
          assert.ok(!error.message.includes(secret), `${secret} leaked: ${error.message}`);
        }
        return true;
      });
    });
  }
  await t.step("warnings and text forms of a valid config", () => {
    const loaded = accept(doc({
      mailer: `${SMTP}password = "${SMTP_PASSWORD}"\n${MAILGUN}private_key_file = "/x"`,
    }));
    assert.ok(loaded.warnings.length > 0);
    const texts = [
      loaded.warnings.join("\n"),
      JSON.stringify(loaded.config),
      Deno.inspect(loaded.config, { depth: 10 }),
      String(loaded.config.mailer.kind === "smtp" && loaded.config.mailer.password),
    ];
    for (const text of texts) {
      for (const secret of secrets) assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    }
  });
});

Deno.test("validateConfig rejects a document that is not a table", () => {
  assert.throws(
    () => validateConfig(["not", "a", "table"], fakeDeps()),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.problems[0] === "The document must be a TOML table, got an array",
  );
});

/** The smallest valid config, as parsed TOML, for the tests of one optional key. */
const MINIMAL_TABLE = {
  teleport: { identity: "/id" },
  smtp: { host: "smtp.example.com" },
  delivery: { sender: "noreply@example.com" },
  role_to_recipients: { "*": "ops@example.com" },
};
/** Reads for {@linkcode MINIMAL_TABLE}, which names no file whose contents matter. */
const ANY_FILE: ConfigDeps = { readTextFile: () => "x" };

Deno.test("status.listen_addr: optional host:port", async (t) => {
  const base = MINIMAL_TABLE;
  const deps = ANY_FILE;
  await t.step("absent: no listener", () => {
    assert.deepEqual(validateConfig(base, deps).config.status, {});
  });
  for (const addr of ["127.0.0.1:9465", "[::1]:9465", "localhost:0"]) {
    await t.step(`accepts ${addr}`, () => {
      const { config } = validateConfig({ ...base, status: { listen_addr: addr } }, deps);
      assert.equal(config.status.listenAddr, addr);
    });
  }
  for (const addr of ["9465", "127.0.0.1", "host:99999", "a b:1"]) {
    await t.step(`refuses ${addr}`, () => {
      assert.throws(
        () => validateConfig({ ...base, status: { listen_addr: addr } }, deps),
        /status\.listen_addr: must be host:port/,
      );
    });
  }
});

Deno.test("delivery.notify_requester and [reminders]", async (t) => {
  const base = MINIMAL_TABLE;
  const deps = ANY_FILE;
  await t.step("off by default", () => {
    const { config } = validateConfig(base, deps);
    assert.equal(config.delivery.notifyRequester, false);
    assert.equal(config.reminders, undefined);
  });
  await t.step("notify_requester = true", () => {
    const { config } = validateConfig({
      ...base,
      delivery: { ...base.delivery, notify_requester: true },
    }, deps);
    assert.equal(config.delivery.notifyRequester, true);
  });
  await t.step("notify_requester must be a boolean", () => {
    assert.throws(
      () =>
        validateConfig({ ...base, delivery: { ...base.delivery, notify_requester: "yes" } }, deps),
      /delivery\.notify_requester: must be a boolean/,
    );
  });
  await t.step("reminders: every defaults to after, max to 3", () => {
    const { config } = validateConfig({ ...base, reminders: { after: "1h" } }, deps);
    assert.deepEqual(config.reminders, { afterMs: 3_600_000, everyMs: 3_600_000, max: 3 });
  });
  await t.step("reminders: all set", () => {
    const { config } = validateConfig(
      { ...base, reminders: { after: "30m", every: "4h", max: 5 } },
      deps,
    );
    assert.deepEqual(config.reminders, { afterMs: 1_800_000, everyMs: 14_400_000, max: 5 });
  });
  for (
    const [reminders, message] of [
      [{ every: "1h" }, /reminders\.after: is required/],
      [{ after: "soon" }, /reminders\.after: .*"soon"/],
      [{ after: "0s" }, /reminders\.after: must be longer than zero/],
      [{ after: "1h", max: 0 }, /reminders\.max: must be an integer from 1 to 100/],
      [{ after: "1h", every: 5 }, /reminders\.every: must be a duration string/],
    ] as const
  ) {
    await t.step(`reminders ${JSON.stringify(reminders)} is refused`, () => {
      assert.throws(() => validateConfig({ ...base, reminders }, deps), message);
    });
  }
});

// --- hardening (issue 12) ------------------------------------------------------

Deno.test("teleport.refresh_identity_interval: at least 1s, at most Go's longest duration", async (t) => {
  const key = "teleport.refresh_identity_interval";
  const accepted: Array<[written: string, ms: number]> = [
    ["1s", 1_000],
    ["1.5s", 1_500],
    // 597h and more overflowed setInterval's 2^31-1 ms and spun; the clock chains them now.
    ["597h", 597 * 3_600_000],
    ["2562047h", 2_562_047 * 3_600_000],
  ];
  for (const [written, ms] of accepted) {
    await t.step(`${written} is accepted`, () => {
      const { config } = accept(
        doc({ teleport: `[teleport]\nidentity = "/id"\nrefresh_identity_interval = "${written}"` }),
      );
      assert.equal(config.teleport.refreshIdentityIntervalMs, ms);
    });
  }
  await t.step("an integer is nanoseconds, as Go's TOML decoder reads a time.Duration", () => {
    const interval = (value: string) =>
      doc({ teleport: `[teleport]\nidentity = "/id"\nrefresh_identity_interval = ${value}` });
    assert.equal(accept(interval("60000000000")).config.teleport.refreshIdentityIntervalMs, 60_000);
    assert.deepEqual(problemsOf(interval("1000")), [
      `${key}: must be at least 1s (re-reading the identity file more often only burns CPU), ` +
      "got 1000 (nanoseconds)",
    ]);
    assert.deepEqual(problemsOf(interval("1.5")), [
      `${key}: must be a duration string such as "1m" (or an integer of nanoseconds), got a float "1.5"`,
    ]);
  });
  const refused: Array<[written: string, problem: string]> = [
    [
      "1ns",
      `${key}: must be at least 1s (re-reading the identity file more often only burns CPU), got "1ns"`,
    ],
    [
      "1ms",
      `${key}: must be at least 1s (re-reading the identity file more often only burns CPU), got "1ms"`,
    ],
    [
      "999ms",
      `${key}: must be at least 1s (re-reading the identity file more often only burns CPU), got "999ms"`,
    ],
    [
      "2562048h",
      `${key}: invalid duration "2562048h": longer than Go's longest duration, ` +
      "2562047h47m16.854775807s",
    ],
  ];
  for (const [written, problem] of refused) {
    await t.step(`${written} is refused`, () => {
      assert.deepEqual(
        problemsOf(
          doc({
            teleport: `[teleport]\nidentity = "/id"\nrefresh_identity_interval = "${written}"`,
          }),
        ),
        [problem],
      );
    });
  }
});

Deno.test("credentials never go out unencrypted without an opt-in that says so", async (t) => {
  const smtp = (extra: string, port = 587) =>
    doc({
      mailer: `[smtp]\nhost = "smtp.example.com"\nport = ${port}\nusername = "u"\n` +
        `password = "${SMTP_PASSWORD}"\n${extra}`,
    });
  const mailgun = (extra: string) =>
    doc({
      mailer: `[mailgun]\ndomain = "mg.example.com"\nprivate_key = "${MAILGUN_KEY}"\n${extra}`,
    });
  const SMTP_OPT_IN_WARNING = "smtp.allow_insecure_auth: is true: the SMTP password is sent " +
    "unencrypted whenever the server offers no STARTTLS or refuses it; anyone on the path can read it";
  const cases: Array<{
    name: string;
    toml: string;
    problems?: string[];
    warnings?: string[];
    check?: (config: Config) => void;
  }> = [
    {
      name: "smtp: disabled STARTTLS with a username is refused",
      toml: smtp(`starttls_policy = "disabled"`),
      problems: [
        'smtp.starttls_policy: "disabled" with smtp.username would send the password unencrypted; ' +
        'use "mandatory" (or port 465), or set smtp.allow_insecure_auth = true to accept that',
      ],
    },
    {
      name: "smtp: disabled STARTTLS with a username and the opt-in: accepted, loudly",
      toml: smtp(`starttls_policy = "disabled"\nallow_insecure_auth = true`),
      warnings: [SMTP_OPT_IN_WARNING],
      check: (config) =>
        assert.equal(config.mailer.kind === "smtp" && config.mailer.allowInsecureAuth, true),
    },
    {
      name: "smtp: opportunistic with a username: accepted; AUTH waits for TLS at run time",
      toml: smtp(`starttls_policy = "opportunistic"`),
      check: (config) =>
        assert.equal(config.mailer.kind === "smtp" && config.mailer.allowInsecureAuth, false),
    },
    {
      name: "smtp: opportunistic with the opt-in warns",
      toml: smtp(`starttls_policy = "opportunistic"\nallow_insecure_auth = true`),
      warnings: [SMTP_OPT_IN_WARNING],
    },
    {
      name: "smtp: disabled STARTTLS on port 465 (implicit TLS) is fine",
      toml: smtp(`starttls_policy = "disabled"`, 465),
    },
    {
      name: "smtp: disabled STARTTLS without a username sends no credentials",
      toml: doc({ mailer: `[smtp]\nhost = "relay.internal"\nstarttls_policy = "disabled"` }),
    },
    {
      name: "smtp: the opt-in with mandatory STARTTLS has no effect",
      toml: smtp(`allow_insecure_auth = true`),
      warnings: [
        'smtp.allow_insecure_auth: has no effect with starttls_policy "mandatory" ' +
        "(the password only travels over TLS)",
      ],
    },
    {
      name: "smtp: the opt-in without a username has no effect",
      toml: doc({ mailer: `[smtp]\nhost = "relay.internal"\nallow_insecure_auth = true` }),
      warnings: ["smtp.allow_insecure_auth: has no effect without smtp.username"],
    },
    {
      name: "smtp: the opt-in must be a boolean",
      toml: smtp(`allow_insecure_auth = "yes"`),
      problems: ['smtp.allow_insecure_auth: must be a boolean, got a string "yes"'],
    },
    {
      name: "mailgun: an http api_base is refused",
      toml: mailgun(`api_base = "http://mailgun-proxy.internal:8080"`),
      problems: [
        'mailgun.api_base: "http://mailgun-proxy.internal:8080" would send the API key ' +
        "unencrypted; use https://, or set mailgun.allow_insecure_http = true to accept that",
      ],
    },
    {
      name: "mailgun: an http api_base with the opt-in: accepted, loudly",
      toml: mailgun(`api_base = "http://mailgun-proxy.internal:8080"\nallow_insecure_http = true`),
      warnings: [
        "mailgun.allow_insecure_http: is true: the Mailgun API key is sent unencrypted to " +
        '"http://mailgun-proxy.internal:8080"; anyone on the path can read it',
      ],
      check: (config) =>
        assert.equal(config.mailer.kind === "mailgun" && config.mailer.allowInsecureHttp, true),
    },
    {
      name: "mailgun: http on a loopback address never leaves the host",
      toml: mailgun(`api_base = "http://[::1]:8080"`),
    },
    {
      name: "mailgun: the opt-in with https has no effect",
      toml: mailgun(`allow_insecure_http = true`),
      warnings: [
        'mailgun.allow_insecure_http: has no effect: mailgun.api_base is "https://api.mailgun.net"',
      ],
    },
    {
      name: "mailgun: the opt-in must be a boolean",
      toml: mailgun(`allow_insecure_http = 1`),
      problems: ['mailgun.allow_insecure_http: must be a boolean, got an integer "1"'],
    },
    {
      name: "mailgun: user info in api_base is refused and never printed",
      toml: mailgun(`api_base = "https://api:${MAILGUN_KEY}@api.mailgun.net"`),
      problems: [
        'mailgun.api_base: must not carry a user name or password, got "https://***@api.mailgun.net"; ' +
        "the key belongs in mailgun.private_key or mailgun.private_key_file",
      ],
    },
    ...[
      ["https:/", "https:/"],
      ["https:", "https:"],
      ["https:\\\\", "https:\\\\\\\\"],
    ].map(([scheme, shown]) => ({
      name: `mailgun: user info after "${scheme}" in api_base is refused and never printed`,
      toml: mailgun(`api_base = '${scheme}api:${MAILGUN_KEY}@api.mailgun.net'`),
      problems: [
        `mailgun.api_base: must not carry a user name or password, got "${shown}***@api.mailgun.net"; ` +
        "the key belongs in mailgun.private_key or mailgun.private_key_file",
      ],
    })),
    {
      name: "mailgun: an api_base that is no URL but carries a key is not printed with it",
      toml: mailgun(`api_base = "htps//api:${MAILGUN_KEY}@x"`),
      problems: ['mailgun.api_base: must be an http(s) URL, got "***@x"'],
    },
    {
      name: "mailgun: user info in an api_base that is not an http(s) URL is not printed either",
      toml: mailgun(`api_base = "htps://api:${MAILGUN_KEY}@api.mailgun.net"`),
      problems: ['mailgun.api_base: must be an http(s) URL, got "htps://***@api.mailgun.net"'],
    },
  ];
  for (const { name, toml, problems, warnings = [], check } of cases) {
    await t.step(name, () => {
      if (problems !== undefined) {
        assert.deepEqual(problemsOf(toml), problems);
        return;
      }
      const loaded = accept(toml);
      assert.deepEqual(loaded.warnings, warnings);
      check?.(loaded.config);
    });
  }
});

Deno.test("secret and CA files are read with a size limit each", async (t) => {
  const limits: Array<[name: string, mailer: string, path: string, limit: number]> = [
    ["smtp.password_file", SMTP, "/secrets/smtp_password", 64 * 1024],
    [
      "mailgun.private_key_file",
      `[mailgun]\ndomain = "mg.example.com"\nprivate_key_file = "/secrets/mailgun_key"`,
      "/secrets/mailgun_key",
      64 * 1024,
    ],
    [
      "smtp.ca_file",
      `${SMTP}ca_file = "/etc/ssl/smtp_ca.pem"`,
      "/etc/ssl/smtp_ca.pem",
      4 * 1024 * 1024,
    ],
  ];
  for (const [name, mailer, path, limit] of limits) {
    await t.step(`${name}: ${limit} bytes`, () => {
      const seen: Array<[string, number | undefined]> = [];
      const inner = fakeDeps();
      accept(doc({ mailer }), {
        readTextFile(p, max) {
          seen.push([p, max]);
          return inner.readTextFile(p, max);
        },
      });
      assert.deepEqual(seen.find(([p]) => p === path), [path, limit]);
    });
  }
  await t.step("the reader's refusal names the key and the limit", () => {
    const refusing: ConfigDeps = {
      readTextFile(_path, max) {
        throw new RangeError(`is larger than the ${max! / 1024} KiB limit`);
      },
    };
    assert.deepEqual(problemsOf(doc(), refusing), [
      'smtp.password_file: cannot read "/secrets/smtp_password": is larger than the 64 KiB limit',
    ]);
  });
});

Deno.test("delivery.max_recipients and delivery.catch_up_window", async (t) => {
  const base = MINIMAL_TABLE;
  const deps = ANY_FILE;
  const withDelivery = (extra: Record<string, unknown>) =>
    validateConfig({ ...base, delivery: { ...base.delivery, ...extra } }, deps);
  await t.step("set", () => {
    const { config } = withDelivery({ max_recipients: 20, catch_up_window: "2h" });
    assert.equal(config.delivery.maxRecipients, 20);
    assert.equal(config.delivery.catchUpWindowMs, 7_200_000);
    assert.equal(withDelivery({ catch_up_window: "0" }).config.delivery.catchUpWindowMs, 0);
  });
  const bad: [Record<string, unknown>, RegExp][] = [
    [
      { max_recipients: 0 },
      /delivery\.max_recipients: must be an integer from 1 to 1000, got an integer "0"/,
    ],
    [{ max_recipients: 5000 }, /delivery\.max_recipients: must be an integer from 1 to 1000/],
    [{ max_recipients: "10" }, /delivery\.max_recipients: must be an integer/],
    [{ catch_up_window: "soon" }, /delivery\.catch_up_window: /],
    [{ catch_up_window: 24 }, /delivery\.catch_up_window: must be a duration string/],
  ];
  for (const [extra, message] of bad) {
    await t.step(`refused: ${JSON.stringify(extra)}`, () => {
      assert.throws(() => withDelivery(extra), message);
    });
  }
});

Deno.test("teleport.proxy_ca_file: CAs for a load balancer in front of the Proxy", async (t) => {
  const base = MINIMAL_TABLE;
  await t.step("read and kept", () => {
    const pem = CA_PEM;
    const { config } = validateConfig(
      { ...base, teleport: { ...base.teleport, proxy_ca_file: "/lb.pem" } },
      { readTextFile: () => pem },
    );
    assert.equal(config.teleport.proxyCa, pem);
  });
  await t.step("a file without a certificate is named", () => {
    assert.throws(
      () =>
        validateConfig(
          { ...base, teleport: { ...base.teleport, proxy_ca_file: "/lb.pem" } },
          { ...ANY_FILE, readTextFile: () => "not a certificate" },
        ),
      /teleport\.proxy_ca_file: file "\/lb\.pem" holds no PEM certificate/,
    );
  });
});
