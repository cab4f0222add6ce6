/**
 * `scripts/build.sh`, black-box, in a scratch repository (the real scripts,
 * install.sh, unit and build_info.ts; a stand-in main.ts and README): it
 * refuses to start without a Deno runtime (denort) before anything can reach
 * the network, stamps GIT_REF only for the build, and with DENORT_BIN builds
 * and packs the host's target end to end.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exists, runCommand, type RunResult } from "./command.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const HOST_TARGET = `${Deno.build.arch}-unknown-linux-gnu`;
const HOST_ARCH = Deno.build.arch === "x86_64" ? "amd64" : "arm64";
const TAG = "v1.2.3-stamp-check";

/** Runs build.sh with the caller's environment minus DENORT_BIN, TARGETS and DENO_DIR, plus `env`. */
async function build(repo: string, env: Record<string, string> = {}): Promise<RunResult> {
  const base = Deno.env.toObject();
  for (
    const name of [
      "DENORT_BIN",
      "ALLOW_DENORT_DOWNLOAD",
      "TARGETS",
      "DENO_DIR",
      "OUT_DIR",
      "DENO_COMPILE_FLAGS",
    ]
  ) {
    delete base[name];
  }
  return await runCommand("bash", {
    args: [join(repo, "scripts/build.sh")],
    cwd: "/",
    env: { ...base, DENO: Deno.execPath(), NO_COLOR: "1", ...env },
    clearEnv: true,
  });
}

