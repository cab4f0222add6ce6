/**
 * Running programs to completion for black-box tests (the CLI, the build and
 * packaging scripts, `deno info`): exit code and output as text, stdin
 * closed. Test-only: never imported by the product.
 */

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` with `options` (stdin closed unless they say otherwise) and collects its output. */
export async function runCommand(cmd: string, options: Deno.CommandOptions): Promise<RunResult> {
  const output = await new Deno.Command(cmd, { stdin: "null", ...options }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

interface InfoModule {
  specifier: string;
  kind?: string;
  npmPackage?: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/** What `deno info --json path` says of the module graph. */
async function denoInfo(path: string): Promise<{
  modules: InfoModule[];
  redirects: Record<string, string>;
  roots: string[];
}> {
  const { code, stdout, stderr } = await runCommand(Deno.execPath(), {
    args: ["info", "--json", path],
    env: { DENO_NO_UPDATE_CHECK: "1" },
  });
  if (code !== 0) throw new Error(`deno info "${path}" failed: ${stderr}`);
  return JSON.parse(stdout);
}

/** The specifiers of every module `path` loads, itself included (`deno info --json`). */
export async function moduleGraph(path: string): Promise<string[]> {
  return (await denoInfo(path)).modules.map((m) => m.specifier);
}

/**
 * The npm packages (`name@version`) that loading `path` loads before any of
 * its code runs: those its static imports reach, type-only and dynamic
 * imports (`await import(...)`) not followed (`deno info --json`).
 */
export async function staticNpmPackages(path: string): Promise<string[]> {
  const { modules, redirects, roots } = await denoInfo(path);
  const bySpecifier = new Map(modules.map((m) => [m.specifier, m]));
  const packages = new Set<string>();
  const seen = new Set<string>();
  const stack = [...roots];
  while (stack.length > 0) {
    const specifier = stack.pop()!;
    const module = bySpecifier.get(redirects[specifier] ?? specifier);
    if (!module || seen.has(module.specifier)) continue;
    seen.add(module.specifier);
    if (module.kind === "npm" && module.npmPackage) packages.add(module.npmPackage);
    for (const dep of module.dependencies ?? []) {
      if (dep.code && !dep.isDynamic) stack.push(dep.code.specifier);
    }
  }
  return [...packages].sort();
}

/** Whether anything (a file, directory or link) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
