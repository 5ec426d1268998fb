// A scientist's session in headless Chromium (Debian's), driven by
// playwright-core: log in to JupyterHub, pick the PyTorch profile, wait for
// JupyterLab, open a notebook, run a cell that trains a tiny torch model on a
// dataset that just landed (/data), save the notebook, stop the server from
// the hub's home page, start it again and open the notebook from the
// workspace.  Prints what it saw as JSON lines; screenshots into DIR.
//   node jupyterlab.js HUB_URL USER PASSWORD DATASET DIR
const { chromium } = require("playwright-core");
const [hub, user, password, dataset, dir] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
const cell = [
  "import csv, torch",
  `rows = list(csv.DictReader(open("/data/${dataset}")))`,
  'x = torch.tensor([[float(r["x"])] for r in rows]); y = torch.tensor([[float(r["y"])] for r in rows])',
  "torch.manual_seed(0); model = torch.nn.Linear(1, 1); opt = torch.optim.SGD(model.parameters(), lr=0.1)",
  "for step in range(300): opt.zero_grad(); loss = torch.nn.functional.mse_loss(model(x), y); loss.backward(); opt.step()",
  `print(f"{len(rows)} points from /data/${dataset}, torch {torch.__version__}")`,
  'print(f"learned y = {model.weight.item():.2f} x + {model.bias.item():.2f}, final loss {loss.item():.5f}")',
].join("\n");

async function pickProfile(page, slug) {
  await page.waitForSelector(`input[name=profile][value=${slug}]`, { timeout: 30000 });
  await page.check(`input[name=profile][value=${slug}]`);
  await page.screenshot({ path: `${dir}/1-profiles.png` });
  await page.click('#spawn_form input[type=submit], #spawn_form button[type=submit]');
}

async function waitLab(page) {
  await page.waitForURL(new RegExp(`/user/${user}/lab`), { timeout: 90000 });
  await page.waitForSelector(".jp-LauncherCard, .jp-DirListing-item", { timeout: 90000 });
}

