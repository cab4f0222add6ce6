/**
 * The container image and the Helm chart (`deploy/`), checked without a cluster or a Docker
 * engine. Always: the Dockerfile copies what `scripts/build.sh` writes and runs it as the
 * chart expects; the chart's values accept every key of Teleport's own chart. With `helm`:
 * `helm lint`, and `helm template` of values files written for Teleport's chart (plus tbot,
 * Mailgun, and this chart's extras), whose rendered ConfigMap must pass our own config
 * validation, equal what Teleport's chart renders (plus `[status]`), mount every secret
 * instead of inlining it, probe the status listener and run non-root on a read-only root.
 *
 * `helm` is pinned and built from the Go module proxy into a cache outside the repository
 * (the first build takes minutes), so only `deno task test:deploy` installs it; plain
 * `deno task test` runs the helm tests when that cache is filled and skips them otherwise.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { type ConfigDeps, loadConfigSync } from "../src/config/load.ts";
import type { LoadedConfig } from "../src/config/types.ts";
import { exists, runCommand, type RunResult } from "./command.ts";
import { PLUGIN_ENV } from "../scripts/v8_flags.ts";

/** The pinned helm release (Go module `helm.sh/helm/v3`, served by the Go module proxy). */
const HELM_VERSION = "v3.22.0";
const HELM_PACKAGE = "helm.sh/helm/v3/cmd/helm";
/** Set to 1 (by `deno task test:deploy`) to let this test build helm when it is not cached. */
const INSTALL_ENV = "TELEPORT_EMAIL_INSTALL_HELM";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const CHART = join(REPO, "deploy/helm/teleport-plugin-email");
const FIXTURES = join(REPO, "tests/fixtures/helm");
const RELEASE = "teleport-plugin-email";
const NAMESPACE = "teleport";

/** Where the plugin's files live in the container (as in Teleport's chart). */
const DATA_DIR = "/var/lib/teleport/plugins/email";
/** 0600 as Kubernetes reads `defaultMode: 0600` (YAML 1.1 octal). */
const MODE_0600 = 0o600;

// --- helm: cached, or installed on request --------------------------------------------------

function helmCacheDir(): string | undefined {
  const cacheHome = Deno.env.get("XDG_CACHE_HOME") ||
    (Deno.env.get("HOME") ? join(Deno.env.get("HOME")!, ".cache") : undefined);
  return cacheHome && join(cacheHome, "teleport-email", `helm-${HELM_VERSION}`);
}

/** The path of a working helm, or why there is none. */
async function findHelm(): Promise<{ helm: string } | { skip: string }> {
  const dir = helmCacheDir();
  if (dir === undefined) return { skip: "neither XDG_CACHE_HOME nor HOME is set" };
  const helm = join(dir, "helm");
  if (await exists(helm)) {
    const { code, stderr } = await runCommand(helm, { args: ["version", "--short"] });
    if (code === 0) return { helm };
    if (Deno.env.get(INSTALL_ENV) !== "1") {
      return { skip: `cached ${helm} does not run (${stderr.trim()}); run: deno task test:deploy` };
    }
  } else if (Deno.env.get(INSTALL_ENV) !== "1") {
    return {
      skip: `helm ${HELM_VERSION} is not cached in ${dir}; ` +
        "`deno task test:deploy` builds it with go install (minutes, once)",
    };
  }
  try {
    const go = await runCommand("go", { args: ["version"] });
    if (go.code !== 0) return { skip: `\`go version\` failed: ${go.stderr.trim()}` };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { skip: `Go is not installed; helm ${HELM_VERSION} is built with go install` };
    }
    throw error;
  }
  await Deno.mkdir(dir, { recursive: true });
  // Built into a fresh directory, then renamed: a concurrent run never sees half a binary.
  const staging = await Deno.makeTempDir({ dir, prefix: "install-" });
  try {
    const started = Date.now();
    const { code, stderr } = await runCommand("go", {
      args: ["install", `${HELM_PACKAGE}@${HELM_VERSION}`],
      cwd: staging,
      env: { GOBIN: staging },
    });
    if (code !== 0) {
      throw new Error(`go install ${HELM_PACKAGE}@${HELM_VERSION} failed:\n${stderr}`);
    }
    await Deno.rename(join(staging, "helm"), helm);
    console.log(`deploy_test: built helm ${HELM_VERSION} in ${(Date.now() - started) / 1000} s`);
  } finally {
    await Deno.remove(staging, { recursive: true });
  }
  return { helm };
}

