import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import {
  checkExpiry,
  type Identity,
  type IdentityFs,
  knownHostsClusterName,
  loadCredentialFiles,
  loadIdentityFile,
  parseIdentityFile,
} from "./identity.ts";
import {
  identityFileText,
  issueCert,
  makeCa,
  type Pem,
  writeIdentityFile,
} from "../../tests/pki.ts";

const CLUSTER = "teleport.example.com";
const PATH = "/var/lib/teleport/plugins/email/identity";

interface Fixtures {
  ca: Pem;
  ca2: Pem;
  user: Pem;
  ecUser: Pem;
  other: Pem;
}

let fixtures: Promise<Fixtures> | undefined;

/** One PKI per test process: key generation is the slow part. */
function pki(): Promise<Fixtures> {
  fixtures ??= (async () => {
    const ca = await makeCa(CLUSTER);
    const ca2 = await makeCa(CLUSTER, { keyType: "ec" });
    const user = await issueCert(ca, {
      commonName: "bot-email",
      organization: "editor",
      usage: "client",
      serial: "1a2b3c4d",
      notAfter: new Date("2031-01-02T03:04:05Z"),
    });
    const ecUser = await issueCert(ca2, {
      commonName: "bot-email",
      usage: "client",
      keyType: "ec",
    });
    const other = await issueCert(ca, { commonName: "someone-else", usage: "client" });
    return { ca, ca2, user, ecUser, other };
  })();
  return fixtures;
}

function fakeFs(
  files: Record<string, string>,
  modes: Record<string, number | null> = {},
): IdentityFs {
  const notFound = (path: string) =>
    Object.assign(new Error(`No such file: ${path}`), { name: "NotFound" });
  return {
    readTextFile: (path) => {
      const text = files[path];
      return text === undefined ? Promise.reject(notFound(path)) : Promise.resolve(text);
    },
    stat: (path) => Promise.resolve({ mode: path in modes ? modes[path]! : 0o100600 }),
  };
}

Deno.test("identity: parses what Teleport writes, in any layout", async (t) => {
  const { ca, ca2, user, ecUser } = await pki();
  const standard = identityFileText({
    key: user.key,
    cert: user.cert,
    cas: [ca.cert],
    clusterName: CLUSTER,
  });
  const pkcs8 = createPrivateKey(user.key).export({ type: "pkcs8", format: "pem" }).toString();
  const cases: { name: string; text: string; cert: Pem; cas: string[]; cluster?: string }[] = [
    {
      name: "RSA key (PKCS#1), tctl order",
      text: standard,
      cert: user,
      cas: [ca.cert],
      cluster: CLUSTER,
    },
    {
      name: "EC key (SEC 1)",
      text: identityFileText({
        key: ecUser.key,
        cert: ecUser.cert,
        cas: [ca2.cert],
        clusterName: CLUSTER,
      }),
      cert: ecUser,
      cas: [ca2.cert],
      cluster: CLUSTER,
    },
    {
      name: "PKCS#8 key",
      text: identityFileText({ key: pkcs8, cert: user.cert, cas: [ca.cert], clusterName: CLUSTER }),
      cert: user,
      cas: [ca.cert],
      cluster: CLUSTER,
    },
    {
      name: "CRLF line ends",
      text: standard.replaceAll("\n", "\r\n"),
      cert: user,
      cas: [ca.cert],
      cluster: CLUSTER,
    },
    {
      name: "CAs first, key last, no SSH lines (the cluster from the issuer's O)",
      text: [ca2.cert, ca.cert, user.cert, user.key].join(""),
      cert: user,
      cas: [ca2.cert, ca.cert],
      cluster: CLUSTER,
    },
    {
      name: "several CAs keep their order",
      text: identityFileText({
        key: user.key,
        cert: user.cert,
        cas: [ca.cert, ca2.cert],
        clusterName: CLUSTER,
      }),
      cert: user,
      cas: [ca.cert, ca2.cert],
      cluster: CLUSTER,
    },
    {
      name: "wildcard host listed first",
      text: standard.replace(
        `@cert-authority ${CLUSTER},*.${CLUSTER} `,
        `@cert-authority *.${CLUSTER},${CLUSTER} `,
      ),
      cert: user,
      cas: [ca.cert],
      cluster: CLUSTER,
    },
    {
      name: "blank lines and trailing spaces",
      text: "\n\n" + standard.replaceAll("-----\n", "-----  \n").replaceAll("\n@", "\n\n@"),
      cert: user,
      cas: [ca.cert],
      cluster: CLUSTER,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const id = parseIdentityFile(c.text, PATH);
      assert.equal(id.cert, c.cert.cert);
      assert.equal(id.key.replace(/\n$/, ""), createKeyPemOf(c).replace(/\n$/, ""));
      assert.deepEqual(id.cas, c.cas);
      assert.equal(id.clusterName, c.cluster);
      assert.equal("clusterName" in id, c.cluster !== undefined);
      assert.equal(id.source, PATH);
      assert.equal(id.format, "identity");
    });
  }
  const id = parseIdentityFile(standard, PATH);
  assert.equal(id.subject, "CN=bot-email, O=editor");
  assert.equal(id.serial.toLowerCase(), "1a2b3c4d");
  assert.deepEqual(id.notAfter, new Date("2031-01-02T03:04:05Z"));
  assert.ok(id.notBefore.getTime() < Date.now());
});

