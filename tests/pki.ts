/**
 * Test PKI: a CA, server and client certificates (X.509 v3 with the
 * extensions real TLS stacks check) and Teleport-style identity files.
 *
 * Keys come from `node:crypto` (fast, RSA or ECDSA P-256); node-forge only
 * lays out the ASN.1. Signing also goes through `node:crypto`, so a CA may be
 * an EC key, which forge alone cannot sign with. Test-only: never imported by
 * the product.
 */

import forge from "node-forge";
import { Buffer } from "node:buffer";
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from "node:crypto";

/** How long a CA is valid when `notAfter` is not given. */
const DEFAULT_CA_LIFETIME_MS = 365 * 24 * 3600_000;
/** How long a leaf certificate is valid when `notAfter` is not given. */
const DEFAULT_LEAF_LIFETIME_MS = 24 * 3600_000;
/** Backdating of `notBefore`, so clock skew between test peers cannot matter. */
const DEFAULT_BACKDATE_MS = 60_000;

/** Teleport's API server name, in the SAN of the Auth server's certificate. */
export const TELEPORT_SERVER_NAME = "teleport.cluster.local";

/** A certificate and its private key, both PEM text. */
export interface Pem {
  cert: string;
  key: string;
}

/** Key algorithm: RSA-2048 (`RSA PRIVATE KEY`) or ECDSA P-256 (`EC PRIVATE KEY`). */
export type KeyType = "rsa" | "ec";

export interface CaOptions {
  notBefore?: Date;
  notAfter?: Date;
  /** Default `"rsa"`. */
  keyType?: KeyType;
}

export interface IssueOptions {
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: "server" | "client" | "both";
  notBefore?: Date;
  notAfter?: Date;
  /** Hex, without leading `0x`; random when absent. */
  serial?: string;
  organization?: string;
  /** Default `"rsa"`. */
  keyType?: KeyType;
}

export interface IdentityFileParts {
  key: string;
  cert: string;
  cas: string[];
  clusterName: string;
  /** The SSH certificate line; a syntactically plausible one when absent. */
  sshCert?: string;
}

const OID_RSA_SHA256 = "1.2.840.113549.1.1.11";
const OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2";

const { asn1, pki } = forge;

/** Present in node-forge, missing from its type definitions. */
interface ForgeTbs {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
}

/** Makes a self-signed CA certificate (basicConstraints CA:true, keyUsage keyCertSign). */
export async function makeCa(commonName: string, opts: CaOptions = {}): Promise<Pem> {
  const keyType = opts.keyType ?? "rsa";
  const { privateKey, publicKey } = await newKeyPair(keyType);
  const spki = spkiAsn1(publicKey);
  const ski = subjectKeyId(spki);
  const now = Date.now();
  const cert = pki.createCertificate();
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = opts.notBefore ?? new Date(now - DEFAULT_BACKDATE_MS);
  cert.validity.notAfter = opts.notAfter ?? new Date(now + DEFAULT_CA_LIFETIME_MS);
  const subject = [{ name: "commonName", value: commonName }, {
    name: "organizationName",
    value: commonName,
  }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: "subjectKeyIdentifier", value: octets(ski) },
  ]);
  const certPem = signTbs(cert, { spki, signer: privateKey, signerType: keyType });
  return { cert: certPem, key: exportKey(privateKey, keyType) };
}

