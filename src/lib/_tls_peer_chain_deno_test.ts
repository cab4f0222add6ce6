import assert from "node:assert/strict";
import tls from "node:tls";
import { issueCert, makeCa } from "../../tests/pki.ts";
import { startSmtpServer } from "../../tests/smtp_server.ts";
import { createSmtpMailer } from "../mail/smtp.ts";
import { systemTrustedCas } from "./system_cas.ts";
import { caOption, shallowPeerCertificatesServed } from "./_tls_peer_chain_deno.ts";

const pki = (async () => {
  const ca = await makeCa("peer chain test CA", { keyType: "ec" });
  const other = await makeCa("some other CA", { keyType: "ec" });
  const server = await issueCert(ca, {
    commonName: "localhost",
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    usage: "server",
    keyType: "ec",
  });
  return { ca, other, server };
})();

/** A TLS server that closes each connection once it is up. */
async function withTlsServer(run: (port: number) => Promise<void>) {
  const { server: cert } = await pki;
  const server = tls.createServer({ cert: cert.cert, key: cert.key }, (s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await run((server.address() as { port: number }).port);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Connects; resolves with the detailed peer certificate, rejects with the TLS error. */
function connect(
  port: number,
  options: tls.ConnectionOptions,
): Promise<tls.DetailedPeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...options });
    socket.once("secureConnect", () => {
      const cert = socket.getPeerCertificate(true);
      socket.destroy();
      resolve(cert);
    });
    socket.once("error", (e) => {
      socket.destroy();
      reject(e);
    });
  });
}

Deno.test("opted-in sockets skip the chain Deno completes from the ca list; others keep it", async () => {
  const { ca } = await pki;
  const cas = [...systemTrustedCas(), ca.cert];
  await withTlsServer(async (port) => {
    const before = shallowPeerCertificatesServed();
    const plain = await connect(port, { servername: "localhost", ...caOption(cas) });
    assert.equal(plain.subject.CN, "localhost");
    assert.equal(plain.issuerCertificate, undefined);
    // The handshake's own call (for checkServerIdentity) and ours: if this stays put, the
    // runtime no longer keeps `_tlsOptions` and the workaround does nothing.
    assert.ok(shallowPeerCertificatesServed() >= before + 2);

    // What the workaround avoids: the runtime completing the chain from the ca list (the server
    // sent only its own certificate). If this fails, Deno no longer does that: delete the
    // workaround (see its header).
    const detailed = await connect(port, { servername: "localhost", ca: cas });
    assert.equal(detailed.issuerCertificate?.subject.CN, "peer chain test CA");
  });
});

Deno.test("opted-in sockets are verified as before: wrong CA and wrong name are refused", async () => {
  const { ca, other } = await pki;
  await withTlsServer(async (port) => {
    await assert.rejects(
      connect(port, { servername: "localhost", ...caOption([...systemTrustedCas(), other.cert]) }),
      (e: Error & { code?: string }) => {
        assert.match(String(e.code ?? e.message), /UNABLE_TO_VERIFY|unable to verify|CERT/i);
        return true;
      },
    );
    await assert.rejects(
      connect(port, { servername: "mail.example.com", ...caOption([ca.cert]) }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "ERR_TLS_CERT_ALTNAME_INVALID");
        return true;
      },
    );
  });
});

Deno.test("the SMTP mailer's STARTTLS sockets are opted in (through Nodemailer's tls options)", async () => {
  const { ca, server: cert } = await pki;
  const server = await startSmtpServer({ tls: cert });
  const mailer = createSmtpMailer(
    {
      kind: "smtp",
      host: "localhost",
      port: server.port,
      starttlsPolicy: "mandatory",
      ca: ca.cert,
    },
    "Teleport <noreply@example.com>",
  );
  try {
    const before = shallowPeerCertificatesServed();
    await mailer.send({ to: "alice@example.com", subject: "s", text: "t" });
    assert.ok(shallowPeerCertificatesServed() > before);
    assert.equal(server.messages.length, 1);
  } finally {
    await mailer.close();
    await server.close();
  }
});
