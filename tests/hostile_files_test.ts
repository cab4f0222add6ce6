/**
 * Black-box: `teleport-email start` pointed at files that are not small
 * regular files (`/dev/zero`, a FIFO, a file over its limit) as the config,
 * a secret file, the SMTP CA file or the identity. Each must end at once with
 * exit 1 and an error naming the key and the limit, without growing the
 * process (reading `/dev/zero` to the end took 2.5 GB in 2 s) and without
 * blocking (opening a FIFO waits for a writer, for ever, and then SIGTERM was
 * not honoured either).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
/** A run that has not ended by then hangs (startup of `deno run` included). */
const HANG_MS = 20_000;
/** Resident memory a refused file may cost at most (a Deno process starts at ~100 MB). */
const RSS_LIMIT_BYTES = 400 * 1024 * 1024;
/** How often the child's memory is sampled. */
const SAMPLE_MS = 20;

interface Outcome {
  code: number | undefined;
  stderr: string;
  /** Largest resident set seen, in bytes. */
  peakRss: number;
  /** Why the child was killed, if it was. */
  killed?: string;
}

async function makeFifo(path: string): Promise<boolean> {
  try {
    return (await new Deno.Command("mkfifo", { args: [path] }).output()).code === 0;
  } catch {
    return false;
  }
}

function rssOf(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    return kb === undefined ? 0 : Number(kb) * 1024;
  } catch {
    return 0;
  }
}

/** Runs `main.ts start --config <config>` in `dir`; kills it when it hangs or grows. */
async function start(config: string, dir: string): Promise<Outcome> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "start", "--config", config],
    cwd: dir,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let peakRss = 0;
  let killed: string | undefined;
  const kill = (why: string) => {
    if (killed !== undefined) return;
    killed = why;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  };
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, rssOf(child.pid));
    if (peakRss > RSS_LIMIT_BYTES) kill(`resident memory over ${RSS_LIMIT_BYTES} bytes`);
  }, SAMPLE_MS);
  const deadline = setTimeout(() => kill(`still running after ${HANG_MS} ms`), HANG_MS);
  const status = await child.status;
  clearInterval(sampler);
  clearTimeout(deadline);
  return {
    code: killed === undefined ? status.code : undefined,
    stderr: await stderr,
    peakRss,
    ...(killed === undefined ? {} : { killed }),
  };
}

/** A valid config with `[smtp]`, where `smtp` adds or overrides lines and `identity` is the path. */
function configText(
  o: { identity: string; smtp?: string; mailgun?: string; extra?: string },
): string {
  const mailer = o.mailgun ?? [
    "[smtp]",
    `host = "smtp.example.com"`,
    `username = "teleport"`,
    o.smtp ?? `password = "not-used"`,
  ].join("\n");
  return [
    "[teleport]",
    `addr = "127.0.0.1:1"`,
    `identity = ${JSON.stringify(o.identity)}`,
    "",
    mailer,
    "",
    "[delivery]",
    `sender = "noreply@example.com"`,
    "",
    "[role_to_recipients]",
    `"*" = ["ops@example.com"]`,
    ...(o.extra === undefined ? [] : ["", o.extra]),
  ].join("\n") + "\n";
}