/** Issues a leaf certificate signed by `ca`, with SAN and extKeyUsage for `usage`. */
export async function issueCert(ca: Pem, opts: IssueOptions): Promise<Pem> {
  const keyType = opts.keyType ?? "rsa";
  const { privateKey, publicKey } = await newKeyPair(keyType);
  const spki = spkiAsn1(publicKey);
  const caKey = createPrivateKey(ca.key);
  const caType: KeyType = caKey.asymmetricKeyType === "ec" ? "ec" : "rsa";
  const caTbs = tbsOf(ca.cert);
  const caSubject = caTbs.value[5] as forge.asn1.Asn1;
  const caSki = subjectKeyId(caTbs.value[6] as forge.asn1.Asn1);

  const now = Date.now();
  const cert = pki.createCertificate();
  cert.serialNumber = opts.serial ?? randomSerial();
  cert.validity.notBefore = opts.notBefore ?? new Date(now - DEFAULT_BACKDATE_MS);
  cert.validity.notAfter = opts.notAfter ?? new Date(now + DEFAULT_LEAF_LIFETIME_MS);
  const subject: forge.pki.CertificateField[] = [{ name: "commonName", value: opts.commonName }];
  if (opts.organization !== undefined) {
    subject.push({ name: "organizationName", value: opts.organization });
  }
  cert.setSubject(subject);
  const altNames = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(opts.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
  ];
  const extensions: unknown[] = [
    { name: "basicConstraints", cA: false, critical: true },
    {
      name: "keyUsage",
      digitalSignature: true,
      keyEncipherment: keyType === "rsa",
      critical: true,
    },
    {
      name: "extKeyUsage",
      serverAuth: opts.usage !== "client",
      clientAuth: opts.usage !== "server",
    },
    { name: "subjectKeyIdentifier", value: octets(subjectKeyId(spki)) },
    { name: "authorityKeyIdentifier", keyIdentifier: caSki },
  ];
  if (altNames.length > 0) extensions.push({ name: "subjectAltName", altNames });
  cert.setExtensions(extensions);
  const certPem = signTbs(cert, { spki, issuer: caSubject, signer: caKey, signerType: caType });
  return { cert: certPem, key: exportKey(privateKey, keyType) };
}

/**
 * The text of a Teleport identity file, in the order `tctl auth sign` writes
 * it: key, SSH certificate line, TLS certificate, `@cert-authority` line, CAs.
 */
export function identityFileText(o: IdentityFileParts): string {
  const firstCa = o.cas[0];
  const caSshKey = firstCa === undefined
    ? "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA=="
    : sshPublicKey(new X509Certificate(firstCa).publicKey);
  const sshCert = o.sshCert ?? sshCertLine(createPublicKey(o.key));
  return [
    ensureNewline(o.key),
    ensureNewline(sshCert),
    ensureNewline(o.cert),
    `@cert-authority ${o.clusterName},*.${o.clusterName} ${caSshKey} type=host\n`,
    ...o.cas.map(ensureNewline),
  ].join("");
}

/** Writes {@linkcode identityFileText} to `path` with mode 0600. */
export async function writeIdentityFile(path: string, o: IdentityFileParts): Promise<void> {
  await Deno.writeTextFile(path, identityFileText(o), { mode: 0o600 });
  // `mode` applies only on creation; make an existing file private too.
  await Deno.chmod(path, 0o600);
}

function ensureNewline(text: string): string {
  return text.endsWith("\n") ? text : text + "\n";
}

function newKeyPair(type: KeyType): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: KeyObject, privateKey: KeyObject) =>
      err ? reject(err) : resolve({ privateKey, publicKey });
    if (type === "rsa") generateKeyPair("rsa", { modulusLength: 2048 }, done);
    else generateKeyPair("ec", { namedCurve: "prime256v1" }, done);
  });
}

function exportKey(key: KeyObject, type: KeyType): string {
  return key.export({ type: type === "rsa" ? "pkcs1" : "sec1", format: "pem" }).toString();
}

/** A positive 16-byte serial number, hex. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f | 0x01;
  return bytes.toString("hex");
}

function spkiAsn1(publicKey: KeyObject): forge.asn1.Asn1 {
  const der = publicKey.export({ type: "spki", format: "der" });
  return derToAsn1(der.toString("binary"));
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey BIT STRING contents. */
function subjectKeyId(spki: forge.asn1.Asn1): string {
  const bitString = (spki.value as forge.asn1.Asn1[])[1];
  if (typeof bitString?.value !== "string") throw new Error("Unexpected SubjectPublicKeyInfo");
  const bits = bitString.value.slice(1); // drop the unused-bits byte
  return createHash("sha1").update(Buffer.from(bits, "binary")).digest("binary");
}

/** Parses DER keeping BIT STRINGs as bytes (forge otherwise tries to parse their contents). */
function derToAsn1(der: string): forge.asn1.Asn1 {
  const fromDer = asn1.fromDer as unknown as (
    bytes: string,
    options: { decodeBitStrings: boolean },
  ) => forge.asn1.Asn1;
  return fromDer(der, { decodeBitStrings: false });
}

function octets(bytes: string): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes);
}