const found = await findHelm();
const HELM = "helm" in found ? found.helm : undefined;
if ("skip" in found) console.log(`deploy_test: helm chart tests skipped: ${found.skip}`);

async function helm(...args: string[]): Promise<RunResult> {
  assert.ok(HELM, "helm is not available");
  // No repositories, plugins or kube config of the user's: nothing here needs them.
  const scratch = await Deno.makeTempDir({ prefix: "teleport-email-helm-" });
  try {
    return await runCommand(HELM, {
      args,
      env: {
        HELM_CONFIG_HOME: scratch,
        HELM_CACHE_HOME: scratch,
        HELM_DATA_HOME: scratch,
        KUBECONFIG: join(scratch, "kubeconfig"),
      },
    });
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

// --- rendered manifests ---------------------------------------------------------------------

interface Metadata {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Manifest {
  kind: string;
  metadata: Metadata;
  data?: Record<string, string>;
  spec?: unknown;
}
interface Volume {
  name: string;
  secret?: { secretName: string; defaultMode?: number };
  configMap?: { name: string; defaultMode?: number };
  emptyDir?: unknown;
}
interface VolumeMount {
  name: string;
  mountPath: string;
  subPath?: string;
  readOnly?: boolean;
}
interface HttpProbe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: HttpProbe;
  readinessProbe?: HttpProbe;
  securityContext?: Record<string, unknown>;
  volumeMounts?: VolumeMount[];
}
interface PodSpec {
  automountServiceAccountToken?: boolean;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes?: Volume[];
}
interface DeploymentSpec {
  replicas: number;
  selector: { matchLabels: Record<string, string> };
  template: { metadata: Metadata; spec: PodSpec };
}

/** One `helm template` run, with the objects the checks look at. */
class Rendered {
  constructor(readonly manifests: readonly Manifest[]) {}

  all(kind: string): Manifest[] {
    return this.manifests.filter((m) => m.kind === kind);
  }

  one(kind: string): Manifest {
    const found = this.all(kind);
    assert.equal(found.length, 1, `expected one ${kind}, got ${found.length}`);
    return found[0]!;
  }

  get toml(): string {
    const text = this.one("ConfigMap").data?.["teleport-email.toml"];
    assert.ok(text, "the ConfigMap has no teleport-email.toml");
    return text;
  }

  get deployment(): DeploymentSpec {
    return this.one("Deployment").spec as DeploymentSpec;
  }

  get pod(): PodSpec {
    return this.deployment.template.spec;
  }

  get container(): Container {
    assert.equal(this.pod.containers.length, 1);
    return this.pod.containers[0]!;
  }

  volume(name: string): Volume {
    const volume = this.pod.volumes?.find((v) => v.name === name);
    assert.ok(volume, `no volume "${name}"`);
    return volume;
  }

  /** The mount at exactly `path`, if any. */
  mountAt(path: string): VolumeMount | undefined {
    return this.container.volumeMounts?.find((m) => m.mountPath === path);
  }

  /** The value of `key` in the Secret `name` this chart renders, if it renders it. */
  secretValue(name: string, key: string): string | undefined {
    const secret = this.all("Secret").find((s) => s.metadata.name === name);
    const encoded = secret?.data?.[key];
    return encoded === undefined ? undefined : Buffer.from(encoded, "base64").toString("utf8");
  }

  /** The config path the container is started with (`--config PATH`). */
  get configPath(): string {
    const argv = [...(this.container.command ?? []), ...(this.container.args ?? [])];
    const at = argv.indexOf("--config");
    assert.ok(at > 0 && argv[at + 1], `no --config in ${JSON.stringify(argv)}`);
    return argv[at + 1]!;
  }

  /**
   * Loads the rendered config with our own loader. A file it names can be read only when a
   * Secret is mounted at exactly that path; its contents come from the Secret when this chart
   * renders it, else a stand-in for the user's Secret.
   */
  loadConfigSync(): { loaded: LoadedConfig; read: string[] } {
    const read: string[] = [];
    const deps: ConfigDeps = {
      readTextFile: (path) => {
        if (path === this.configPath) return this.toml;
        read.push(path);
        const mount = this.mountAt(path);
        const secret = mount && this.volume(mount.name).secret;
        if (!mount?.subPath || !secret) {
          throw new Deno.errors.NotFound(`no Secret is mounted at ${path}`);
        }
        return this.secretValue(secret.secretName, mount.subPath) ??
          `from-secret-${secret.secretName}-${mount.subPath}`;
      },
    };
    return { loaded: loadConfigSync(this.configPath, deps), read };
  }
}

const renders = new Map<string, Promise<Rendered>>();

/**
 * `helm template` of the chart with `values` files (under tests/fixtures/helm) and `--set`
 * flags (given as `--set=key=value`), memoised.
 */
function render(...values: string[]): Promise<Rendered> {
  const key = values.join("\n");
  let rendered = renders.get(key);
  if (rendered === undefined) {
    rendered = (async () => {
      const args = ["template", RELEASE, CHART, "--namespace", NAMESPACE];
      for (const file of values) {
        args.push(...(file.startsWith("--") ? [file] : ["--values", join(FIXTURES, file)]));
      }
      const { code, stdout, stderr } = await helm(...args);
      assert.equal(code, 0, `helm ${args.join(" ")} failed:\n${stderr}`);
      // Kubernetes reads YAML 1.1 (`defaultMode: 0600` is octal), so parse it the same way.
      const manifests = parseAllDocuments(stdout, { version: "1.1" })
        .flatMap((doc) => {
          if (doc.errors.length > 0) throw doc.errors[0];
          const value = doc.toJS() as Manifest | null;
          return value === null ? [] : [value];
        });
      return new Rendered(manifests);
    })();
    renders.set(key, rendered);
  }
  return rendered;
}

const SCENARIOS = {
  "Teleport-chart values": ["teleport-chart-values.yaml"],
  "tbot": ["teleport-chart-values.yaml", "tbot.yaml"],
  "Mailgun": ["teleport-chart-values.yaml", "mailgun.yaml"],
  "status, ServiceMonitor and extras": ["teleport-chart-values.yaml", "status-servicemonitor.yaml"],
} as const satisfies Record<string, readonly string[]>;

function helmTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `helm: ${name}`, ignore: HELM === undefined, fn });
}

