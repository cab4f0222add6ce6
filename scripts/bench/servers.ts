/**
 * The SMTP servers the benchmark runs against, each started by the bench in
 * a process of its own on 127.0.0.1, with STARTTLS (and AUTH where simple):
 *
 * - `stall`: smtp-server 3.13 as a plain sink (`stall_sink.ts`), whose
 *   replies to pipelined commands trigger the delayed-ACK stall;
 * - `aiosmtpd`: aiosmtpd from Debian (`python3-aiosmtpd`), STARTTLS + AUTH;
 * - `postfix`: Postfix from Debian, a throw-away instance in a temp folder
 *   (its own queue and config), STARTTLS, no AUTH (Postfix needs a SASL
 *   server for that), every message discarded after it was accepted.
 *
 * Each counts the messages it accepted, which is how the bench knows that
 * emails arrived.
 */
import { fileURLToPath } from "node:url";
import { issueCert, makeCa, type Pem } from "../../tests/pki.ts";

export interface BenchSmtp {
  readonly name: string;
  readonly port: number;
  /** Whether it wants AUTH (the plugin's config then carries a username). */
  readonly auth: boolean;
  /** Messages accepted so far. */
  accepted(): number;
  stop(): Promise<void>;
}

/** A CA and its certificate for `localhost` / 127.0.0.1 (EC), the key readable by Postfix. */
export interface LocalhostTls {
  readonly ca: Pem;
  readonly leaf: Pem;
  /** `<dir>/cert.pem` and `<dir>/key.pem`, what the servers are started with. */
  readonly certPath: string;
  readonly keyPath: string;
}

/** Makes {@linkcode LocalhostTls} in a new temp folder, or in `dir`. */
export async function localhostTls(name: string, dir?: string): Promise<LocalhostTls> {
  const folder = dir ?? await Deno.makeTempDir({ prefix: "teleport-email-bench-tls-" });
  await Deno.chmod(folder, 0o755); // Postfix reads the key as its own user
  const ca = await makeCa(name, { keyType: "ec" });
  const leaf = await issueCert(ca, {
    commonName: "localhost",
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    usage: "server",
    keyType: "ec",
  });
  const certPath = `${folder}/cert.pem`;
  const keyPath = `${folder}/key.pem`;
  await Deno.writeTextFile(certPath, leaf.cert);
  await Deno.writeTextFile(keyPath, leaf.key);
  await Deno.chmod(keyPath, 0o644);
  return { ca, leaf, certPath, keyPath };
}

/** How long a server may take to start listening. */
const START_TIMEOUT_MS = 30_000;

const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));

/** A sink in a child process that prints `LISTEN <port>`, then `+` per accepted message. */
async function startChildSink(
  name: string,
  command: string,
  args: string[],
  auth: boolean,
): Promise<BenchSmtp> {
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
  }).spawn();
  let count = 0;
  let port = 0;
  let listening!: () => void;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  const pump = (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of child.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "+") count++;
        else if (line.startsWith("LISTEN ")) {
          port = Number(line.slice(7));
          listening();
        }
      }
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    ready,
    child.status.then((s) => {
      throw new Error(`${name} exited with ${s.code} before listening`);
    }),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name} did not start`)), START_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
  return {
    name,
    port,
    auth,
    accepted: () => count,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
      await pump;
    },
  };
}

export function startStallSink(cert: string, key: string): Promise<BenchSmtp> {
  return startChildSink(
    "stall (smtp-server 3.13)",
    Deno.execPath(),
    ["run", "-A", here("./stall_sink.ts"), cert, key],
    true,
  );
}

export function startAiosmtpd(cert: string, key: string): Promise<BenchSmtp> {
  return startChildSink(
    "aiosmtpd",
    "/usr/bin/python3",
    [here("./aiosmtpd_sink.py"), cert, key],
    true,
  );
}

async function run(command: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${command} ${args.join(" ")} failed: ${text.trim()}`);
  return text;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The Postfix services a sink instance needs (no pickup, no local delivery). */