function tbsOf(certPem: string): { value: unknown[] } {
  const der = forge.pem.decode(certPem)[0]?.body ?? "";
  const cert = derToAsn1(der);
  return (cert.value as forge.asn1.Asn1[])[0] as unknown as { value: unknown[] };
}

function signatureAlgorithm(type: KeyType): forge.asn1.Asn1 {
  const oid = asn1.create(
    asn1.Class.UNIVERSAL,
    asn1.Type.OID,
    false,
    asn1.oidToDer(type === "rsa" ? OID_RSA_SHA256 : OID_ECDSA_SHA256).getBytes(),
  );
  // RSA carries explicit NULL parameters; ECDSA must have none (RFC 5758).
  const params = type === "rsa"
    ? [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, "")]
    : [];
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [oid, ...params]);
}

/**
 * Lets forge lay out the TBSCertificate, then puts in what forge cannot
 * express (an EC key, an EC signature algorithm, the issuer's exact DN
 * bytes) and signs it with `node:crypto`.
 */
function signTbs(
  cert: forge.pki.Certificate,
  o: {
    spki: forge.asn1.Asn1;
    issuer?: forge.asn1.Asn1;
    signer: KeyObject;
    signerType: KeyType;
  },
): string {
  // forge needs some RSA key and signature OID to serialize; both are replaced.
  cert.publicKey = pki.setRsaPublicKey(
    new forge.jsbn.BigInteger("3"),
    new forge.jsbn.BigInteger("3"),
  );
  cert.siginfo.algorithmOid = OID_RSA_SHA256;
  const tbs = (pki as unknown as ForgeTbs).getTBSCertificate(cert);
  const fields = tbs.value as forge.asn1.Asn1[];
  const sigAlg = signatureAlgorithm(o.signerType);
  fields[2] = sigAlg;
  if (o.issuer !== undefined) fields[3] = o.issuer;
  fields[6] = o.spki;
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), "binary");
  const signature = sign("sha256", tbsDer, o.signer);
  const certAsn1 = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    signatureAlgorithm(o.signerType),
    asn1.create(
      asn1.Class.UNIVERSAL,
      asn1.Type.BITSTRING,
      false,
      "\x00" + signature.toString("binary"),
    ),
  ]);
  // forge writes CRLF; Teleport (Go's encoding/pem) writes LF.
  return forge.pem.encode({ type: "CERTIFICATE", body: asn1.toDer(certAsn1).getBytes() }, {
    maxline: 64,
  }).replaceAll("\r\n", "\n");
}

function sshString(data: Uint8Array | string): Buffer {
  const body = typeof data === "string" ? Buffer.from(data) : Buffer.from(data);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

function sshMpint(b64url: string): Buffer {
  let bytes = Buffer.from(b64url, "base64url");
  if ((bytes[0] ?? 0) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return sshString(bytes);
}

/** `<type> <base64>` of an RSA or P-256 public key, in OpenSSH's format. */
function sshPublicKey(key: KeyObject): string {
  const { type, blob } = sshKeyBlob(key);
  return `${type} ${blob.toString("base64")}`;
}

function sshKeyBlob(key: KeyObject): { type: string; blob: Buffer } {
  const jwk = key.export({ format: "jwk" });
  if (jwk.kty === "RSA") {
    const type = "ssh-rsa";
    return {
      type,
      blob: Buffer.concat([sshString(type), sshMpint(jwk.e ?? ""), sshMpint(jwk.n ?? "")]),
    };
  }
  const type = "ecdsa-sha2-nistp256";
  const point = Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x ?? "", "base64url"),
    Buffer.from(jwk.y ?? "", "base64url"),
  ]);
  return {
    type,
    blob: Buffer.concat([sshString(type), sshString("nistp256"), sshString(point)]),
  };
}

/**
 * A line shaped like an OpenSSH user certificate. Only its shape matters:
 * nothing here parses SSH certificates.
 */
function sshCertLine(key: KeyObject): string {
  const { type, blob } = sshKeyBlob(key);
  const certType = type === "ssh-rsa"
    ? "ssh-rsa-cert-v01@openssh.com"
    : `${type}-cert-v01@openssh.com`;
  const body = Buffer.concat([sshString(certType), sshString(randomBytes(32)), blob]);
  return `${certType} ${body.toString("base64")}`;
}