async function git(repo: string, ...args: string[]): Promise<void> {
  const output = await new Deno.Command("git", {
    args: [
      "-c",
      "user.name=test",
      "-c",
      "user.email=test@example.com",
      "-c",
      "commit.gpgsign=false",
    ]
      .concat(args),
    cwd: repo,
    stdout: "null",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
}

/** A scratch repository; `main` is the entry point's source. */
async function scratch(main: string): Promise<{ dir: string; repo: string; buildInfo: string }> {
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-build-" });
  const repo = join(dir, "repo");
  await Deno.mkdir(join(repo, "scripts"), { recursive: true });
  await Deno.mkdir(join(repo, "src/lib"), { recursive: true });
  for (
    const file of [
      "scripts/build.sh",
      "scripts/pack.sh",
      "install.sh",
      "teleport-email.service",
      "src/lib/build_info.ts",
    ]
  ) {
    await Deno.copyFile(join(REPO, file), join(repo, file));
  }
  await Deno.writeTextFile(join(repo, "README.md"), "# stand-in README\n");
  await Deno.writeTextFile(join(repo, "deno.json"), JSON.stringify({ version: "1.2.3" }, null, 2));
  await Deno.writeTextFile(join(repo, "main.ts"), main);
  await Deno.writeTextFile(join(repo, ".gitignore"), "dist/\n");
  const buildInfo = await Deno.readTextFile(join(repo, "src/lib/build_info.ts"));
  return { dir, repo, buildInfo };
}

const MAIN = 'import { GIT_REF } from "./src/lib/build_info.ts";\nconsole.log(GIT_REF);\n';

function cachePath(denoDir: string, target: string): string {
  return join(denoDir, "dl/release", `v${Deno.version.deno}`, `denort-${target}.zip`);
}

Deno.test("build.sh without DENORT_BIN or a cached runtime stops before compiling and says how to fix it", async () => {
  const { dir, repo, buildInfo } = await scratch(MAIN);
  try {
    const denoDir = join(dir, "deno-dir");
    await Deno.mkdir(denoDir);
    const out = join(dir, "dist");
    const result = await build(repo, { DENO_DIR: denoDir, OUT_DIR: out });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /DENORT_BIN=\/path\/to\/denort/);
    assert.ok(
      result.stderr.includes(`"${cachePath(denoDir, "x86_64-unknown-linux-gnu")}"`),
      result.stderr,
    );
    assert.doesNotMatch(result.stderr + result.stdout, /Download|Compile|Check/);
    assert.equal(await Deno.readTextFile(join(repo, "src/lib/build_info.ts")), buildInfo);
    assert.equal(await exists(out), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build.sh checks the cached runtime of every target before building any", async () => {
  const { dir, repo } = await scratch(MAIN);
  try {
    const denoDir = join(dir, "deno-dir");
    const x86 = cachePath(denoDir, "x86_64-unknown-linux-gnu");
    await Deno.mkdir(join(x86, ".."), { recursive: true });
    await Deno.writeFile(x86, new Uint8Array());
    const result = await build(repo, { DENO_DIR: denoDir, OUT_DIR: join(dir, "dist") });
    assert.equal(result.code, 1);
    assert.ok(
      result.stderr.includes(`"${cachePath(denoDir, "aarch64-unknown-linux-gnu")}"`),
      result.stderr,
    );
    assert.equal(await exists(join(dir, "dist")), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build.sh refuses DENORT_BIN for several targets, a missing DENORT_BIN and unknown targets", async () => {
  const { dir, repo } = await scratch(MAIN);
  try {
    const two = await build(repo, { DENORT_BIN: Deno.execPath() });
    assert.equal(two.code, 1);
    assert.match(two.stderr, /DENORT_BIN is one runtime binary for one target, but TARGETS has 2/);

    const missing = await build(repo, {
      DENORT_BIN: join(dir, "denort"),
      TARGETS: "x86_64-unknown-linux-gnu",
    });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /DENORT_BIN=".*\/denort" is not an executable file/);

    const unknown = await build(repo, { TARGETS: "x86_64-apple-darwin" });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unsupported target "x86_64-apple-darwin"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build.sh restores build_info.ts when the build fails", async () => {
  const { dir, repo, buildInfo } = await scratch(`${MAIN}const broken: number = "not a number";\n`);
  try {
    const result = await build(repo, {
      DENORT_BIN: Deno.execPath(),
      TARGETS: HOST_TARGET,
      OUT_DIR: join(dir, "dist"),
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /GIT_REF=unknown/); // not a git repository
    assert.match(result.stderr, /TS2322/);
    assert.equal(await Deno.readTextFile(join(repo, "src/lib/build_info.ts")), buildInfo);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A scratch copy of the real program (entry, sources, config, lock) and the
 * packaging files, as a git repository whose HEAD is tagged TAG.
 */
async function programScratch(): Promise<{ dir: string; repo: string; buildInfo: string }> {
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-build-" });
  const repo = join(dir, "repo");
  await Deno.mkdir(repo);
  const copy = [
    "main.ts",
    "deno.json",
    "deno.lock",
    "src",
    "proto",
    "scripts",
    "install.sh",
    "teleport-email.service",
    "README.md",
  ];
  for (const path of copy) {
    if (!(await exists(join(REPO, path)))) continue;
    const cp = await new Deno.Command("cp", { args: ["-a", join(REPO, path), repo] }).output();
    assert.equal(cp.code, 0, new TextDecoder().decode(cp.stderr));
  }
  if (!(await exists(join(repo, "README.md")))) {
    await Deno.writeTextFile(join(repo, "README.md"), "# stand-in README\n");
  }
  await Deno.writeTextFile(join(repo, ".gitignore"), "dist/\n");
  await git(repo, "init", "-q");
  await git(repo, "add", "-A");
  await git(repo, "commit", "-q", "-m", "scratch");
  await git(repo, "tag", TAG);
  const buildInfo = await Deno.readTextFile(join(repo, "src/lib/build_info.ts"));
  return { dir, repo, buildInfo };
}

Deno.test("build.sh with DENORT_BIN compiles the real program for the host with the git ref stamped, then packs it", async () => {
  const { dir, repo, buildInfo } = await programScratch();
  try {
    // Deno's own binary stands in for denort: the output runs as plain deno,
    // but checking, compiling (with every npm package), stamping and packing
    // are all exercised.
    const result = await build(repo, { DENORT_BIN: Deno.execPath(), TARGETS: HOST_TARGET });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, new RegExp(`GIT_REF=${TAG}\\b`));

    const binary = join(repo, "dist", HOST_ARCH, "teleport-email");
    assert.equal((await Deno.stat(binary)).mode! & 0o111, 0o111);
    const grep = await new Deno.Command("grep", {
      args: ["-q", "-a", "-F", `GIT_REF = "${TAG}"`, binary],
    }).output();
    assert.equal(grep.code, 0, "the compiled binary does not embed the stamped GIT_REF");

    const version = (JSON.parse(await Deno.readTextFile(join(repo, "deno.json"))) as {
      version: string;
    }).version;
    const tarball = join(
      repo,
      "dist",
      `teleport-access-email-v${version}-linux-${HOST_ARCH}-bin.tar.gz`,
    );
    assert.equal(result.stdout.trim(), tarball);
    const listing = await new Deno.Command("tar", { args: ["-tzf", tarball] }).output();
    assert.ok(
      new TextDecoder().decode(listing.stdout).includes("teleport-access-email/teleport-email\n"),
    );

    assert.equal(await Deno.readTextFile(join(repo, "src/lib/build_info.ts")), buildInfo);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