/** The Secret a mounted file comes from: its volume's Secret, the key, and the mode. */
function secretSource(r: Rendered, path: string): { secretName: string; key: string } {
  const mount = r.mountAt(path);
  assert.ok(mount, `nothing is mounted at ${path}`);
  assert.ok(mount.subPath, `${path} is not a single file of a volume (no subPath)`);
  assert.equal(mount.readOnly, true, `${path} is mounted writable`);
  const secret = r.volume(mount.name).secret;
  assert.ok(secret, `${path} does not come from a Secret`);
  assert.equal(secret.defaultMode, MODE_0600, `${path}: mode`);
  return { secretName: secret.secretName, key: mount.subPath };
}

// --- Dockerfile and build.sh ----------------------------------------------------------------

interface Dockerfile {
  from: string;
  args: string[];
  /** COPY sources and destination, flags dropped. */
  copies: { sources: string[]; dest: string }[];
  user: string;
  /** ENV, as `KEY=value` pairs. */
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
}

/** The instructions of deploy/Dockerfile (comments dropped, continuations joined). */
async function readDockerfile(): Promise<Dockerfile> {
  const text = await Deno.readTextFile(join(REPO, "deploy/Dockerfile"));
  const lines = text.split("\n").filter((line) => !/^\s*#/.test(line)).join("\n")
    .replace(/\\\n/g, " ").split("\n").map((line) => line.trim()).filter(Boolean);
  const dockerfile: Dockerfile = {
    from: "",
    args: [],
    copies: [],
    user: "",
    env: {},
    entrypoint: [],
    cmd: [],
  };
  for (const line of lines) {
    const [, instruction = "", rest = ""] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    switch (instruction.toUpperCase()) {
      case "FROM":
        dockerfile.from = rest;
        break;
      case "ARG":
        dockerfile.args.push(rest);
        break;
      case "COPY": {
        const words = rest.split(/\s+/).filter((word) => !word.startsWith("--"));
        dockerfile.copies.push({ sources: words.slice(0, -1), dest: words.at(-1)! });
        break;
      }
      case "USER":
        dockerfile.user = rest;
        break;
      case "ENV":
        for (const [, key = "", value = ""] of rest.matchAll(/(\w+)=(\S*)/g)) {
          dockerfile.env[key] = value;
        }
        break;
      case "ENTRYPOINT":
        dockerfile.entrypoint = JSON.parse(rest);
        break;
      case "CMD":
        dockerfile.cmd = JSON.parse(rest);
        break;
    }
  }
  return dockerfile;
}

/** The binaries `scripts/build.sh` writes by default, relative to the repository. */
async function buildOutputs(): Promise<Map<string, string>> {
  const script = await Deno.readTextFile(join(REPO, "scripts/build.sh"));
  const outDir = /OUT_DIR="\$\{OUT_DIR:-\$ROOT\/([^}]+)\}"/.exec(script)?.[1];
  const output = /--output "\$OUT_DIR\/([^"]+)"/.exec(script)?.[1];
  const targets = /TARGETS="\$\{TARGETS:-([^}]+)\}"/.exec(script)?.[1]?.split(/\s+/);
  const archOf = new Map(
    [...script.matchAll(/^\s*([\w-]+-unknown-linux-gnu)\) echo (\w+) ;;/gm)].map((m) => [
      m[1]!,
      m[2]!,
    ]),
  );
  assert.ok(outDir && output && targets, "scripts/build.sh: OUT_DIR, --output or TARGETS changed");
  const outputs = new Map<string, string>();
  for (const target of targets) {
    const arch = archOf.get(target);
    assert.ok(arch, `scripts/build.sh: no architecture for ${target}`);
    outputs.set(arch, `${outDir}/${output.replace("$arch", arch)}`);
  }
  return outputs;
}