Deno.test({
  name: "hostile files: /dev/zero, FIFOs and oversized files end the start at once, named",
  ignore: Deno.build.os !== "linux",
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "hostile_files_" });
    try {
      const fifo = `${dir}/fifo`;
      const haveFifo = await makeFifo(fifo);
      const big = `${dir}/big.toml`;
      await Deno.writeTextFile(big, configText({ identity: "/id" }) + "#".repeat(1024 * 1024));
      const bigIdentity = `${dir}/big_identity`;
      // Sparse: 5 MiB that cost no disk.
      using file = await Deno.open(bigIdentity, { write: true, create: true });
      await file.truncate(5 * 1024 * 1024);

      const write = async (name: string, text: string) => {
        const path = `${dir}/${name}.toml`;
        await Deno.writeTextFile(path, text);
        return path;
      };
      const cases: Array<
        [name: string, config: () => Promise<string>, error: string, fifo?: true]
      > = [
        [
          "the config is /dev/zero",
          () => Promise.resolve("/dev/zero"),
          'Cannot read config file "/dev/zero": is a character device, not a regular file',
        ],
        [
          "the config is a FIFO",
          () => Promise.resolve(fifo),
          `Cannot read config file "${fifo}": is a FIFO (named pipe), not a regular file`,
          true,
        ],
        [
          "the config is over 1 MiB",
          () => Promise.resolve(big),
          `Cannot read config file "${big}": is larger than the 1 MiB limit`,
        ],
        [
          "smtp.password_file is /dev/zero",
          () =>
            write("pw_zero", configText({ identity: "/id", smtp: `password_file = "/dev/zero"` })),
          'smtp.password_file: cannot read "/dev/zero": is a character device, not a regular file',
        ],
        [
          "smtp.password_file is a FIFO",
          () =>
            write("pw_fifo", configText({ identity: "/id", smtp: `password_file = "${fifo}"` })),
          `smtp.password_file: cannot read "${fifo}": is a FIFO (named pipe), not a regular file`,
          true,
        ],
        [
          "smtp.password_file is over 64 KiB",
          () => write("pw_big", configText({ identity: "/id", smtp: `password_file = "${big}"` })),
          `smtp.password_file: cannot read "${big}": is larger than the 64 KiB limit`,
        ],
        [
          "smtp.ca_file is /dev/zero",
          () =>
            write(
              "ca_zero",
              configText({ identity: "/id", smtp: `password = "p"\nca_file = "/dev/zero"` }),
            ),
          'smtp.ca_file: cannot read "/dev/zero": is a character device, not a regular file',
        ],
        [
          "mailgun.private_key_file is a FIFO",
          () =>
            write(
              "mg_fifo",
              configText({
                identity: "/id",
                mailgun: `[mailgun]\ndomain = "mg.example.com"\nprivate_key_file = "${fifo}"`,
              }),
            ),
          `mailgun.private_key_file: cannot read "${fifo}": is a FIFO (named pipe), not a regular file`,
          true,
        ],
        [
          "the identity is /dev/zero",
          () => write("id_zero", configText({ identity: "/dev/zero" })),
          'Cannot read identity file "/dev/zero" (teleport.identity): is a character device, ' +
          "not a regular file",
        ],
        [
          "the identity is a FIFO",
          () => write("id_fifo", configText({ identity: fifo })),
          `Cannot read identity file "${fifo}" (teleport.identity): is a FIFO (named pipe), ` +
          "not a regular file",
          true,
        ],
        [
          // Opening a FIFO for writing waits for a reader: the start hung before its first line.
          "log.output is a FIFO",
          () =>
            write("log_fifo", configText({ identity: "/id", extra: `[log]\noutput = "${fifo}"` })),
          `Cannot use log file "${fifo}" (log.output): it is a FIFO (named pipe), not a regular file`,
          true,
        ],
        [
          "the identity is over 4 MiB",
          () => write("id_big", configText({ identity: bigIdentity })),
          `Cannot read identity file "${bigIdentity}" (teleport.identity): ` +
          "is larger than the 4 MiB limit",
        ],
      ];
      // One child per case, all at once: each is a `deno run` start-up.
      const outcomes = await Promise.all(
        cases.map(async ([, config, , needsFifo]) =>
          needsFifo && !haveFifo ? undefined : start(await config(), dir)
        ),
      );
      for (const [i, [name, , error, needsFifo]] of cases.entries()) {
        await t.step({
          name,
          ignore: needsFifo === true && !haveFifo,
          fn() {
            const outcome = outcomes[i]!;
            assert.equal(outcome.killed, undefined, `${outcome.killed}\n${outcome.stderr}`);
            assert.equal(outcome.code, 1, outcome.stderr);
            assert.ok(outcome.stderr.includes(error), outcome.stderr);
            assert.ok(outcome.peakRss < RSS_LIMIT_BYTES, `peak RSS ${outcome.peakRss}`);
          },
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