/** The key PEM a case expects back: its text exactly as it appears in the file. */
function createKeyPemOf(c: { text: string }): string {
  const m = /-----BEGIN ([A-Z ]*PRIVATE KEY)-----[\s\S]*?-----END \1-----/.exec(
    c.text.replaceAll("\r\n", "\n"),
  );
  assert.ok(m);
  return m[0].split("\n").map((l) => l.trim()).filter((l) => l).join("\n");
}

Deno.test("identity: broken files fail with a message naming the file", async (t) => {
  const { ca, user, other } = await pki();
  const good = identityFileText({
    key: user.key,
    cert: user.cert,
    cas: [ca.cert],
    clusterName: CLUSTER,
  });
  const cases: [string, string, RegExp][] = [
    ["empty", "", /is empty/],
    ["whitespace only", " \n\n", /is empty/],
    ["not PEM at all", '{"kind": "identity"}', /has no PEM blocks/],
    ["binary garbage", "\x00\x01\x02garbage", /has no PEM blocks/],
    ["no private key", user.cert + ca.cert, /has no private key/],
    ["no certificate", user.key, /has no certificate$/],
    [
      "only a CA, which does not match the key",
      user.key + ca.cert,
      /no certificate matching its private key/,
    ],
    [
      "client certificate of another key",
      identityFileText({ key: user.key, cert: other.cert, cas: [ca.cert], clusterName: CLUSTER }),
      /no certificate matching its private key/,
    ],
    ["no CA", user.key + user.cert, /has no CA certificate/],
    ["truncated in the last block", good.slice(0, good.length - 200), /unterminated PEM block/],
    [
      "truncated in the middle block",
      good.replace(/-----END CERTIFICATE-----\n@cert-authority/, "\n@cert-authority"),
      /unterminated PEM block/,
    ],
    [
      // A block-by-block regular expression scanned to the end for each: ~50 s at 64,000 lines,
      // the main thread blocked (no signal, no email) at every start, refresh and SIGHUP.
      "200,000 BEGIN lines and no END (answered at once)",
      "-----BEGIN A-----\n".repeat(200_000),
      /unterminated PEM block "A"/,
    ],
    [
      "mismatched END label",
      good.replace("-----END RSA PRIVATE KEY-----", "-----END EC PRIVATE KEY-----"),
      /PEM block "RSA PRIVATE KEY" ended by "EC PRIVATE KEY"/,
    ],
    [
      "corrupt certificate body",
      good.replace(/(-----BEGIN CERTIFICATE-----\n)[A-Za-z0-9+/]{20}/, "$1AAAAAAAAAAAAAAAAAAAA"),
      /unreadable certificate \(PEM block 2\)/,
    ],
    [
      "corrupt key body",
      good.replace(
        /(-----BEGIN RSA PRIVATE KEY-----\n)[A-Za-z0-9+/]{20}/,
        "$1AAAAAAAAAAAAAAAAAAAA",
      ),
      /unreadable private key "RSA PRIVATE KEY"/,
    ],
    [
      "a PKCS#8 encrypted key",
      good.replace(
        user.key,
        createPrivateKey(user.key)
          .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" })
          .toString(),
      ),
      /has an encrypted private key, and the plugin has no passphrase for it; write it again/,
    ],
    [
      // OpenSSL's own answer to this one is "interrupted or cancelled".
      "a key with OpenSSL's legacy PEM encryption (Proc-Type: 4,ENCRYPTED)",
      good.replace(
        user.key,
        createPrivateKey(user.key)
          .export({ type: "pkcs1", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" })
          .toString(),
      ),
      /has an encrypted private key, and the plugin has no passphrase for it; write it again/,
    ],
    ["two keys", other.key + good, /has 2 private keys/],
  ];
  for (const [name, text, message] of cases) {
    await t.step(name, () => {
      assert.throws(() => parseIdentityFile(text, PATH), (err: Error) => {
        assert.ok(err.message.startsWith(`Identity file "${PATH}" `), err.message);
        assert.match(err.message, message);
        assert.doesNotMatch(err.message, /\.$/);
        return true;
      });
    });
  }
});

Deno.test("identity: loadIdentityFile reads through deps and warns about loose modes", async (t) => {
  const { ca, user } = await pki();
  const text = identityFileText({
    key: user.key,
    cert: user.cert,
    cas: [ca.cert],
    clusterName: CLUSTER,
  });
  const cases: [string, number | null, RegExp | undefined][] = [
    ["0600", 0o100600, undefined],
    ["0400", 0o100400, undefined],
    [
      "0640",
      0o100640,
      /accessible by group or others \(mode 0640\); restrict it with "chmod 600 \/var/,
    ],
    ["0604", 0o100604, /mode 0604/],
    ["no Unix modes", null, undefined],
  ];
  for (const [name, mode, warning] of cases) {
    await t.step(name, async () => {
      const loaded = await loadIdentityFile(PATH, fakeFs({ [PATH]: text }, { [PATH]: mode }));
      assert.equal(loaded.identity.clusterName, CLUSTER);
      if (warning === undefined) assert.deepEqual(loaded.warnings, []);
      else {
        assert.equal(loaded.warnings.length, 1);
        assert.match(loaded.warnings[0]!, warning);
      }
    });
  }
  await t.step("missing file", async () => {
    await assert.rejects(
      loadIdentityFile("/nope/identity", fakeFs({})),
      { message: 'Cannot read identity file "/nope/identity" (teleport.identity): no such file' },
    );
  });
  await t.step("stat failure is not fatal", async () => {
    const fs = fakeFs({ [PATH]: text });
    fs.stat = () => Promise.reject(new Error("boom"));
    assert.deepEqual((await loadIdentityFile(PATH, fs)).warnings, []);
  });
});

Deno.test("identity: real files written by tests/pki.ts", async () => {
  const { ca, user } = await pki();
  const dir = await Deno.makeTempDir();
  const fs: IdentityFs = { readTextFile: Deno.readTextFile, stat: Deno.stat };
  try {
    const path = `${dir}/identity`;
    await writeIdentityFile(path, {
      key: user.key,
      cert: user.cert,
      cas: [ca.cert],
      clusterName: CLUSTER,
    });
    const loaded = await loadIdentityFile(path, fs);
    assert.equal(loaded.identity.cert, user.cert);
    assert.deepEqual(loaded.warnings, []);
    if (Deno.build.os !== "windows") {
      await Deno.chmod(path, 0o644);
      assert.equal((await loadIdentityFile(path, fs)).warnings.length, 1);
    }
    await assert.rejects(
      loadIdentityFile(dir, fs),
      /Cannot read identity file ".*" \(teleport\.identity\): /,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("identity: loadCredentialFiles (key, certificate and CA files)", async (t) => {
  const { ca, ca2, user, other } = await pki();
  const files = {
    "/c/email.key": user.key,
    "/c/email.crt": user.cert,
    "/c/email.cas": ca.cert + ca2.cert,
  };
  await t.step("happy path", async () => {
    const { identity, warnings } = await loadCredentialFiles(
      "/c/email.key",
      "/c/email.crt",
      "/c/email.cas",
      fakeFs(files),
    );
    assert.equal(identity.key, user.key);
    assert.equal(identity.cert, user.cert);
    assert.deepEqual(identity.cas, [ca.cert, ca2.cert]);
    assert.equal("clusterName" in identity, false);
    assert.equal(identity.source, "/c/email.crt");
    assert.equal(identity.format, "tls");
    assert.deepEqual(warnings, []);
  });
  const cases: [string, Record<string, string>, Record<string, number>, RegExp][] = [
    [
      "key of another certificate",
      { "/c/email.key": other.key },
      {},
      /^Certificate file "\/c\/email\.crt" does not match the private key in "\/c\/email\.key"$/,
    ],
    [
      "no key in key file",
      { "/c/email.key": user.cert },
      {},
      /^Key file "\/c\/email\.key" has no private key$/,
    ],
    [
      "no certificate in certificate file",
      { "/c/email.crt": user.key },
      {},
      /^Certificate file "\/c\/email\.crt" has no certificate$/,
    ],
    ["empty CA file", { "/c/email.cas": "\n" }, {}, /^CA file "\/c\/email\.cas" is empty$/],
    [
      "CA file with only a key",
      { "/c/email.cas": user.key },
      {},
      /^CA file "\/c\/email\.cas" has no certificate$/,
    ],
  ];
  for (const [name, overrides, modes, message] of cases) {
    await t.step(name, async () => {
      await assert.rejects(
        loadCredentialFiles(
          "/c/email.key",
          "/c/email.crt",
          "/c/email.cas",
          fakeFs({ ...files, ...overrides }, modes),
        ),
        (err: Error) => (assert.match(err.message, message), true),
      );
    });
  }
  await t.step("missing CA file", async () => {
    const { "/c/email.cas": _, ...rest } = files;
    await assert.rejects(
      loadCredentialFiles("/c/email.key", "/c/email.crt", "/c/email.cas", fakeFs(rest)),
      { message: 'Cannot read CA file "/c/email.cas" (teleport.root_cas): no such file' },
    );
  });
  await t.step("world-readable key file", async () => {
    const { warnings } = await loadCredentialFiles(
      "/c/email.key",
      "/c/email.crt",
      "/c/email.cas",
      fakeFs(files, { "/c/email.key": 0o100644 }),
    );
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /^Key file "\/c\/email\.key" holds a private key .* \(mode 0644\)/);
  });
});

Deno.test("identity: checkExpiry", async (t) => {
  const { user } = await pki();
  const base = parseIdentityFile(
    identityFileText({
      key: user.key,
      cert: user.cert,
      cas: [(await pki()).ca.cert],
      clusterName: CLUSTER,
    }),
    PATH,
  );
  const notBefore = new Date("2030-01-01T00:00:00Z");
  const notAfter = new Date("2030-01-01T01:00:00Z");
  const id: Identity = { ...base, notBefore, notAfter };
  const minute = 60_000;
  const at = (ms: number) => new Date(notAfter.getTime() + ms);

  await t.step("valid for longer than the interval: fine", () => {
    assert.deepEqual(checkExpiry(id, at(-30 * minute), minute), { ok: true });
  });
  await t.step("expires within the interval: warning", () => {
    const r = checkExpiry(id, at(-45_000), minute);
    assert.ok(r.ok && r.warning !== undefined);
    assert.equal(
      r.warning,
      `TLS certificate "CN=bot-email, O=editor" (serial ${id.serial}) from "${PATH}" expires at ` +
        `2030-01-01T01:00:00.000Z (in 45s), within the refresh interval of 1m; renew it with ` +
        `"tctl auth sign --user=bot-email --format=file --out=${PATH}" or let Machine ID (tbot) renew it`,
    );
  });
  await t.step("expires exactly at the interval: warning", () => {
    const r = checkExpiry(id, at(-minute), minute);
    assert.ok(r.ok && r.warning !== undefined);
  });
  await t.step("expired: error saying which, when and how to renew", () => {
    const r = checkExpiry(id, at(1), minute);
    assert.ok(!r.ok);
    assert.equal(
      r.error.message,
      `TLS certificate "CN=bot-email, O=editor" (serial ${id.serial}) from "${PATH}" expired at ` +
        `2030-01-01T01:00:00.000Z; renew it with ` +
        `"tctl auth sign --user=bot-email --format=file --out=${PATH}" or let Machine ID (tbot) renew it`,
    );
  });
  await t.step("at the expiry instant: expired", () => {
    assert.equal(checkExpiry(id, notAfter, minute).ok, false);
  });
  await t.step("not valid yet: error", () => {
    const r = checkExpiry(id, new Date(notBefore.getTime() - 1), minute);
    assert.ok(!r.ok);
    assert.match(
      r.error.message,
      /is not valid until 2030-01-01T00:00:00\.000Z; check the system clock$/,
    );
  });
  await t.step("key/cert/CA files: renew as TLS files", () => {
    const r = checkExpiry({ ...id, format: "tls", source: "/c/email.crt" }, at(1), minute);
    assert.ok(!r.ok);
    assert.match(
      r.error.message,
      /renew it with "tctl auth sign --user=bot-email --format=tls --out=\/c\/email"$/,
    );
  });
  await t.step("a real certificate that has already expired", async () => {
    const ca = await makeCa(CLUSTER);
    const old = await issueCert(ca, {
      commonName: "old-bot",
      usage: "client",
      notBefore: new Date("2020-01-01T00:00:00Z"),
      notAfter: new Date("2020-01-02T00:00:00Z"),
    });
    const expired = parseIdentityFile(
      identityFileText({ key: old.key, cert: old.cert, cas: [ca.cert], clusterName: CLUSTER }),
      PATH,
    );
    const r = checkExpiry(expired, new Date(), minute);
    assert.ok(!r.ok);
    assert.match(
      r.error.message,
      /"CN=old-bot" .* expired at 2020-01-02T00:00:00\.000Z; .*--user=old-bot /,
    );
  });
  await t.step("long durations read as hours and minutes", () => {
    const longLived = { ...id, notBefore: new Date("2029-01-01T00:00:00Z") };
    const r = checkExpiry(longLived, at(-(90 * minute + 5000)), 2 * 60 * minute);
    assert.ok(r.ok);
    assert.match(r.warning ?? "", /\(in 1h30m5s\), within the refresh interval of 2h;/);
  });
});

Deno.test("identity: the cluster name is the issuer's organization, whatever the known-hosts line lists first", async (t) => {
  const cluster = "prod.teleport.example.com";
  const proxyHost = "teleport.example.com";
  const hostCa = await makeCa(cluster);
  const otherCa = await makeCa("root.example.com");
  const user = await issueCert(hostCa, { commonName: "access-plugin", usage: "client" });
  const file = (cas: string[], hosts: string) =>
    identityFileText({ key: user.key, cert: user.cert, cas, clusterName: cluster })
      .replace(`@cert-authority ${cluster},*.${cluster} `, `@cert-authority ${hosts} `);
  const shapes: [string, string][] = [
    ["tctl auth sign on the Auth host", file([hostCa.cert], `${cluster},*.${cluster}`)],
    [
      "signed through a proxy (its host first)",
      file([hostCa.cert], `${proxyHost},${cluster},*.${cluster}`),
    ],
    [
      "tbot with several CAs (another cluster's first)",
      file([otherCa.cert, hostCa.cert], `${proxyHost},${cluster},*.${cluster}`),
    ],
  ];
  for (const [name, text] of shapes) {
    await t.step(name, () => assert.equal(parseIdentityFile(text, PATH).clusterName, cluster));
  }
});

Deno.test("identity: without an O in the certificates, the known-hosts host with a *. twin", () => {
  assert.equal(
    knownHostsClusterName(
      "@cert-authority proxy.example.com,prod.example.com,*.prod.example.com AAAA type=host\n",
    ),
    "prod.example.com",
  );
  assert.equal(
    knownHostsClusterName("@cert-authority solo.example.com AAAA type=host\n"),
    "solo.example.com",
  );
  assert.equal(knownHostsClusterName("no lines"), undefined);
});
