// The dashboard in headless Chromium (Debian's), driven by playwright-core:
// load it with a token in the URL's fragment, see a transfer progress and a
// job finish, open the job's log and a dataset's provenance, save a
// screenshot.  Prints what it saw as JSON lines; exits non-zero on a timeout.
//   node dashboard.js URL SCREENSHOT
const { chromium } = require("playwright-core");
const [url, shot] = process.argv.slice(2);
(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url);
  const say = (o) => console.log(JSON.stringify(o));
  say({ title: await page.title(), url_after_load: page.url() });
  await page.waitForSelector("#health.ok", { timeout: 15000 });
  say({ site: await page.textContent("#site") });
  // a transfer in progress: its row with a progress bar
  await page.waitForSelector("#transfers tr:has(td.state-running) progress", { timeout: 20000 });
  say({ transfer_running: await page.textContent("#transfers tbody tr") });
  const rate = await page.textContent("#rate");
  say({ rate });
  // then done, and the job completed
  await page.waitForSelector("#transfers td.state-done", { timeout: 60000 });
  await page.waitForSelector("#jobs td.state-completed", { timeout: 60000 });
  say({ job_row: await page.textContent("#jobs tbody tr") });
  await page.click("#jobs tbody tr");
  await page.waitForFunction(() => document.querySelector("#log").textContent.includes("finished"), null, { timeout: 10000 });
  say({ log: await page.textContent("#log") });
  await page.waitForSelector("#datasets tbody tr", { timeout: 10000 });
  await page.click("#datasets tbody tr");
  await page.waitForFunction(() => !document.querySelector("#provenance").hidden, null, { timeout: 10000 });
  say({ provenance: (await page.textContent("#provenance")).slice(0, 300) });
  await page.screenshot({ path: shot, fullPage: true });
  say({ screenshot: shot, errors });
  await browser.close();
})().catch(async (e) => { console.log(JSON.stringify({ failed: String(e) })); process.exit(1); });
