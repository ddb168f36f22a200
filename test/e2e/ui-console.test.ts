import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { parse, stringify } from '../support/yaml';
import { ledgerPath, openLedger, type SqliteLedger } from '../../src/ledger';
import { controlFile, dropFile, MESHD, RECEIVER, ROOT, SENDER, startDaemonEnv, type DaemonEnv } from '../integration/support/daemon-env';

/**
 * The web console in Debian's chromium (driven by playwright-core), against a ledger filled by a
 * real daemon cycle with the simulator. Screenshots go to test-artifacts/ui/ (git-ignored).
 */

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts', 'ui');
const AXE = join(ROOT, 'node_modules', 'axe-core', 'axe.min.js');
const XSS_NAME = '<img src=x onerror=alert(1)>';
const SCRIPT_SUBJECT = '</script><script>alert(2)</script>';
const PAGES = ['/', '/messages', '/attention'];

interface Console {
  child: ChildProcess;
  url: string;
  base: string;
  stderr: () => string;
}

/** Starts `meshd ui` as a process and waits for its one line: {"url": …}. */
function startConsole(configPath: string): Promise<Console> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MESHD, '--config', configPath, '--json', 'ui', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MESHD_LOG_FORMAT: 'json' } });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => {
      stdout += d;
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n')) {
        const url = JSON.parse(line).url as string;
        resolve({ child, url, base: new URL(url).origin, stderr: () => stderr });
      }
    });
    child.on('exit', (code) => reject(new Error(`meshd ui exited ${code}: ${stderr}`)));
  });
}

function stopConsole(c: Console | undefined): Promise<void> {
  if (!c || c.child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    c.child.once('exit', () => resolve());
    c.child.kill('SIGTERM');
  });
}