const POSTFIX_SERVICES = [
  "cleanup unix n - n - 0 cleanup",
  "qmgr unix n - n 300 1 qmgr",
  "rewrite unix - - n - - trivial-rewrite",
  "bounce unix - - n - 0 bounce",
  "defer unix - - n - 0 bounce",
  "trace unix - - n - 0 bounce",
  "verify unix - - n - 1 verify",
  "flush unix n - n 1000? 0 flush",
  "proxymap unix - - n - - proxymap",
  "showq unix n - n - - showq",
  "error unix - - n - - error",
  "retry unix - - n - - error",
  "discard unix - - n - - discard",
  "anvil unix - - n - 1 anvil",
  "scache unix - - n - 1 scache",
  "tlsmgr unix - - n 1000? 1 tlsmgr",
  "postlog unix-dgram n - n - 1 postlogd",
];

/** A throw-away Postfix (Debian's package) that accepts everything over STARTTLS and discards it. */
export async function startPostfix(cert: string, key: string): Promise<BenchSmtp> {
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-bench-postfix-" });
  const port = freePort();
  const log = `${dir}/maillog`;
  const main = [
    "compatibility_level = 3.6",
    `queue_directory = ${dir}/queue`,
    `data_directory = ${dir}/data`,
    "mail_owner = postfix",
    "setgid_group = postdrop",
    "inet_interfaces = 127.0.0.1",
    "inet_protocols = ipv4",
    "myhostname = localhost",
    "mydestination =",
    "mynetworks = 127.0.0.0/8",
    "relay_domains =",
    "smtpd_relay_restrictions = permit_mynetworks, reject",
    "default_transport = discard:bench",
    "relay_transport = discard:bench",
    "local_transport = discard:bench",
    "alias_maps =",
    "alias_database =",
    `smtpd_tls_cert_file = ${cert}`,
    `smtpd_tls_key_file = ${key}`,
    "smtpd_tls_security_level = may",
    `maillog_file_prefixes = ${dir}`,
    `maillog_file = ${log}`,
    "smtpd_client_connection_count_limit = 0",
    "smtpd_client_message_rate_limit = 0",
    "default_process_limit = 100",
  ].join("\n") + "\n";
  await Deno.writeTextFile(`${dir}/main.cf`, main);
  await Deno.writeTextFile(
    `${dir}/master.cf`,
    [`127.0.0.1:${port} inet n - n - - smtpd`, ...POSTFIX_SERVICES].join("\n") + "\n",
  );
  await Deno.mkdir(`${dir}/queue`);
  await Deno.mkdir(`${dir}/data`);
  await run("chown", ["postfix", `${dir}/data`]);
  await run("postfix", ["-c", dir, "set-permissions", "create-missing"]).catch(() => "");
  await run("postfix", ["-c", dir, "start"]);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`postfix did not listen: ${error}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  // Count "message-id=" lines of cleanup: one per message accepted. Read when asked, from where
  // the last read ended: a background poll of the whole log grew with it and took a CPU the
  // processes being measured needed.
  let count = 0;
  let file: Deno.FsFile | undefined;
  let pending = "";
  const decoder = new TextDecoder();
  const chunk = new Uint8Array(64 * 1024);
  const readNew = () => {
    try {
      file ??= Deno.openSync(log, { read: true });
    } catch {
      return; // not written yet
    }
    for (;;) {
      const n = file.readSync(chunk);
      if (n === null || n === 0) break;
      pending += decoder.decode(chunk.subarray(0, n), { stream: true });
    }
    const end = pending.lastIndexOf("\n") + 1;
    count +=
      pending.slice(0, end).split("\n").filter((l) =>
        / postfix\/cleanup\[\d+\]: \w+: message-id=/.test(l)
      ).length;
    pending = pending.slice(end);
  };
  return {
    name: "postfix",
    port,
    auth: false,
    accepted: () => {
      readNew();
      return count;
    },
    async stop() {
      file?.close();
      await run("postfix", ["-c", dir, "stop"]).catch(() => "");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
