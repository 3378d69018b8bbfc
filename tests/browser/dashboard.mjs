// Drives Debian's Chromium (headless) through every dashboard page and checks what a person
// would see: the key figures against the seeded data, a link from the traces table to a
// trace, a filter applied through the form, the hostile trace inert, no console errors, no
// dialogs, no failed requests. Saves a screenshot of each page.
//
// Run by crates/glassbox-server/tests/it/dashboard/browser.rs, which seeds a store, serves
// the dashboard and passes:
//   GLASSBOX_DASHBOARD_URL     http://127.0.0.1:PORT
//   GLASSBOX_DASHBOARD_EXPECT  a JSON file with the expected figures
//   GLASSBOX_SCREENSHOTS       where to save the screenshots
//   GLASSBOX_ADMIN_TOKEN       optional: sign in through the login form first
//   CHROMIUM                   optional: the browser (default /usr/bin/chromium)
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const base = process.env.GLASSBOX_DASHBOARD_URL;
const expect = JSON.parse(readFileSync(process.env.GLASSBOX_DASHBOARD_EXPECT, 'utf8'));
const shots = process.env.GLASSBOX_SCREENSHOTS;
const token = process.env.GLASSBOX_ADMIN_TOKEN;
mkdirSync(shots, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), 'glassbox-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
  viewport: { width: 1400, height: 900 },
});
const problems = [];
let passed = 0;
const page = context.pages()[0] ?? await context.newPage();
// A loaded CI machine (2 cores, parallel builds) can be slow; a hung page still fails.
page.setDefaultTimeout(60_000);
page.setDefaultNavigationTimeout(60_000);
page.on('console', (msg) => { if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`); });
page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
page.on('dialog', async (dialog) => { problems.push(`dialog opened: ${dialog.message()}`); await dialog.dismiss(); });
page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));
page.on('response', (response) => { if (response.status() >= 400) problems.push(`HTTP ${response.status()} for ${response.url()}`); });

async function check(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (error) {
    problems.push(`${name}: ${error.message}`);
    console.log(`not ok - ${name}: ${error.message}`);
  }
}
const text = async (selector) => (await page.locator(selector).first().textContent())?.trim();
// Whole pages, except where a page is as tall as Chromium's limit for one capture (the hostile
// trace with every span open, some 15,000 px): capturing that took over 60 s on a loaded CI
// machine, so it gets the viewport; what it must prove is asserted on the DOM, not the image.
const shot = (name, { fullPage = true } = {}) => page.screenshot({ path: join(shots, `${name}.png`), fullPage });

try {
  if (token) {
    await check('signing in through the form', async () => {
      await page.goto(`${base}/dashboard`);
      assert.match(page.url(), /\/dashboard\/login$/);
      await shot('login');
      await page.fill('input[name=token]', token);
      await Promise.all([page.waitForURL(/\/dashboard$/), page.click('button[type=submit]')]);
    });
  }

  await check('overview figures', async () => {
    await page.goto(`${base}/dashboard`);
    assert.equal(await text('#stat-requests'), expect.requests);
    assert.equal(await text('#stat-error-rate'), expect.error_rate);
    assert.equal(await text('#stat-blocked'), expect.blocked);
    assert.equal(await text('#stat-refused'), expect.refused);
    assert.equal(await text('#stat-cost'), expect.cost);
    assert.equal(await text('#stat-p50'), expect.p50);
    assert.equal(await page.locator('figure.chart svg rect.bar').count() > 0, true, 'charts have bars');
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    await shot('overview');
  });

  await check('traces table, newest first', async () => {
    await page.goto(`${base}/dashboard/traces`);
    const ids = await page.locator('tr.trace-row').evaluateAll((rows) => rows.map((row) => row.dataset.traceId));
    assert.deepEqual(ids, expect.first_page);
    await shot('traces');
  });

  await check('next page by cursor', async () => {
    await Promise.all([page.waitForURL(/after=/), page.click('#next-page')]);
    const first = await page.locator('tr.trace-row').first().getAttribute('data-trace-id');
    assert.equal(first, expect.second_page_first);
    await page.goto(`${base}/dashboard/traces`);
  });

  await check('a filter applied through the form', async () => {
    await page.fill('input[name=agent]', expect.filter_agent);
    await page.selectOption('select[name=status]', 'error');
    await Promise.all([page.waitForURL(/agent=/), page.click('#trace-filters button[type=submit]')]);
    assert.match(page.url(), /status=error/);
    const agents = await page.locator('tr.trace-row td:nth-child(2)').allTextContents();
    assert.equal(agents.length, expect.filter_count);
    assert.ok(agents.every((agent) => agent.trim() === expect.filter_agent));
    const statuses = await page.locator('tr.trace-row .status').allTextContents();
    assert.ok(statuses.every((status) => status === 'error'));
    assert.equal(await page.inputValue('input[name=agent]'), expect.filter_agent, 'the form keeps the filter');
    await shot('traces-filtered');
  });

  await check('from the table to one trace', async () => {
    await page.goto(`${base}/dashboard/traces`);
    await Promise.all([page.waitForURL(/\/dashboard\/traces\/[0-9a-f]{32}$/), page.locator('a.trace-link').first().click()]);
    assert.equal(await text('#trace-id'), expect.trace.id);
    assert.equal(await text('#trace-span-count'), expect.trace.span_count);
    assert.equal(await text('#trace-cost'), expect.trace.cost);
    assert.equal(await page.locator('#waterfall li.span').count(), Number(expect.trace.span_count));
    // Open every span's details (plain <details>, no script).
    for (const summary of await page.locator('#waterfall summary').all()) await summary.click();
    assert.ok(await page.locator('pre.message.prompt').count() > 0, 'the prompt is shown');
    await shot('trace');
  });

  await check('the hostile trace renders inert', async () => {
    await page.goto(`${base}/dashboard/traces/${expect.hostile.id}`);
    assert.equal(await text('#trace-agent'), expect.hostile.agent);
    for (const summary of await page.locator('#waterfall summary').all()) await summary.click();
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    assert.equal(await page.locator('main script, main img, main iframe, main style').count(), 0);
    assert.ok(!(await page.content()).includes('sk-live-must-never-render'));
    await shot('trace-hostile', { fullPage: false });
  });

  await check('cost totals and CSV', async () => {
    await page.goto(`${base}/dashboard/cost`);
    assert.equal(await text('#cost-total'), expect.cost_total);
    assert.equal(await text('#cost-calls'), expect.calls);
    const href = await page.locator('#cost-by-agent a.csv').getAttribute('href');
    const csv = await (await page.request.get(new URL(href, base).toString())).text();
    assert.match(csv.split('\n')[0], /^agent,calls,input_tokens,output_tokens,cached_input_tokens,cost_usd$/);
    await shot('cost');
  });

  await check('latency per agent and model', async () => {
    await page.goto(`${base}/dashboard/latency`);
    for (const agent of expect.agents) {
      assert.ok(await page.locator(`svg[aria-label="${agent}"]`).count() === 1, `chart of ${agent}`);
    }
    assert.ok(await page.locator('polyline.line.p99').count() > 0);
    await shot('latency');
  });

  if (expect.pages) {
    const pages = expect.pages;
    await check('evals: pass rate per scorer, runs, online scores', async () => {
      await page.goto(`${base}/dashboard`);
      await Promise.all([page.waitForURL(/\/dashboard\/evals$/), page.click('header.top nav a[href="/dashboard/evals"]')]);
      assert.equal(await page.locator('tr.eval-run-row').count(), pages.runs);
      const chart = page.locator(`figure.rates[data-suite="${pages.suite}"]`);
      assert.equal(await chart.locator('polyline.line').count(), 3, 'overall and two scorers');
      assert.equal(await text('#online-scored'), pages.online_scored);
      assert.equal(await page.evaluate(() => window.pwned), undefined);
      await shot('evals');
    });

    await check('evals: from a run to its cases against the baseline', async () => {
      await Promise.all([page.waitForURL(/\/dashboard\/evals\/runs\//), page.locator(`tr.eval-run-row[data-run-id="${pages.latest_run}"] a.run-link`).click()]);
      assert.equal(await text('#eval-run-id'), pages.latest_run);
      assert.equal(await text('#eval-pass-rate'), pages.latest_pass_rate);
      assert.equal(await text('#eval-regressions'), pages.regressions);
      assert.equal(await text('#eval-fixes'), pages.fixes);
      await page.selectOption('select[name=show]', 'all');
      await Promise.all([page.waitForURL(/show=all/), page.click('#eval-run-filters button[type=submit]')]);
      assert.equal(await page.locator('tr.case-row').count(), 12);
      assert.equal(await page.evaluate(() => window.pwned), undefined);
      assert.equal(await page.locator('main script, main img, main iframe').count(), 0);
      await shot('eval-run');
    });

    await check('workflows: runs with status and their traces', async () => {
      await page.goto(`${base}/dashboard/workflows`);
      assert.equal(await text('#workflow-runs'), pages.workflow_runs);
      assert.equal(await text('#workflow-failed'), pages.failed_runs);
      assert.equal(await page.evaluate(() => window.pwned), undefined);
      await shot('workflows');
      await Promise.all([
        page.waitForURL(new RegExp(`/dashboard/traces/${pages.traced_trace}$`)),
        page.locator(`tr.workflow-row[data-run-id="${pages.traced_run}"] a.trace-link`).first().click(),
      ]);
      assert.equal(await text('#trace-id'), pages.traced_trace);
      await page.goto(`${base}/dashboard/workflows`);
      await page.selectOption('#workflow-filters select[name=status]', 'failed');
      await Promise.all([page.waitForURL(/status=failed/), page.click('#workflow-filters button[type=submit]')]);
      assert.equal(await page.locator('tr.workflow-row').count(), Number(pages.failed_runs));
    });

    await check('budgets and keys: usage against limits, no secret', async () => {
      await page.goto(`${base}/dashboard/budgets`);
      const acme = page.locator('tr.tenant-row[data-id="acme"] td.day-tokens');
      const usage = (await acme.textContent()).replace(/\s+/g, ' ');
      assert.ok(usage.includes(pages.acme_day_tokens) && usage.includes(pages.acme_day_percent), usage);
      assert.ok(await page.locator('svg.meter rect.meter-fill').count() > 0, 'meters drawn');
      assert.ok(!(await page.content()).includes(pages.secret));
      assert.equal(await page.evaluate(() => window.pwned), undefined);
      await shot('budgets');
    });
  }

  await check('the range picker keeps its choice in the URL', async () => {
    await page.goto(`${base}/dashboard`);
    await page.selectOption('select[name=range]', '7d');
    await Promise.all([page.waitForURL(/range=7d/), page.click('form.filters button[type=submit]')]);
    assert.equal(await text('#stat-requests'), expect.requests);
  });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

for (const problem of problems) console.log(`problem: ${problem}`);
const failed = problems.length;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