let page;
(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  // script errors while a page is in use; JupyterLab's own, thrown while the
  // browser leaves it (requests cut short), are kept apart
  const errors = [], leaving = [];
  let phase = "hub";
  // JupyterLab 4.0's rename on first save can race its own checkpoint of
  // the old name (the server answers 500: the file was just renamed): kept
  // apart too, and shown
  const known = [];
  page.on("pageerror", (e) => {
    const m = `${e} (${phase}; ${String(e.stack || "").split("\n").slice(0, 3).join(" | ")})`;
    (phase === "leaving" ? leaving : phase === "save" && m.includes("createCheckpoint") ? known : errors).push(m);
  });
  // log in
  await page.goto(`${hub}/hub/login`);
  await page.fill("#username_input", user);
  await page.fill("#password_input", password);
  await page.click("#login_submit");
  // the profiles form, then JupyterLab
  const t0 = Date.now();
  await pickProfile(page, "pytorch");
  await waitLab(page);
  say({ lab: page.url(), seconds: (Date.now() - t0) / 1000 });
  phase = "lab";
  await page.screenshot({ path: `${dir}/2-jupyterlab.png` });
  // a new notebook, the cell, its output
  await page.click('.jp-LauncherCard[data-category="Notebook"]');
  await page.waitForSelector(".jp-Notebook .jp-Cell .cm-content", { timeout: 60000 });
  // the kernel up and idle before the cell runs
  await page.waitForSelector('#jp-main-statusbar :text("Idle")', { timeout: 60000 });
  await page.click(".jp-Notebook .jp-Cell .cm-content");
  await page.keyboard.insertText(cell);
  phase = "cell";
  await page.keyboard.press("Shift+Enter");
  const out = await page.waitForSelector('.jp-OutputArea-output:has-text("final loss")', { timeout: 120000 });
  say({ output: (await out.textContent()).trim() });
  // save; a first save may ask for a name
  phase = "save";
  await page.keyboard.press("Control+s");
  const dlg = await page.waitForSelector(".jp-Dialog input", { timeout: 10000 }).catch(() => null);
  if (dlg) {
    await dlg.fill("landed.ipynb");
    await page.keyboard.press("Enter");
    await page.waitForSelector(".jp-Dialog", { state: "detached", timeout: 10000 });
    await page.waitForSelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current:has-text("landed.ipynb")',
                              { timeout: 10000 });
  }
  await page.waitForFunction(() => !document.querySelector(".jp-mod-dirty"), null, { timeout: 20000 });
  const name = (await page.textContent("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel")).trim();
  // the news prompt (no network beyond the host anyway): no
  const no = await page.$('.jp-Notification-Toast-Close, .jp-toast-button:has-text("No")');
  if (no) await no.click().catch(() => null);
  say({ saved: name });
  await page.screenshot({ path: `${dir}/3-trained.png` });
  // stop the server from the hub, start it again
  phase = "leaving";
  for (let i = 0; i < 5; i++)
    if (await page.goto(`${hub}/hub/home`).then(() => true, () => false)) break;
  // the hub answered the stop: its page hides #stop (#start, "My Server",
  // is visible all along, so waiting for it did not wait at all, and the
  // next navigation could cancel the stop before it left the browser).  The
  // page's script binds #stop once require.js has loaded it: a click before
  // that does nothing (CI: no DELETE reached the hub in 60 s), so wait for
  // the page to settle, and click again while #stop stays.
  await page.waitForLoadState("networkidle", { timeout: 15000 }).catch(() => null);
  let stopped = false;
  for (let i = 0; i < 4 && !stopped; i++) {
    await page.click("#stop", { timeout: 5000 }).catch(() => null);
    stopped = await page.waitForSelector("#stop", { state: "hidden", timeout: 15000 }).then(() => true, () => false);
  }
  if (!stopped) throw new Error("the hub's page still shows Stop My Server after four clicks over a minute");
  say({ stopped: true });
  await page.screenshot({ path: `${dir}/4-stopped.png` });
  // Start My Server, then (JupyterHub 3) Launch Server, leads to the form;
  // while the hub still finishes the stop, the page says so: load it again
  let form = null;
  let cut = 0;
  for (let i = 0; i < 12 && !form && cut < 60; ) {
    // a navigation the hub's page starts itself (its stop-pending page reloads
    // itself) may cut this one short: try again, without counting it as a try
    if (!(await page.goto(`${hub}/hub/home`).then(() => true, () => false))) {
      cut++;
      await page.waitForTimeout(1000);
      continue;
    }
    i++;
    phase = "hub";
    await page.click("#start", { timeout: 5000 }).catch(() => null);
    const next = await page.waitForSelector('input[name=profile], a:has-text("Launch Server")', { timeout: 5000 })
      .catch(() => null);
    if (next && (await next.evaluate((e) => e.tagName)) === "A") {
      await next.click();
      form = await page.waitForSelector("input[name=profile]", { timeout: 5000 }).catch(() => null);
    } else {
      form = next;
    }
  }
  if (!form) throw new Error(`the spawn form did not come back after the stop (${cut} navigations cut short)`);
  await pickProfile(page, "pytorch");
  await waitLab(page);
  say({ restarted: page.url() });
  phase = "lab2";
  // the notebook is in the workspace, with its output
  const item = await page.waitForSelector(`.jp-DirListing-item:has-text("${name}")`, { timeout: 30000 });
  await item.dblclick();
  const again = await page.waitForSelector('.jp-OutputArea-output:has-text("final loss")', { timeout: 60000 });
  say({ reopened: name, output_again: (await again.textContent()).trim() });
  await page.screenshot({ path: `${dir}/5-reopened.png` });
  say({ errors, errors_while_leaving: leaving, jupyterlab_checkpoint_race: known });
  await browser.close();
})().catch(async (e) => {
  say({ failed: String(e) });
  if (page) await page.screenshot({ path: `${dir}/failed.png` }).catch(() => null);
  process.exit(1);
});
