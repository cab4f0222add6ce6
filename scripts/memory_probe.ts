/**
 * What each part of the plugin costs in memory once loaded: resident set
 * size, V8 heap and external memory after importing, one after another, the
 * modules the running plugin loads (and, last, those it loads only when
 * configured). The breakdown behind the README's memory figures.
 *
 *   deno run -A scripts/memory_probe.ts
 *   DENO_V8_FLAGS=--max-semi-space-size=1 deno run -A scripts/memory_probe.ts
 */

const MIB = 1024 * 1024;
let last = Deno.memoryUsage().rss;

function show(label: string) {
  const m = Deno.memoryUsage();
  const delta = (m.rss - last) / MIB;
  last = m.rss;
  console.log(
    `${label.padEnd(34)} rss ${(m.rss / MIB).toFixed(1).padStart(6)} MiB` +
      ` (+${delta.toFixed(1).padStart(4)})  heap ${(m.heapUsed / MIB).toFixed(1).padStart(5)}` +
      ` / ${(m.heapTotal / MIB).toFixed(1).padStart(5)}  external ${(m.external / MIB).toFixed(1)}`,
  );
}

show("deno runtime");
await import("../src/config/load.ts");
show("config (smol-toml)");
await import("../src/lib/log.ts");
show("logging (LogTape, node compat)");
await import("../src/teleport/client.ts");
show("Teleport client (grpc-js, protobufjs)");
const { teleportProto } = await import("../src/teleport/proto.ts");
teleportProto();
show("proto schema built");
await import("../src/mail/smtp.ts");
show("SMTP mailer (nodemailer)");
await import("../src/notify/condition.ts");
show("rule conditions (re2js)");
await import("../src/plugin/run.ts");
show("notifier and wiring");
await import("../src/mail/mailgun.ts");
show("only with [mailgun]");
await import("../src/status/metrics.ts");
show("only with [status] (prom-client)");
await (await import("../src/notify/template.ts")).loadTemplateEngine();
show("only with [templates] (Handlebars)");
