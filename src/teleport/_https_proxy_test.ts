import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type Env, httpsProxyFor } from "./_https_proxy.ts";

Deno.test("httpsProxyFor follows Go's httpproxy rules", () => {
  const P = "http://proxy.corp:3128";
  const cases: [addr: string, env: Env, want: string | undefined][] = [
    ["auth.example.com:3025", {}, undefined],
    ["auth.example.com:3025", { HTTPS_PROXY: P }, "http://proxy.corp:3128"],
    ["auth.example.com:3025", { https_proxy: P }, "http://proxy.corp:3128"],
    // Uppercase wins; an empty value counts as unset.
    [
      "a.example.com:443",
      { HTTPS_PROXY: P, https_proxy: "http://other:1" },
      "http://proxy.corp:3128",
    ],
    ["a.example.com:443", { HTTPS_PROXY: "", https_proxy: "http://other:1" }, "http://other:1"],
    // HTTP_PROXY is for http:// URLs only.
    ["a.example.com:443", { HTTP_PROXY: P, http_proxy: P }, undefined],
    // Scheme-less values are http://, default port 80.
    ["a.example.com:443", { HTTPS_PROXY: "proxy.corp:3128" }, "http://proxy.corp:3128"],
    ["a.example.com:443", { HTTPS_PROXY: "http://proxy.corp" }, "http://proxy.corp:80"],
    ["a.example.com:443", { HTTPS_PROXY: "http://[fd00::1]:3128" }, "http://[fd00::1]:3128"],
    // Never for localhost and loopback.
    ["localhost:3025", { HTTPS_PROXY: P }, undefined],
    ["127.0.0.1:3025", { HTTPS_PROXY: P }, undefined],
    ["127.1.2.3:3025", { HTTPS_PROXY: P }, undefined],
    ["[::1]:3025", { HTTPS_PROXY: P }, undefined],
    // NO_PROXY (uppercase wins over lowercase).
    ["a.example.com:443", { HTTPS_PROXY: P, NO_PROXY: "*" }, undefined],
    ["a.example.com:443", { HTTPS_PROXY: P, no_proxy: "example.com" }, undefined],
    ["example.com:443", { HTTPS_PROXY: P, NO_PROXY: "example.com" }, undefined],
    ["notexample.com:443", { HTTPS_PROXY: P, NO_PROXY: "example.com" }, P],
    ["a.example.com:443", { HTTPS_PROXY: P, NO_PROXY: ".example.com" }, undefined],
    ["example.com:443", { HTTPS_PROXY: P, NO_PROXY: ".example.com" }, P],
    ["a.example.com:443", { HTTPS_PROXY: P, NO_PROXY: "*.example.com" }, undefined],
    ["A.Example.COM:443", { HTTPS_PROXY: P, NO_PROXY: " other.org , EXAMPLE.com " }, undefined],
    ["a.example.com:443", { HTTPS_PROXY: P, NO_PROXY: "example.com:443" }, undefined],
    ["a.example.com:3025", { HTTPS_PROXY: P, NO_PROXY: "example.com:443" }, P],
    ["a.example.com:443", { HTTPS_PROXY: P, NO_PROXY: "other.org", no_proxy: "*" }, P],
    ["10.1.2.3:3025", { HTTPS_PROXY: P, NO_PROXY: "10.0.0.0/8" }, undefined],
    ["11.1.2.3:3025", { HTTPS_PROXY: P, NO_PROXY: "10.0.0.0/8" }, P],
    ["10.1.2.3:3025", { HTTPS_PROXY: P, NO_PROXY: "10.1.2.3" }, undefined],
    ["10.1.2.3:3025", { HTTPS_PROXY: P, NO_PROXY: "10.1.2.3:3025" }, undefined],
    ["10.1.2.3:443", { HTTPS_PROXY: P, NO_PROXY: "10.1.2.3:3025" }, P],
    ["[2001:db8::5]:443", { HTTPS_PROXY: P, NO_PROXY: "2001:db8::/32" }, undefined],
    ["[2001:db8::5]:443", { HTTPS_PROXY: P, NO_PROXY: "[2001:db8::5]:443" }, undefined],
    ["[2001:db9::5]:443", { HTTPS_PROXY: P, NO_PROXY: "2001:db8::/32" }, P],
    ["[::ffff:10.1.2.3]:443", { HTTPS_PROXY: P, NO_PROXY: "10.0.0.0/8" }, undefined],
  ];
  for (const [addr, env, want] of cases) {
    assert.equal(httpsProxyFor(addr, env)?.display, want, `${addr} ${JSON.stringify(env)}`);
  }
  const withAuth = httpsProxyFor("a.example.com:443", {
    HTTPS_PROXY: "http://us%40r:p%3Ass@p:8080",
  });
  assert.equal(withAuth?.authorization, "Basic " + Buffer.from("us@r:p:ss").toString("base64"));
  assert.equal(withAuth?.display, "http://p:8080", "credentials must stay out of the display form");
  assert.throws(
    () => httpsProxyFor("a.example.com:443", { HTTPS_PROXY: "socks5://p:1080" }),
    /Unsupported HTTPS_PROXY scheme "socks5:"/,
  );
});

Deno.test("HTTPS_PROXY spellings the URL parser reads as they are stay so", () => {
  for (const value of ["http:/proxy:3128", "http:proxy:3128", "proxy:3128", "//proxy:3128"]) {
    assert.equal(
      httpsProxyFor("a.example.com:443", { HTTPS_PROXY: value })?.display,
      "http://proxy:3128",
      value,
    );
  }
  // A host named like a scheme the URL parser knows is still a host, as Go reads it.
  for (const host of ["ftp", "ws", "wss"]) {
    assert.equal(
      httpsProxyFor("a.example.com:443", { HTTPS_PROXY: `${host}:3128` })?.display,
      `http://${host}:3128`,
    );
  }
});

Deno.test("an HTTPS_PROXY that is not a URL is named without its password", () => {
  for (
    const [value, shown] of [
      ["alice:S3cr3tPw@[proxy:3128", "[redacted]@[proxy:3128"],
      // An impossible port is refused, not re-read as a proxy named "http".
      ["http://alice:S3cr3tPw@proxy.corp:99999", "http://[redacted]@proxy.corp:99999"],
    ]
  ) {
    let error: unknown;
    try {
      httpsProxyFor("a.example.com:443", { HTTPS_PROXY: value });
    } catch (e) {
      error = e;
    }
    const text = `${(error as Error).message} ${Deno.inspect(error)}`;
    assert.ok(!text.includes("S3cr3tPw"), text);
    assert.equal(
      (error as Error).message,
      `Invalid HTTPS_PROXY ${JSON.stringify(shown)}: not a URL`,
    );
  }
});