Deno.test("deploy/Dockerfile gives the plugin the environment the benchmark measured it with", async () => {
  const dockerfile = await readDockerfile();
  assert.deepEqual(dockerfile.env, PLUGIN_ENV);
});

Deno.test("deploy/Dockerfile copies the binaries scripts/build.sh writes, per TARGETARCH", async () => {
  const dockerfile = await readDockerfile();
  const outputs = await buildOutputs();
  assert.deepEqual([...outputs.keys()].sort(), ["amd64", "arm64"]);
  assert.ok(dockerfile.args.includes("TARGETARCH"));
  assert.equal(dockerfile.copies.length, 1);
  const [copy] = dockerfile.copies;
  assert.equal(copy!.sources.length, 1);
  for (const [arch, path] of outputs) {
    assert.equal(copy!.sources[0]!.replace("${TARGETARCH}", arch), path);
  }
  // The BuildKit ignore file beside the Dockerfile lets exactly those binaries in.
  const ignore = (await Deno.readTextFile(join(REPO, "deploy/Dockerfile.dockerignore")))
    .split("\n").map((line) => line.trim()).filter((line) => line && !line.startsWith("#"));
  assert.deepEqual(ignore, ["*", ...[...outputs.values()].map((path) => `!${path}`)]);
});

Deno.test("deploy/Dockerfile: distroless cc, non-root, the binary as entrypoint", async () => {
  const dockerfile = await readDockerfile();
  assert.equal(dockerfile.from, "gcr.io/distroless/cc-debian12:nonroot");
  assert.match(dockerfile.user, /^[1-9]\d*:[1-9]\d*$/, "USER must be a numeric non-root uid:gid");
  assert.deepEqual(dockerfile.entrypoint, [dockerfile.copies[0]!.dest]);
  assert.deepEqual(dockerfile.cmd, ["start", "--config", "/etc/teleport-email.toml"]);
});

