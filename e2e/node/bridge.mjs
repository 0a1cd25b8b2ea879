// bridge.mjs drives Firefox or WebKit for the Go e2e tests, which keep every
// assertion: the tests talk to it over stdin and stdout, one JSON object per
// line. A request is {"id", "op", ...}; the answer is {"id", "value"} or
// {"id", "error"}. The operations are the few a test needs: launch the
// browser, open a tab, navigate, evaluate an expression (JSON in, JSON out),
// click, close the tab, quit.
//
// Firefox is driven with puppeteer-core over WebDriver BiDi (Debian has no
// geckodriver; Firefox speaks BiDi itself), WebKit with the `webdriver`
// client over W3C WebDriver to WebKitWebDriver, which the Go test starts
// (under Xvfb: MiniBrowser has no headless mode).
import readline from "node:readline";
import puppeteer from "puppeteer-core";
import WebDriver from "webdriver";

// stdout carries the answers and nothing else: the libraries' logs go to
// stderr, which the test keeps for its error messages.
const out = process.stdout.write.bind(process.stdout);
for (const level of ["log", "info", "debug", "warn", "error", "trace"]) {
  console[level] = (...args) => process.stderr.write(args.join(" ") + "\n");
}
process.stdout.write = process.stderr.write.bind(process.stderr);

// One driver per bridge process, set by launch.
let driver;

// firefox keeps each tab in a browser context of its own (a private
// window): no cookies, cache or connections from another test.
function firefox() {
  let browser;
  const tabs = new Map();
  let next = 0;
  return {
    async launch({ executablePath, profile }) {
      browser = await puppeteer.launch({
        browser: "firefox",
        executablePath,
        headless: true,
        acceptInsecureCerts: true,
        userDataDir: profile,
        protocolTimeout: 60_000,
      });
      return browser.version();
    },
    async open() {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      tabs.set(++next, { context, page });
      return next;
    },
    async navigate({ tab, url }) {
      await tabs.get(tab).page.goto(url, { waitUntil: "load" });
    },
    async eval({ tab, expr }) {
      // JSON.stringify in the page: the test gets exactly what the page
      // computed, whatever the protocol's value encoding.
      return tabs.get(tab).page.evaluate(`Promise.resolve(${expr}).then((v) => JSON.stringify(v === undefined ? null : v))`);
    },
    async click({ tab, selector }) {
      await tabs.get(tab).page.click(selector);
    },
    async close({ tab }) {
      const t = tabs.get(tab);
      tabs.delete(tab);
      if (t) await t.context.close();
    },
    async quit() {
      if (browser) await browser.close();
    },
  };
}

// webkit opens each tab as a window of the one session. WebDriver has no
// private windows: closing a tab deletes the cookies of localhost (every
// test origin is localhost, cookies ignore the port), so the next test
// starts without them.
function webkit() {
  let client;
  let home;
  const tabs = new Map();
  let next = 0;
  const use = async (tab) => {
    await client.switchToWindow(tabs.get(tab));
  };
  return {
    async launch({ port, executablePath }) {
      client = await WebDriver.newSession({
        hostname: "127.0.0.1",
        port,
        path: "/",
        logLevel: "error",
        connectionRetryCount: 0,
        capabilities: {
          acceptInsecureCerts: true,
          // Classic WebDriver only: WebKitWebDriver has no BiDi, and
          // asking for it (webSocketUrl) fails the capability match.
          "wdio:enforceWebDriverClassic": true,
          "webkitgtk:browserOptions": { binary: executablePath, args: ["--automation"] },
        },
      });
      home = await client.getWindowHandle();
      return client.capabilities.browserVersion;
    },
    async open() {
      const { handle } = await client.createWindow("tab");
      tabs.set(++next, handle);
      return next;
    },
    async navigate({ tab, url }) {
      await use(tab);
      await client.navigateTo(url);
    },
    async eval({ tab, expr }) {
      await use(tab);
      // Execute Script waits for a returned promise.
      return client.executeScript(`return Promise.resolve(${expr}).then((v) => JSON.stringify(v === undefined ? null : v))`, []);
    },
    async click({ tab, selector }) {
      await use(tab);
      const el = await client.findElement("css selector", selector);
      await client.elementClick(el["element-6066-11e4-a52e-4f735466cecf"]);
    },
    async close({ tab }) {
      const handle = tabs.get(tab);
      tabs.delete(tab);
      if (!handle) return;
      await client.switchToWindow(handle);
      await client.deleteAllCookies();
      await client.closeWindow();
      await client.switchToWindow(home);
    },
    async quit() {
      if (client) await client.deleteSession();
    },
  };
}

const ops = {
  async launch(req) {
    driver = req.engine === "firefox" ? firefox() : req.engine === "webkit" ? webkit() : null;
    if (!driver) throw new Error(`unknown engine ${req.engine}`);
    return driver.launch(req);
  },
  open: (req) => driver.open(req),
  navigate: (req) => driver.navigate(req),
  eval: (req) => driver.eval(req),
  click: (req) => driver.click(req),
  close: (req) => driver.close(req),
  async quit() {
    if (driver) await driver.quit();
    setImmediate(() => process.exit(0));
  },
};

const answer = (msg) => out(JSON.stringify(msg) + "\n");

readline.createInterface({ input: process.stdin }).on("line", async (line) => {
  let req;
  try {
    req = JSON.parse(line);
    const op = ops[req.op];
    if (!op) throw new Error(`unknown op ${req.op}`);
    const value = await op(req);
    answer({ id: req.id, value: value ?? null });
  } catch (err) {
    answer({ id: req?.id, error: String(err?.stack || err) });
  }
});
// The test binary went away: do not outlive it with a browser.
process.stdin.on("end", async () => {
  try {
    if (driver) await driver.quit();
  } finally {
    process.exit(0);
  }
});
