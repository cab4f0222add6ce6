/**
 * Release packaging, black-box: `scripts/pack.sh` makes the tarball from a
 * stand-in binary (a shell script), `tar` unpacks it, and the shipped
 * `install` runs into a temporary root (INSTALL_ROOT) as root, again, and as
 * an unprivileged user. The scripts are copied into a scratch repository with
 * a stand-in README so the tests do not depend on the rest of the tree.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exists, runCommand, type RunResult } from "./command.ts";
import { PLUGIN_ENV } from "../scripts/v8_flags.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const REAL_VERSION = (JSON.parse(await Deno.readTextFile(join(REPO, "deno.json"))) as {
  version: string;
}).version;
const PKG = "teleport-access-email";
const STAND_IN = '#!/bin/sh\necho "teleport-email v0.0.0-test git:test deno0"\n';
const IS_ROOT = Deno.uid() === 0;

async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  return await runCommand(cmd, {
    args,
    cwd: options.cwd ?? REPO,
    env: { ...Deno.env.toObject(), ...options.env },
    clearEnv: true,
  });
}

async function mode(path: string): Promise<number> {
  return (await Deno.lstat(path)).mode! & 0o7777;
}

/** How to run a command as `nobody`, or null when this machine offers no way. */
async function dropPrivileges(): Promise<string[] | null> {
  if (!IS_ROOT) return null;
  const tries = [
    ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"],
    ["runuser", "-u", "nobody", "--"],
  ];
  for (const prefix of tries) {
    try {
      const probe = await run(prefix[0]!, [...prefix.slice(1), "true"]);
      if (probe.code === 0) return prefix;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return null;
}
const AS_NOBODY = await dropPrivileges();

interface Scratch {
  dir: string;
  repo: string;
  binary: string;
}

/**
 * A scratch directory (world-traversable, so `nobody` can reach into it) with
 * a minimal repository: the real pack.sh, install.sh, unit and deno.json, a
 * stand-in README.md and the stand-in binary at bin/teleport-email.
 */
async function scratch(): Promise<Scratch> {
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-pack-" });
  await Deno.chmod(dir, 0o755);
  const repo = join(dir, "repo");
  await Deno.mkdir(join(repo, "scripts"), { recursive: true });
  for (const file of ["scripts/pack.sh", "install.sh", "teleport-email.service", "deno.json"]) {
    await Deno.copyFile(join(REPO, file), join(repo, file));
  }
  await Deno.writeTextFile(join(repo, "README.md"), "# stand-in README\n");
  const binary = join(dir, "bin", "teleport-email");
  await Deno.mkdir(join(dir, "bin"));
  await Deno.writeTextFile(binary, STAND_IN, { mode: 0o700 });
  return { dir, repo, binary };
}

/** A test with a fresh {@linkcode scratch} directory, removed however the test ends. */
function packTest(name: string, fn: (s: Scratch) => Promise<void>): void {
  Deno.test(name, async () => {
    const s = await scratch();
    try {
      await fn(s);
    } finally {
      await Deno.remove(s.dir, { recursive: true });
    }
  });
}

/** Packs with the scratch repo's pack.sh; returns the tarball path it printed. */
async function pack(
  repo: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<string> {
  const result = await run("bash", [join(repo, "scripts/pack.sh"), ...args], options);
  assert.equal(result.code, 0, result.stderr);
  const path = result.stdout.trim();
  assert.ok(await exists(path), `pack.sh printed "${path}", which does not exist`);
  return path;
}

/** Unpacks a tarball into a new directory under `dir`; returns the package directory. */
async function unpack(tarball: string, dir: string): Promise<string> {
  const into = await Deno.makeTempDir({ dir, prefix: "unpacked-" });
  await Deno.chmod(into, 0o755);
  const result = await run("tar", ["-xzf", tarball, "-C", into]);
  assert.equal(result.code, 0, result.stderr);
  return join(into, PKG);
}

Deno.test("the systemd unit is Teleport's, and says why it has no PIDFile", async () => {
  const unit = await Deno.readTextFile(join(REPO, "teleport-email.service"));
  const directives = unit.split("\n").filter((line) => /^[A-Za-z]+=/.test(line));
  for (
    const directive of [
      "Type=simple",
      "Restart=on-failure",
      // Never given up: at boot Teleport may come up after the plugin (systemd's default
      // stops after five failed starts in 10 s, and the plugin fails within a second).
      "RestartSec=5s",
      "StartLimitIntervalSec=0",
      "After=network-online.target",
      "ExecStart=/usr/local/bin/teleport-email start --config=/etc/teleport-email.toml",
      "ExecReload=/bin/kill -HUP $MAINPID",
      "WantedBy=multi-user.target",
    ]
  ) {
    assert.ok(directives.includes(directive), `${directive} missing from the unit`);
  }
  // Teleport's own unit has PIDFile=/run/teleport-email.pid; with Type=simple systemd tracks
  // the main PID itself, so ours leaves it out and says so.
  assert.deepEqual(directives.filter((line) => line.startsWith("PIDFile=")), []);
  assert.match(unit, /^# No PIDFile=\/run\/teleport-email\.pid.*Type=simple/ms);
});

Deno.test("the systemd unit gives the plugin the environment the benchmark measured it with", async () => {
  const unit = await Deno.readTextFile(join(REPO, "teleport-email.service"));
  const env = unit.split("\n").flatMap((line) => {
    const m = /^Environment=(\w+)=(.*)$/.exec(line);
    return m ? [[m[1]!, m[2]!] as const] : [];
  });
  assert.deepEqual(Object.fromEntries(env), PLUGIN_ENV);
});

packTest(
  "pack.sh names the tarball after deno.json's version and the arch, from any cwd",
  async ({ dir, repo }) => {
    // Relative binary and output paths are taken from the caller's cwd.
    const tarball = await pack(repo, ["../bin/teleport-email", "arm64", "out"], {
      cwd: join(dir, "repo"),
    });
    assert.equal(
      tarball,
      join(dir, "repo", "out", `${PKG}-v${REAL_VERSION}-linux-arm64-bin.tar.gz`),
    );
  },
);

packTest(
  "the tarball holds teleport-access-email/ with five files, modes set, owned by root",
  async ({ dir, repo, binary }) => {
    const tarball = await pack(repo, [binary, "amd64", join(dir, "out")], {
      env: { SOURCE_DATE_EPOCH: "1700000000" },
    });
    assert.equal(tarball, join(dir, "out", `${PKG}-v${REAL_VERSION}-linux-amd64-bin.tar.gz`));

    const listing = await run("tar", ["--numeric-owner", "-tvzf", tarball]);
    assert.equal(listing.code, 0, listing.stderr);
    const members = listing.stdout.trimEnd().split("\n").map((line) => {
      const fields = line.split(/\s+/);
      return { perms: fields[0], owner: fields[1], name: fields.at(-1) };
    });
    assert.deepEqual(members, [
      { perms: "drwxr-xr-x", owner: "0/0", name: `${PKG}/` },
      { perms: "-rw-r--r--", owner: "0/0", name: `${PKG}/README.md` },
      { perms: "-rw-r--r--", owner: "0/0", name: `${PKG}/VERSION` },
      { perms: "-rwxr-xr-x", owner: "0/0", name: `${PKG}/install` },
      { perms: "-rwxr-xr-x", owner: "0/0", name: `${PKG}/teleport-email` },
      { perms: "-rw-r--r--", owner: "0/0", name: `${PKG}/teleport-email.service` },
    ]);
    const names = await run("tar", ["-tvzf", tarball]);
    for (const line of names.stdout.trimEnd().split("\n")) {
      assert.equal(line.split(/\s+/)[1], "root/root", line);
    }

    const pkg = await unpack(tarball, dir);
    assert.equal(await Deno.readTextFile(join(pkg, "VERSION")), `${REAL_VERSION}\n`);
    assert.equal(await Deno.readTextFile(join(pkg, "teleport-email")), STAND_IN);
    assert.equal(
      await Deno.readTextFile(join(pkg, "install")),
      await Deno.readTextFile(join(REPO, "install.sh")),
    );
    assert.equal(
      await Deno.readTextFile(join(pkg, "teleport-email.service")),
      await Deno.readTextFile(join(REPO, "teleport-email.service")),
    );
    assert.equal(await Deno.readTextFile(join(pkg, "README.md")), "# stand-in README\n");
    assert.equal((await Deno.stat(join(pkg, "VERSION"))).mtime?.getTime(), 1700000000_000);
  },
);

packTest("packing the same inputs twice gives the same bytes", async ({ dir, repo, binary }) => {
  const env = { SOURCE_DATE_EPOCH: "1700000000" };
  const first = await pack(repo, [binary, "amd64", join(dir, "a")], { env });
  const second = await pack(repo, [binary, "amd64", join(dir, "b")], { env });
  assert.deepEqual(await Deno.readFile(first), await Deno.readFile(second));
});

packTest("pack.sh takes VERSION from the environment when set", async ({ dir, repo, binary }) => {
  const tarball = await pack(repo, [binary, "amd64", dir], { env: { VERSION: "9.8.7-rc.1" } });
  assert.equal(tarball, join(dir, `${PKG}-v9.8.7-rc.1-linux-amd64-bin.tar.gz`));
  const pkg = await unpack(tarball, dir);
  assert.equal(await Deno.readTextFile(join(pkg, "VERSION")), "9.8.7-rc.1\n");
});

packTest(
  "pack.sh refuses bad arguments and missing inputs with a clear error",
  async ({ dir, repo, binary }) => {
    const packSh = join(repo, "scripts/pack.sh");
    const usage = await run("bash", [packSh, binary]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage: .*<binary> <amd64\|arm64> \[outdir\]/);

    const arch = await run("bash", [packSh, binary, "x86_64", dir]);
    assert.equal(arch.code, 1);
    assert.match(arch.stderr, /unsupported architecture "x86_64" \(expected amd64 or arm64\)/);

    const missing = await run("bash", [packSh, join(dir, "nope"), "amd64", dir]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /binary ".*\/nope" does not exist/);

    const version = await run("bash", [packSh, binary, "amd64", dir], { env: { VERSION: "1.x" } });
    assert.equal(version.code, 1);
    assert.match(version.stderr, /version "1\.x" is not a semantic version/);

    await Deno.remove(join(repo, "README.md"));
    const readme = await run("bash", [packSh, binary, "amd64", dir]);
    assert.equal(readme.code, 1);
    assert.match(readme.stderr, /README\.md" is missing/);

    for await (const entry of Deno.readDir(dir)) {
      assert.ok(!entry.name.endsWith(".tar.gz"), `a failed pack left ${entry.name}`);
    }
  },
);

/** Unpacks a fresh package and returns it with an empty install root beside it. */
async function unpackedPackage(): Promise<{ dir: string; pkg: string; root: string }> {
  const { dir, repo, binary } = await scratch();
  const tarball = await pack(repo, [binary, "amd64", join(dir, "out")]);
  const pkg = await unpack(tarball, dir);
  return { dir, pkg, root: join(dir, "root") };
}

/**
 * An install test (skipped when `ignore`) with a freshly {@linkcode unpackedPackage}
 * and its empty install root, removed however the test ends.
 */
function installTest(
  name: string,
  opts: { ignore: boolean },
  fn: (p: { pkg: string; root: string }) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: opts.ignore,
    async fn() {
      const { dir, pkg, root } = await unpackedPackage();
      try {
        await fn({ pkg, root });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

async function install(
  pkg: string,
  env: Record<string, string>,
  prefix: string[] = [],
): Promise<RunResult> {
  const argv = [...prefix, join(pkg, "install")];
  // From an unrelated cwd: install finds its files beside itself.
  return await run(argv[0]!, argv.slice(1), { cwd: "/", env });
}

installTest(
  "install puts binary, data dir and unit in place with their modes, and prints next steps",
  { ignore: !IS_ROOT },
  async ({ pkg, root }) => {
    const result = await install(pkg, { INSTALL_ROOT: root });
    assert.equal(result.code, 0, result.stderr);

    const bin = join(root, "usr/local/bin/teleport-email");
    assert.equal(await Deno.readTextFile(bin), STAND_IN);
    assert.equal(await mode(bin), 0o755);
    const data = join(root, "var/lib/teleport/plugins/email");
    assert.ok((await Deno.lstat(data)).isDirectory);
    assert.equal(await mode(data), 0o755);
    const unit = join(root, "etc/systemd/system/teleport-email.service");
    assert.equal(
      await Deno.readTextFile(unit),
      await Deno.readTextFile(join(REPO, "teleport-email.service")),
    );
    assert.equal(await mode(unit), 0o644);
    assert.equal(await exists(join(root, "etc/teleport-email.toml")), false);
    for (const leftovers of ["usr/local/bin", "etc/systemd/system"]) {
      for await (const entry of Deno.readDir(join(root, leftovers))) {
        assert.ok(!entry.name.startsWith("."), `temporary file ${entry.name} left behind`);
      }
    }

    assert.match(result.stdout, /teleport-email v0\.0\.0-test git:test/);
    assert.match(
      result.stdout,
      /\/usr\/local\/bin\/teleport-email configure \| sudo tee \/etc\/teleport-email\.toml/,
    );
    assert.match(result.stdout, /sudo systemctl enable --now teleport-email/);
  },
);

installTest("install run again succeeds, keeps the config and the data dir's mode, same files", {
  ignore: !IS_ROOT,
}, async ({ pkg, root }) => {
  assert.equal((await install(pkg, { INSTALL_ROOT: root })).code, 0);
  const config = join(root, "etc/teleport-email.toml");
  await Deno.writeTextFile(config, "# operator's config\n", { mode: 0o600 });
  const data = join(root, "var/lib/teleport/plugins/email");
  await Deno.chmod(data, 0o700);
  const unit = join(root, "etc/systemd/system/teleport-email.service");
  const unitBefore = await Deno.readTextFile(unit);
  // A group-managed bin directory (Debian's /usr/local/bin, root:staff 2775) keeps its mode.
  await Deno.chmod(join(root, "usr/local/bin"), 0o2775);
  await Deno.chmod(join(root, "etc/systemd/system"), 0o750);

  const again = await install(pkg, { INSTALL_ROOT: root });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(await Deno.readTextFile(config), "# operator's config\n");
  assert.equal(await mode(config), 0o600);
  assert.equal(await mode(data), 0o700);
  assert.equal(await Deno.readTextFile(unit), unitBefore);
  assert.equal(await mode(unit), 0o644);
  assert.equal(await mode(join(root, "usr/local/bin/teleport-email")), 0o755);
  assert.equal(await mode(join(root, "usr/local/bin")), 0o2775);
  assert.equal(await mode(join(root, "etc/systemd/system")), 0o750);
  assert.match(again.stdout, /Kept your existing \/etc\/teleport-email\.toml/);
  assert.doesNotMatch(again.stdout, /sudo tee/);
});

installTest(
  "install honours BINDIR, and the unit's ExecStart follows it",
  { ignore: !IS_ROOT },
  async ({ pkg, root }) => {
    const result = await install(pkg, { INSTALL_ROOT: root, BINDIR: "/opt/teleport/bin/" });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await mode(join(root, "opt/teleport/bin/teleport-email")), 0o755);
    assert.equal(await exists(join(root, "usr/local/bin/teleport-email")), false);
    const unit = await Deno.readTextFile(join(root, "etc/systemd/system/teleport-email.service"));
    assert.match(
      unit,
      /^ExecStart=\/opt\/teleport\/bin\/teleport-email start --config=\/etc\/teleport-email\.toml$/m,
    );
    assert.match(result.stdout, /\/opt\/teleport\/bin\/teleport-email configure \|/);

    const relative = await install(pkg, { INSTALL_ROOT: root, BINDIR: "bin" });
    assert.equal(relative.code, 1);
    assert.match(relative.stderr, /BINDIR must be an absolute path, got "bin"/);
  },
);

installTest("install refuses a binary that does not run here and keeps the installed one", {
  ignore: !IS_ROOT,
}, async ({ pkg, root }) => {
  assert.equal((await install(pkg, { INSTALL_ROOT: root })).code, 0);
  // An ELF header for another machine: the kernel refuses to exec it.
  const foreign = new Uint8Array(64);
  foreign.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
  await Deno.writeFile(join(pkg, "teleport-email"), foreign, { mode: 0o755 });

  const result = await install(pkg, { INSTALL_ROOT: root });
  assert.equal(result.code, 1);
  assert.match(result.stderr, /does not run on this machine .*architecture/);
  const bin = join(root, "usr/local/bin");
  assert.equal(await Deno.readTextFile(join(bin, "teleport-email")), STAND_IN);
  for await (const entry of Deno.readDir(bin)) {
    assert.equal(entry.name, "teleport-email");
  }
});

installTest("install as a non-root user fails with a clear error and writes nothing", {
  ignore: AS_NOBODY === null,
}, async ({ pkg, root }) => {
  const result = await install(pkg, { INSTALL_ROOT: root }, AS_NOBODY!);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^teleport-email install: error: must run as root \(try: sudo /);
  assert.equal(await exists(root), false);
});

if (AS_NOBODY === null) {
  console.warn(
    IS_ROOT
      ? "package_test: neither setpriv nor runuser can switch to nobody: the non-root install case is skipped"
      : "package_test: not running as root: the install cases are skipped",
  );
}

/**
 * Whether this process may make a private mount namespace (`unshare -m`), in
 * which a test can stand up a booted systemd's directories on tmpfs without
 * touching the machine's.
 */
const CAN_UNSHARE = IS_ROOT && Deno.build.os === "linux" &&
  (await run("unshare", ["-m", "--propagation", "private", "true"]).catch(() => undefined))
      ?.code === 0 &&
  await exists("/etc/systemd/system");

const BOOTED_CASES = {
  running: "install on a booted systemd restarts the running unit (an upgrade runs the new binary)",
  stopped: "install on a booted systemd leaves a stopped unit stopped, and says how to start it",
  refused:
    "install on a booted systemd does not restart the running unit when the new version refuses the config",
} as const;

for (const [state, name] of Object.entries(BOOTED_CASES)) {
  installTest(name, { ignore: !CAN_UNSHARE }, async ({ pkg, root }) => {
    // A fake systemctl that logs its arguments; `is-active` answers as the case says.
    const fakeBin = join(root, "fake-bin");
    await Deno.mkdir(fakeBin, { recursive: true });
    const calls = join(root, "systemctl.log");
    await Deno.writeTextFile(
      join(fakeBin, "systemctl"),
      `#!/bin/sh\necho "$*" >> ${calls}\n` +
        `[ "$1" = is-active ] && exit ${state === "stopped" ? 3 : 0}\nexit 0\n`,
      { mode: 0o755 },
    );
    // The new version: refuses any config with `preview` in the "refused" case.
    await Deno.writeTextFile(
      join(pkg, "teleport-email"),
      `#!/bin/sh\n[ "$1" = preview ] && { echo 'smtp.host: is required' >&2; exit ${
        state === "refused" ? 1 : 0
      }; }\necho "teleport-email v0.0.0-test git:test deno0"\n`,
      { mode: 0o755 },
    );
    // systemd counts as booted when /run/systemd/system exists. All on tmpfs or a copy, in the
    // namespace only, so that nothing of the machine's is written: /run, the unit and data
    // directories, and /etc (a copy, holding the operator's config).
    const etc = join(root, "etc-copy");
    const script = [
      "set -e",
      `cp -a /etc ${etc} && mount --bind ${etc} /etc`,
      'echo "# the operator\'s config" > /etc/teleport-email.toml',
      "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system",
      "mount -t tmpfs tmpfs /etc/systemd/system",
      "mount -t tmpfs tmpfs /var/lib",
      `PATH=${fakeBin}:$PATH BINDIR=${root}/bin ${join(pkg, "install")}`,
    ].join("\n");
    const result = await run("unshare", ["-m", "--propagation", "private", "bash", "-c", script], {
      cwd: "/",
    });
    assert.equal(result.code, 0, result.stderr);
    const log = (await Deno.readTextFile(calls)).trim().split("\n");
    const checked = ["daemon-reload", "is-active --quiet teleport-email.service"];
    if (state === "running") {
      assert.deepEqual(log, [...checked, "try-restart teleport-email.service"]);
      assert.match(result.stdout, /Restarted teleport-email\.service/);
      assert.doesNotMatch(result.stdout, /enable --now/);
    } else if (state === "stopped") {
      assert.deepEqual(log, checked);
      assert.match(result.stdout, /sudo systemctl enable --now teleport-email/);
    } else {
      assert.deepEqual(log, checked, "not restarted");
      assert.match(
        result.stderr,
        /refuses \/etc\/teleport-email\.toml.*\n.*smtp\.host: is required/,
      );
      assert.match(result.stdout, /sudo systemctl restart teleport-email/);
    }
  });
}
