import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { renderReport } from '../../src/report/html.js';
import { LiveSource } from '../../src/report/dashboard/run-source.js';
import { startDashboard } from '../../src/report/dashboard/server.js';
import { config, federate, TINY_RUN } from '../helpers/federation.js';
import { launchBrowser, layoutProblems, screenshotPath } from '../helpers/browser.js';
import { META, simulatedRecords } from '../helpers/run-records.js';

// Real headless Chromium (Debian's, driven by playwright-core): what a user sees, not the HTML text.

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

test('report.html in Chromium: charts take the width, legends whole, log ticks apart, tables folded', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'flglm-report-')), 'report.html');
  writeFileSync(
    file,
    renderReport({
      meta: { ...META, rounds: 20, clients: 3 },
      records: simulatedRecords({ clients: 3, rounds: 20, steps: 3 }),
      summary: {
        rounds: 20,
        steps: 180,
        tokens: 11520,
        wall_s: 12,
        tokens_per_s: 960,
        eval: { loss: 0.5, accuracy: 0.9 },
      },
      baselineLosses: Array.from({ length: 180 }, (_, i) => 5 * Math.exp(-0.03 * i) + 0.15),
      config: 'seed: 1',
    }),
  );
  for (const width of [1280, 420]) {
    const page = await browser.newPage({ viewport: { width, height: 900 } });
    await page.goto(`file://${file}`);
    expect(await layoutProblems(page)).toEqual([]);
    // The loss axis spans 0.15 to 5: labels below 1 and the decade.
    const ticks = await page.$$eval('svg.chart', (s) =>
      [...s[0].querySelectorAll('text[text-anchor="end"]')].map((t) => t.textContent),
    );
    expect(ticks).toEqual(expect.arrayContaining(['0.2', '0.5', '1', '2']));
    expect(await page.isVisible('text=20 rounds')).toBe(true); // the folded table's summary
    expect(await page.isVisible('td >> text=0.0 / 2.0')).toBe(false); // its rows stay folded
    const shot = screenshotPath(`report-${width}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    await page.close();
  }
});

test('the live dashboard of a 2-client run: the round counter advances, clients fill in, the timeline renders', async () => {
  const cfg = config(`${TINY_RUN}\nfederation: {clients: 2, rounds: 3, local_steps: 2, mode: sequential}\n`);
  const source = new LiveSource(cfg);
  const d = await startDashboard({ source, host: '127.0.0.1', port: 0, pollMs: 100 });
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  try {
    await page.goto(d.url);
    await page.waitForSelector('main[data-state="live"]', { timeout: 5000 });
    const seen = new Set<string>();
    const run = federate(cfg, {
      onMetric: (r) => source.push(r),
      onTimeline: (r) =>
        source.push({ type: 'timeline', ...r, end: Math.max(...Object.values(r.spans).map((s) => s[1])) }),
    });
    // Watch the page while the federation trains: every round counter it shows, as SSE brings records.
    let done = false;
    void run.finally(() => (done = true));
    while (!done) {
      const roundsDone = await page.$eval('main', (m) => m.dataset.roundsDone ?? '');
      if (roundsDone === '2' && !seen.has('2'))
        await page.screenshot({ path: screenshotPath('dashboard-mid-run.png'), fullPage: true }); // docs/dashboard.png
      seen.add(roundsDone);
      await new Promise((r) => setTimeout(r, 100));
    }
    await run;
    await page.waitForSelector('main[data-rounds-done="3"]', { timeout: 5000 });
    expect([...seen].filter((s) => ['1', '2'].includes(s)).length).toBeGreaterThan(0); // it moved while running
    expect(await page.textContent('[data-k="round"]')).toBe('3/3');
    const clients = await page.$$eval('#federation tr td:first-child', (tds) => tds.map((t) => t.textContent));
    expect(clients).toEqual(['insecure-alice', 'insecure-bob']);
    const bars = await page.$$eval('#timeline rect.span', (r) => r.map((x) => x.getAttribute('fill')));
    expect(bars).toEqual(expect.arrayContaining(['#1f77b4', '#d62728'])); // a head forward, a trunk forward
    expect(await page.$$eval('#timeline text', (t) => t.map((x) => x.textContent))).toContain('trunk 0');
    expect(await layoutProblems(page)).toEqual([]);
    await page.screenshot({ path: screenshotPath('dashboard-live.png'), fullPage: true });
  } finally {
    await page.close();
    await d.close();
  }
});