describe('meshd ui: the web console in a real browser', function () {
  this.timeout(120_000);
  let env: DaemonEnv;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let main: Console;
  let readOnly: Console | undefined;
  let db: string;
  const dialogs: string[] = [];
  const review: number[] = [];

  function withLedger<T>(fn: (l: SqliteLedger) => T): T {
    const l = openLedger(db);
    try {
      return fn(l);
    } finally {
      l.close();
    }
  }

  async function screenshot(p: Page, name: string): Promise<void> {
    await p.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  }

  async function newPage(ctx: BrowserContext): Promise<Page> {
    const p = await ctx.newPage();
    p.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    return p;
  }

  before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the console's browser tests need Debian's chromium (apt-get install chromium)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    env = await startDaemonEnv();
    // A real cycle: three files sent by the sender's daemon and received by the receiver's.
    const out = env.folder(SENDER, 'out');
    dropFile(out, 'referral-1.dat', 'MSH|synthetic referral\r');
    dropFile(out, 'referral-1.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW', '<Subject>first referral</Subject><LocalId>ref-1</LocalId>'));
    dropFile(out, 'clinic-list.dat', 'synthetic clinic list');
    dropFile(out, 'clinic-list.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW', `<Subject>${SCRIPT_SUBJECT.replace(/</g, '&lt;').replace(/>/g, '&gt;')}</Subject>`));
    dropFile(out, `${XSS_NAME}.dat`, 'synthetic');
    dropFile(out, `${XSS_NAME}.ctl`, controlFile(RECEIVER, 'TEST_WORKFLOW'));
    // An empty file cannot be sent: the daemon moves it to failed/ with a .reason file.
    dropFile(out, 'empty.dat', '');
    dropFile(out, 'empty.ctl', controlFile(RECEIVER, 'TEST_WORKFLOW'));
    for (const mb of [SENDER, RECEIVER, SENDER]) {
      const d = await env.daemon(mb);
      try {
        await d.runOnce();
      } finally {
        await d.stop();
      }
    }
    db = ledgerPath((await env.config(SENDER)).dataDir);
    // Two uploads whose outcome was unknown (as after a lost connection): only a person settles them.
    withLedger((l) => {
      // A REPORT about the first referral, as MESH would send for a non-delivery.
      const referral = l.list({}).find((r) => r.fileName === 'referral-1.dat')!;
      l.insertMessage({ direction: 'in', mailbox: SENDER, state: 'delivered', messageType: 'REPORT', messageId: 'REPORT0001', linkedMessageId: referral.messageId, reportCode: '14' });
      for (const name of ['review-me.dat', 'review-me-too.dat']) {
        const row = l.insertMessage({ direction: 'out', mailbox: SENDER, state: 'queued', peer: RECEIVER, workflowId: 'TEST_WORKFLOW', fileName: name });
        l.transition(row.id, 'needs_review', { patch: { errorCode: 'MESH_AMBIGUOUS', errorText: 'connection lost during the first upload' } });
        review.push(row.id);
      }
    });
    main = await startConsole(env.configPath[SENDER]);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    context = await browser.newContext();
    page = await newPage(context);
  });

  after(async () => {
    await browser?.close();
    await stopConsole(main);
    await stopConsole(readOnly);
    await env?.close();
  });

  it('without the session every page answers 401, and a wrong token is refused', async () => {
    for (const path of [...PAGES, `/messages/${review[0]}`, '/messages?state=failed']) {
      const res = await fetch(main.base + path, { redirect: 'manual' });
      expect(res.status, path).to.equal(401);
      expect(res.headers.get('content-security-policy')).to.include("default-src 'self'");
    }
    const wrong = await fetch(`${main.base}/?token=${'A'.repeat(43)}`, { redirect: 'manual' });
    expect(wrong.status).to.equal(401);
    expect(wrong.headers.get('set-cookie')).to.equal(null);
    const post = await fetch(`${main.base}/messages/${review[0]}/resolve`, { method: 'POST', body: 'as=sent&note=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(post.status).to.equal(401);
  });

  it('keeps the login token in dataDir/ui.token, mode 0600', async () => {
    const file = join((await env.config(SENDER)).dataDir, 'ui.token');
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    expect(main.url).to.equal(`${main.base}/?token=${readFileSync(file, 'utf8').trim()}`);
    expect(main.base).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('the login URL opens the overview, sets an HttpOnly SameSite=Strict cookie and drops the token from the address bar', async () => {
    await page.goto(main.url);
    expect(page.url()).to.equal(`${main.base}/`);
    expect(await page.locator('h1').textContent()).to.equal('Overview');
    expect(await page.locator(`h2#mb-${SENDER}`).textContent()).to.include(SENDER);
    const [cookie] = await context.cookies();
    expect(cookie).to.include({ name: 'meshd_session', httpOnly: true, sameSite: 'Strict' });
    // The chart is drawn from the real cycle's events: three messages sent in this hour.
    expect(await page.locator('#hourly-caption').textContent()).to.include('3 sent');
    await screenshot(page, 'overview');
  });

  it('lists the rows of a real daemon cycle; a filter narrows the table; a message page shows its event timeline', async () => {
    await page.goto(`${main.base}/messages`);
    const files = await page.locator('table.messages td.file').allTextContents();
    expect(files).to.include.members(['referral-1.dat', 'clinic-list.dat', `${XSS_NAME}.dat`, 'review-me.dat']);
    await screenshot(page, 'messages');

    await page.fill('#f-fileName', 'referral');
    await page.selectOption('#f-state', 'sent');
    await Promise.all([page.waitForURL(/fileName=referral/), page.click('form.filters button[type=submit]')]);
    expect(await page.locator('table.messages td.file').allTextContents()).to.deep.equal(['referral-1.dat']);

    await page.locator('table.messages tbody a').first().click();
    expect(await page.locator('h1').textContent()).to.match(/^Message \d+$/);
    const timeline = await page.locator('ol.timeline li').allTextContents();
    expect(timeline.some((t) => t.includes('claiming'))).to.equal(true);
    expect(timeline.some((t) => t.includes('sent'))).to.equal(true);
    expect(await page.locator('.facts').textContent()).to.include('ref-1');
    expect(await page.locator('section[aria-labelledby=reports] table').textContent()).to.include('REPORT0001');
    // Payloads hold patient data: no preview unless ui.showPayloads is on.
    expect(await page.locator('#payload').count()).to.equal(0);
    await screenshot(page, 'message');
  });

  it('renders a hostile file name and a </script> subject as text, and no dialog opens', async () => {
    await page.goto(`${main.base}/messages`);
    expect(await page.locator('table.messages td.file', { hasText: XSS_NAME }).count()).to.equal(1);
    expect(await page.locator('main img').count()).to.equal(0);
    const id = withLedger((l) => l.list({}).find((r) => r.subject === SCRIPT_SUBJECT)!.id);
    await page.goto(`${main.base}/messages/${id}`);
    expect(await page.locator('.facts').textContent()).to.include(SCRIPT_SUBJECT);
    expect(await page.locator('script').count()).to.equal(1); // only /static/console.js
    expect(dialogs).to.deep.equal([]);
  });

  it('resolve on a needs_review row (by keyboard) changes its state in the ledger, recorded as done through the console', async () => {
    await page.goto(`${main.base}/attention`);
    await screenshot(page, 'attention');
    const id = review[0];
    // By keyboard alone: the skip link first, then the radio (Space) and the note (Enter submits).
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as any).document.activeElement.textContent)).to.equal('Skip to content');
    await page.focus(`#as-sent-${id}`);
    await page.keyboard.press('Space');
    await page.focus(`#note-${id}`);
    await page.keyboard.type('seen in the MESH UI, ticket 1234');
    await Promise.all([page.waitForURL(new RegExp(`/messages/${id}\\?done=resolve`)), page.keyboard.press('Enter')]);
    expect(await page.locator('.notice').textContent()).to.include('recorded in the history');
    withLedger((l) => {
      expect(l.get(id)!.state).to.equal('sent');
      expect(l.events(id).at(-1)).to.deep.include({ type: 'operator_resolve', toState: 'sent', detail: { as: 'sent', note: 'seen in the MESH UI, ticket 1234', via: 'console' } });
    });
  });

  it('a failed message shows its .reason file, and retry through the console queues it again', async () => {
    const id = withLedger((l) => l.list({ state: 'failed' }).find((r) => r.fileName === 'empty.dat')!.id);
    await page.goto(`${main.base}/messages/${id}`);
    expect(await page.locator('pre.reason').textContent()).to.match(/^[A-Z_]+: .+/);
    await page.fill(`#note-${id}`, 'sender will fix the file');
    await Promise.all([page.waitForURL(new RegExp(`/messages/${id}\\?done=retry`)), page.click(`form[action="/messages/${id}/retry"] button`)]);
    withLedger((l) => {
      expect(l.get(id)!.state).to.equal('queued');
      expect(l.events(id).at(-1)).to.deep.include({ type: 'operator_retry', toState: 'queued' });
      expect(l.events(id).at(-1)!.detail).to.include({ note: 'sender will fix the file', via: 'console' });
    });
  });

  it('refuses the same POST without the CSRF token (403) and leaves the row alone', async () => {
    const id = review[1];
    for (const form of [{ as: 'sent', note: 'forged' }, { as: 'sent', note: 'forged', csrf: 'x'.repeat(43) }] as Array<Record<string, string>>) {
      const res = await context.request.post(`${main.base}/messages/${id}/resolve`, { form, maxRedirects: 0 });
      expect(res.status()).to.equal(403);
    }
    withLedger((l) => expect(l.get(id)!.state).to.equal('needs_review'));
  });

  it('refuses a resolve without a note', async () => {
    const id = review[1];
    await page.goto(`${main.base}/attention`);
    const csrf = await page.locator(`form[action="/messages/${id}/resolve"] input[name=csrf]`).getAttribute('value');
    const res = await context.request.post(`${main.base}/messages/${id}/resolve`, { form: { as: 'failed', note: '  ', csrf: csrf! }, maxRedirects: 0 });
    expect(res.status()).to.equal(400);
    withLedger((l) => expect(l.get(id)!.state).to.equal('needs_review'));
  });

  it('has no serious or critical axe-core violations on any page, and reflows at 200% zoom', async () => {
    const id = review[0];
    const checked = await browser.newContext({ bypassCSP: true, storageState: await context.storageState() });
    try {
      const p = await newPage(checked);
      for (const path of [...PAGES, `/messages/${id}`]) {
        await p.goto(main.base + path);
        expect(await p.locator('h1').count(), path).to.equal(1);
        await p.addScriptTag({ path: AXE });
        const violations = await p.evaluate(async () => {
          const result = await (globalThis as any).axe.run((globalThis as any).document);
          return (result.violations as Array<{ id: string; impact: string; nodes: Array<{ target: string[] }> }>)
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
        });
        expect(violations, path).to.deep.equal([]);
        // 200% zoom of a 1280-pixel window: the page reflows instead of scrolling sideways.
        await p.setViewportSize({ width: 640, height: 800 });
        const overflow = await p.evaluate(() => {
          const root = (globalThis as any).document.documentElement;
          return root.scrollWidth - root.clientWidth;
        });
        expect(overflow, `${path} at 200%`).to.be.at.most(0);
        await p.setViewportSize({ width: 1280, height: 720 });
      }
    } finally {
      await checked.close();
    }
  });

  it('readOnly hides the buttons and refuses the POST; showPayloads shows a preview under a warning', async () => {
    const doc = parse(readFileSync(env.configPath[SENDER], 'utf8'));
    doc.ui = { readOnly: true, showPayloads: true, port: 0 };
    const path = join(env.dir, 'readonly.yaml');
    writeFileSync(path, stringify(doc));
    readOnly = await startConsole(path);
    // Same data dir, same token: meshd run and meshd ui share ui.token.
    expect(new URL(readOnly.url).searchParams.get('token')).to.equal(new URL(main.url).searchParams.get('token'));
    const ctx = await browser.newContext();
    try {
      const p = await newPage(ctx);
      await p.goto(readOnly.url);
      await p.goto(`${readOnly.base}/attention`);
      expect(await p.locator('main').textContent()).to.include('review-me-too.dat');
      expect(await p.locator('main form[method=post]').count()).to.equal(0);
      expect(await p.locator('main button').count()).to.equal(0);
      await p.goto(`${readOnly.base}/messages/${review[1]}`);
      expect(await p.locator('main form[method=post]').count()).to.equal(0);
      // showPayloads: the preview, under a visible warning.
      const sent = withLedger((l) => l.list({}).find((r) => r.fileName === 'referral-1.dat')!.id);
      await p.goto(`${readOnly.base}/messages/${sent}`);
      expect(await p.locator('#payload ~ .warning').isVisible()).to.equal(true);
      expect(await p.locator('#payload ~ .warning').textContent()).to.include('patient data');
      expect(await p.locator('pre.payload').textContent()).to.equal('MSH|synthetic referral\n'); // HTML turns CR into LF
      const res = await ctx.request.post(`${readOnly.base}/messages/${review[1]}/resolve`, { form: { as: 'sent', note: 'x', csrf: 'x' }, maxRedirects: 0 });
      expect(res.status()).to.equal(403);
      expect(await res.text()).to.include('read-only');
    } finally {
      await ctx.close();
    }
    withLedger((l) => expect(l.get(review[1])!.state).to.equal('needs_review'));
  });

  it('rate-limits failed logins and logs them', async () => {
    const base = readOnly!.base;
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await fetch(`${base}/?token=wrong${i}`, { redirect: 'manual' })).status);
    expect(statuses).to.deep.equal([401, 401, 401, 401, 401, 429, 429]);
    // Even the right token waits out the window once the address is blocked.
    expect((await fetch(readOnly!.url, { redirect: 'manual' })).status).to.equal(429);
    await new Promise((r) => setTimeout(r, 200));
    const events = readOnly!.stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l).event);
    expect(events.filter((e) => e === 'UI_LOGIN_FAILED')).to.have.length(5);
    expect(events).to.include('UI_LOGIN_BLOCKED');
    expect(readOnly!.stderr()).not.to.include(new URL(readOnly!.url).searchParams.get('token')!);
    expect(dialogs).to.deep.equal([]);
  });
});