/**
 * Every values key of Teleport's chart (examples/chart/access/email/values.yaml, across
 * its versions) with its default there; `undefined` where this chart's default differs on
 * purpose (image: ours; security contexts: non-root with a read-only root filesystem).
 */
const TELEPORT_CHART_VALUES: Readonly<Record<string, unknown>> = {
  "teleport.address": "",
  "teleport.identitySecretName": "",
  "teleport.identitySecretPath": "auth_id",
  "mailgun.enabled": false,
  "mailgun.domain": "",
  "mailgun.privateKey": "",
  "mailgun.privateKeyFromSecret": "",
  "mailgun.privateKeySecretPath": "mailgunPrivateKey",
  "smtp.enabled": false,
  "smtp.host": "",
  "smtp.port": 587,
  "smtp.username": "",
  "smtp.password": "",
  "smtp.passwordFromSecret": "",
  "smtp.passwordSecretPath": "smtpPassword",
  "smtp.starttlsPolicy": "mandatory",
  "delivery.sender": "",
  "delivery.recipients": [],
  "roleToRecipients": {},
  "log.severity": "INFO",
  "log.output": "stdout",
  "tbot.enabled": false,
  "tbot.clusterName": "",
  "tbot.teleportProxyAddress": "",
  "tbot.teleportAuthAddress": "",
  "tbot.joinMethod": "kubernetes",
  "tbot.token": "",
  "tbot.nameOverride": "tbot",
  "tbot.defaultOutput.enabled": true,
  "secretVolumeName": "password-file",
  "annotations.config": {},
  "annotations.deployment": {},
  "annotations.pod": {},
  "annotations.secret": {},
  "image.repository": undefined,
  "image.pullPolicy": "IfNotPresent",
  "image.tag": "",
  "imagePullSecrets": [],
  "nameOverride": "",
  "fullnameOverride": "",
  "podAnnotations": {},
  "podSecurityContext": undefined,
  "securityContext": undefined,
  "resources": {},
  "nodeSelector": {},
  "tolerations": [],
  "affinity": {},
  "volumes": [],
  "volumeMounts": [],
};

Deno.test("chart values: every key of Teleport's chart, with its default", async () => {
  const values = parseYaml(await Deno.readTextFile(join(CHART, "values.yaml"))) as Record<
    string,
    unknown
  >;
  for (const [key, expected] of Object.entries(TELEPORT_CHART_VALUES)) {
    let value: unknown = values;
    for (const part of key.split(".")) {
      assert.ok(
        typeof value === "object" && value !== null && Object.hasOwn(value, part),
        `values.yaml has no ${key}`,
      );
      value = (value as Record<string, unknown>)[part];
    }
    if (expected !== undefined) assert.deepEqual(value, expected, key);
  }
});

Deno.test("chart version is deno.json's version", async () => {
  const chart = parseYaml(await Deno.readTextFile(join(CHART, "Chart.yaml"))) as {
    version: string;
    appVersion: string;
  };
  const { version } = JSON.parse(await Deno.readTextFile(join(REPO, "deno.json"))) as {
    version: string;
  };
  assert.equal(chart.version, version);
  assert.equal(chart.appVersion, version);
});

