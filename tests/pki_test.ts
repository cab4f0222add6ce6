import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import * as tls from "node:tls";
import type { AddressInfo } from "node:net";
import {
  identityFileText,
  issueCert,
  type KeyType,
  makeCa,
  type Pem,
  TELEPORT_SERVER_NAME,
  writeIdentityFile,
} from "./pki.ts";

/** Upper bound for one loopback handshake. */
const HANDSHAKE_TIMEOUT_MS = 5_000;

for (const keyType of ["rsa", "ec"] as const) {
  Deno.test(`pki: ${keyType} CA and leaf carry the X.509 v3 extensions`, async () => {
    const ca = await makeCa("teleport.example.com", { keyType });
    const caX = new X509Certificate(ca.cert);
    assert.equal(caX.ca, true);
    assert.match(caX.subject, /CN=teleport\.example\.com/);
    assert.ok(caX.checkIssued(caX));

    const notAfter = new Date(Date.UTC(2031, 0, 2, 3, 4, 5));
    const leaf = await issueCert(ca, {
      commonName: "bob",
      organization: "editor",
      dnsNames: [TELEPORT_SERVER_NAME, "localhost"],
      ipAddresses: ["127.0.0.1"],
      usage: "both",
      serial: "1a2b3c",
      notAfter,
      keyType,
    });
    const x = new X509Certificate(leaf.cert);
    assert.equal(x.ca, false);
    assert.match(x.subject, /CN=bob/);
    assert.match(x.subject, /O=editor/);
    assert.equal(x.issuer, caX.subject);
    assert.equal(x.serialNumber.toLowerCase().replace(/^0+/, ""), "1a2b3c");
    assert.equal(new Date(x.validTo).getTime(), notAfter.getTime());
    assert.match(x.subjectAltName ?? "", /DNS:teleport\.cluster\.local/);
    assert.match(x.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
    assert.ok(x.checkIssued(caX));
    assert.ok(x.verify(caX.publicKey));
    assert.equal(x.publicKey.asymmetricKeyType, keyType);
    assert.match(leaf.key, keyType === "rsa" ? /BEGIN RSA PRIVATE KEY/ : /BEGIN EC PRIVATE KEY/);
  });
}

for (
  const [caType, leafType] of [["rsa", "rsa"], ["ec", "ec"], ["rsa", "ec"]] as [
    KeyType,
    KeyType,
  ][]
) {
  Deno.test(`pki: node:tls accepts ${caType} CA / ${leafType} leaves for mutual TLS`, async () => {
    const ca = await makeCa("teleport.example.com", { keyType: caType });
    const server = await issueCert(ca, {
      commonName: "auth",
      dnsNames: [TELEPORT_SERVER_NAME],
      usage: "server",
      keyType: leafType,
    });
    const client = await issueCert(ca, {
      commonName: "email-plugin",
      usage: "client",
      keyType: leafType,
    });
    const result = await handshake({
      serverPem: server,
      serverCa: ca,
      clientPem: client,
      clientCa: ca,
    });
    assert.deepEqual(result, { serverSawClient: "email-plugin", clientAuthorized: true });
  });
}

Deno.test("pki: a client certificate from another CA is refused", async () => {
  const ca = await makeCa("teleport.example.com");
  const other = await makeCa("evil.example.com");
  const server = await issueCert(ca, {
    commonName: "auth",
    dnsNames: [TELEPORT_SERVER_NAME],
    usage: "server",
  });
  const client = await issueCert(other, { commonName: "mallory", usage: "client" });
  await assert.rejects(
    handshake({ serverPem: server, serverCa: ca, clientPem: client, clientCa: ca }),
    // The server drops the handshake; depending on timing the client sees a reset or the alert.
    /ECONNRESET|socket hang up|certificate|unknown ?ca/i,
  );
});

Deno.test("pki: a server certificate without the Teleport name is refused", async () => {
  const ca = await makeCa("teleport.example.com");
  const server = await issueCert(ca, { commonName: "auth", dnsNames: ["x.test"], usage: "server" });
  const client = await issueCert(ca, { commonName: "p", usage: "client" });
  await assert.rejects(
    handshake({ serverPem: server, serverCa: ca, clientPem: client, clientCa: ca }),
    { code: "ERR_TLS_CERT_ALTNAME_INVALID" },
  );
});

Deno.test("pki: identity file text has Teleport's layout and is written 0600", async () => {
  const ca = await makeCa("teleport.example.com");
  const ca2 = await makeCa("teleport.example.com", { keyType: "ec" });
  const user = await issueCert(ca, { commonName: "email", usage: "client" });
  const text = identityFileText({
    key: user.key,
    cert: user.cert,
    cas: [ca.cert, ca2.cert],
    clusterName: "teleport.example.com",
  });
  const lines = text.split("\n");
  assert.equal(lines[0], "-----BEGIN RSA PRIVATE KEY-----");
  const sshLine = lines.findIndex((l) => l.startsWith("ssh-rsa-cert-v01@openssh.com "));
  const certLine = lines.indexOf("-----BEGIN CERTIFICATE-----");
  const caLine = lines.findIndex((l) => l.startsWith("@cert-authority "));
  assert.deepEqual([sshLine > 0, certLine > sshLine, caLine > certLine], [true, true, true]);
  assert.match(
    lines[caLine] ?? "",
    /^@cert-authority teleport\.example\.com,\*\.teleport\.example\.com ssh-rsa AAAA\S+ type=host$/,
  );
  assert.equal(text.split("-----BEGIN CERTIFICATE-----").length - 1, 3);
  assert.ok(text.endsWith("-----END CERTIFICATE-----\n"));

  const custom = identityFileText({
    key: user.key,
    cert: user.cert,
    cas: [ca.cert],
    clusterName: "c",
    sshCert: "ssh-ed25519-cert-v01@openssh.com AAAA",
  });
  assert.match(custom, /\nssh-ed25519-cert-v01@openssh\.com AAAA\n/);

  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/identity`;
    await Deno.writeTextFile(path, "old", { mode: 0o644 });
    await writeIdentityFile(path, {
      key: user.key,
      cert: user.cert,
      cas: [ca.cert],
      clusterName: "c",
    });
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.match(await Deno.readTextFile(path), /^-----BEGIN RSA PRIVATE KEY-----/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** One mutual-TLS handshake on 127.0.0.1; resolves with what each side verified. */
async function handshake(o: {
  serverPem: Pem;
  serverCa: Pem;
  clientPem: Pem;
  clientCa: Pem;
}): Promise<{ serverSawClient: string; clientAuthorized: boolean }> {
  const serverSaw = Promise.withResolvers<string>();
  const server = tls.createServer({
    key: o.serverPem.key,
    cert: o.serverPem.cert,
    ca: [o.clientCa.cert],
    requestCert: true,
    rejectUnauthorized: true,
  }, (socket) => {
    const peer = socket.getPeerCertificate();
    serverSaw.resolve(socket.authorized ? String(peer?.subject?.CN ?? "") : "unauthorized");
    socket.end("ok");
  });
  server.on("tlsClientError", (err) => serverSaw.reject(err));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  let socket: tls.TLSSocket | undefined;
  const timer = setTimeout(
    () => serverSaw.reject(new Error("Handshake timed out")),
    HANDSHAKE_TIMEOUT_MS,
  );
  try {
    const clientAuthorized = await new Promise<boolean>((resolve, reject) => {
      socket = tls.connect({
        host: "127.0.0.1",
        port,
        servername: TELEPORT_SERVER_NAME,
        key: o.clientPem.key,
        cert: o.clientPem.cert,
        ca: [o.serverCa.cert],
        rejectUnauthorized: true,
      });
      socket.on("secureConnect", () => resolve(socket?.authorized ?? false));
      socket.on("error", reject);
      // The server may refuse the client only after the client's handshake is done.
      serverSaw.promise.catch(reject);
    });
    const serverSawClient = await serverSaw.promise;
    return { serverSawClient, clientAuthorized };
  } finally {
    clearTimeout(timer);
    serverSaw.promise.catch(() => {});
    socket?.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