// --- helm ---------------------------------------------------------------------------------

helmTest("helm lint --strict passes for every scenario", async () => {
  for (const [name, files] of Object.entries(SCENARIOS)) {
    const args = ["lint", CHART, "--strict", "--namespace", NAMESPACE];
    for (const file of files) args.push("--values", join(FIXTURES, file));
    const { code, stdout, stderr } = await helm(...args);
    assert.equal(code, 0, `${name}: ${stdout}${stderr}`);
  }
});

helmTest("a values file for Teleport's chart renders a config our validation accepts", async () => {
  const r = await render(...SCENARIOS["Teleport-chart values"]);
  const { loaded, read } = r.loadConfigSync();
  assert.deepEqual(loaded.warnings, []);
  const { config } = loaded;
  assert.equal(config.teleport.addr, "teleport.example.com:443");
  assert.deepEqual(config.teleport.credentials, {
    kind: "identity",
    identityFile: `${DATA_DIR}/teleport-identity/identity`,
  });
  assert.equal(config.teleport.refreshIdentity, true);
  assert.equal(config.mailer.kind, "smtp");
  assert.ok(config.mailer.kind === "smtp");
  assert.equal(config.mailer.host, "smtp.gmail.com");
  assert.equal(config.mailer.port, 587);
  assert.equal(config.mailer.username, "username@gmail.com");
  assert.equal(config.mailer.starttlsPolicy, "mandatory");
  // Read from the mounted Secret the user created (smtp-password, key smtpPassword).
  assert.equal(config.mailer.password?.reveal(), "from-secret-smtp-password-smtpPassword");
  assert.deepEqual(read, [`${DATA_DIR}/smtp_password`]);
  assert.equal(config.delivery.sender, "noreply@example.com");
  assert.deepEqual({ ...config.roleToRecipients }, {
    "*": ["eng@example.com"],
    editor: ["admin@example.com", "execs@example.com"],
  });
  assert.deepEqual(config.log, { output: "stdout", severity: "debug", format: "text" });
  assert.equal(config.status.listenAddr, "0.0.0.0:9465");
});

helmTest("the TOML is what Teleport's chart renders, plus [status]", async () => {
  for (
    const [scenario, expected] of [["Teleport-chart values", "smtp"], ["tbot", "tbot"], [
      "Mailgun",
      "mailgun",
    ]] as const
  ) {
    // Through JSON: smol-toml's tables have a null prototype.
    const ours = JSON.parse(JSON.stringify(parseToml((await render(...SCENARIOS[scenario])).toml)));
    const theirs = JSON.parse(JSON.stringify(parseToml(
      await Deno.readTextFile(join(FIXTURES, "teleport-chart-rendered", `${expected}.toml`)),
    )));
    assert.deepEqual(ours["status"], { listen_addr: "0.0.0.0:9465" }, scenario);
    delete ours["status"];
    assert.deepEqual(ours, theirs, scenario);
  }
});

helmTest(
  "status.listenHost binds the listener to [::] for an IPv6 or dual-stack cluster",
  async () => {
    for (const host of ["[::]", "::"]) {
      const r = await render("teleport-chart-values.yaml", `--set=status.listenHost=${host}`);
      const toml = parseToml(r.toml) as Record<string, Record<string, unknown>>;
      assert.deepEqual({ ...toml["status"] }, { listen_addr: "[::]:9465" }, host);
    }
  },
);

helmTest("secrets are mounted 0600 from Secrets and never inlined in the ConfigMap", async () => {
  for (const scenario of ["Teleport-chart values", "tbot", "Mailgun"] as const) {
    const r = await render(...SCENARIOS[scenario]);
    const config = parseToml(r.toml) as Record<string, Record<string, unknown>>;
    for (const [section, secretKey] of [["smtp", "password"], ["mailgun", "private_key"]]) {
      assert.equal(
        config[section!]?.[secretKey!],
        undefined,
        `${scenario}: ${section}.${secretKey}`,
      );
      const file = config[section!]?.[`${secretKey}_file`];
      if (typeof file === "string") secretSource(r, file);
    }
    // The identity: a whole Secret as a directory (so renewals arrive), mode 0600.
    const identity = config["teleport"]?.["identity"] as string;
    const dir = identity.slice(0, identity.lastIndexOf("/"));
    const mount = r.mountAt(dir);
    assert.ok(mount && !mount.subPath, `${scenario}: ${dir} is not a directory mount`);
    assert.equal(r.volume(mount.name).secret?.defaultMode, MODE_0600);
    assert.equal(r.volume("config").configMap?.defaultMode, MODE_0600);
    // No value of a Secret this chart renders appears in the ConfigMap.
    for (const secret of r.all("Secret")) {
      for (const key of Object.keys(secret.data ?? {})) {
        const value = r.secretValue(secret.metadata.name, key)!;
        assert.ok(!r.toml.includes(value), `${scenario}: Secret ${key} is inlined`);
      }
    }
  }
});

helmTest("tbot: the identity comes from <release>-tbot-out, key identity", async () => {
  const r = await render(...SCENARIOS["tbot"]);
  const { config } = r.loadConfigSync().loaded;
  assert.equal(config.teleport.addr, "teleport.example.com:443"); // tbot.teleportProxyAddress
  assert.deepEqual(config.teleport.credentials, {
    kind: "identity",
    identityFile: `${DATA_DIR}/teleport-identity/identity`,
  });
  assert.equal(r.volume("teleport-identity").secret?.secretName, `${RELEASE}-tbot-out`);
});

helmTest("Mailgun: the chart's own Secret holds the key, mounted as private_key_file", async () => {
  const r = await render(...SCENARIOS["Mailgun"]);
  const { loaded, read } = r.loadConfigSync();
  const { config } = loaded;
  assert.ok(config.mailer.kind === "mailgun");
  assert.equal(config.mailer.domain, "mg.example.com");
  assert.equal(config.mailer.privateKey.reveal(), "key-0123456789abcdef-not-a-real-key");
  assert.deepEqual(read, [`${DATA_DIR}/mailgun_private_key`]);
  assert.deepEqual(secretSource(r, `${DATA_DIR}/mailgun_private_key`), {
    secretName: `${RELEASE}-secret`,
    key: "mailgunPrivateKey",
  });
  assert.ok(r.deployment.template.metadata.annotations?.["checksum/secret"]);
  assert.equal(r.all("Secret").length, 1);
});

helmTest(
  "status: probes on the listener's port and paths; Service and ServiceMonitor",
  async () => {
    for (
      const scenario of ["Teleport-chart values", "status, ServiceMonitor and extras"] as const
    ) {
      const r = await render(...SCENARIOS[scenario]);
      const { config } = r.loadConfigSync().loaded;
      const port = Number(config.status.listenAddr?.split(":").at(-1));
      const named = r.container.ports?.find((p) => p.name === "status");
      assert.equal(named?.containerPort, port, scenario);
      assert.deepEqual(r.container.livenessProbe?.httpGet, { path: "/healthz", port: "status" });
      assert.deepEqual(r.container.readinessProbe?.httpGet, { path: "/readyz", port: "status" });
    }
    const r = await render(...SCENARIOS["status, ServiceMonitor and extras"]);
    const service = r.one("Service").spec as {
      selector: Record<string, string>;
      ports: { name: string; port: number; targetPort: string }[];
    };
    assert.deepEqual(service.ports, [{
      name: "status",
      port: 9500,
      targetPort: "status",
      protocol: "TCP",
    }]);
    const podLabels = r.deployment.template.metadata.labels ?? {};
    for (const [k, v] of Object.entries(service.selector)) assert.equal(podLabels[k], v);
    const monitor = r.one("ServiceMonitor");
    assert.equal(monitor.metadata.labels?.["release"], "prometheus");
    const monitorSpec = monitor.spec as {
      selector: { matchLabels: Record<string, string> };
      endpoints: unknown[];
    };
    assert.deepEqual(monitorSpec.selector.matchLabels, service.selector);
    assert.deepEqual(monitorSpec.endpoints, [{
      port: "status",
      path: "/metrics",
      interval: "30s",
    }]);

    // The extras of this chart reach the config, and the log file's directory is writable.
    const { config } = r.loadConfigSync().loaded;
    assert.deepEqual(config.reminders, { afterMs: 3_600_000, everyMs: 14_400_000, max: 5 });
    assert.equal(config.delivery.notifyRequester, true);
    assert.deepEqual(config.log, {
      output: "/var/log/teleport-email/plugin.log",
      severity: "debug",
      format: "json",
    });
    assert.ok(r.volume(r.mountAt("/var/log/teleport-email")!.name).emptyDir);
    assert.equal(r.deployment.replicas, 2);
    assert.equal(
      (await render(...SCENARIOS["Teleport-chart values"])).all("ServiceMonitor").length,
      0,
    );

    // status.enabled=false: no [status], probes, port or Service.
    const off = await render(...SCENARIOS["Teleport-chart values"], "--set=status.enabled=false");
    assert.equal(off.loadConfigSync().loaded.config.status.listenAddr, undefined);
    assert.equal(off.container.livenessProbe, undefined);
    assert.equal(off.container.readinessProbe, undefined);
    assert.equal(off.container.ports, undefined);
    assert.equal(off.all("Service").length, 0);
  },
);

helmTest(
  "non-root on a read-only root; user, entrypoint and config path as in the Dockerfile",
  async () => {
    const dockerfile = await readDockerfile();
    const [uid, gid] = dockerfile.user.split(":").map(Number);
    for (const [scenario, files] of Object.entries(SCENARIOS)) {
      const r = await render(...files);
      const pod = r.pod.securityContext ?? {};
      const container = r.container.securityContext ?? {};
      assert.equal(pod["runAsNonRoot"], true, scenario);
      assert.equal(pod["runAsUser"], uid, scenario);
      assert.equal(pod["runAsGroup"], gid, scenario);
      // Secret and config files are 0600: the group of fsGroup is what lets the user read them.
      assert.equal(pod["fsGroup"], gid, scenario);
      assert.equal(container["runAsNonRoot"], true, scenario);
      assert.equal(container["readOnlyRootFilesystem"], true, scenario);
      assert.equal(container["allowPrivilegeEscalation"], false, scenario);
      assert.equal(r.pod.automountServiceAccountToken, false, scenario);

      assert.deepEqual(
        r.container.command,
        [...dockerfile.entrypoint, ...dockerfile.cmd],
        scenario,
      );
      const configMount = r.mountAt(r.configPath);
      assert.equal(configMount?.name, "config", scenario);
      assert.equal(configMount?.subPath, "teleport-email.toml", scenario);
      assert.deepEqual(r.container.env?.find((e) => e.name === "TELEPORT_PLUGIN_FAIL_FAST"), {
        name: "TELEPORT_PLUGIN_FAIL_FAST",
        value: "true",
      });
    }
  },
);

helmTest("values that cannot work fail rendering, listing every problem", async () => {
  const { code, stderr } = await helm("template", RELEASE, CHART);
  assert.notEqual(code, 0);
  for (
    const problem of [
      "teleport.address is required",
      "teleport.identitySecretName is required",
      "no mailer: set smtp.enabled or mailgun.enabled",
      "delivery.sender is required",
      'roleToRecipients (with a "*" entry) is required',
    ]
  ) {
    assert.ok(stderr.includes(problem), `missing "${problem}" in:\n${stderr}`);
  }
});
