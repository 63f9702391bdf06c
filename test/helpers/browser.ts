import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's Chromium (`apt-get install -y chromium`; .ci/run installs it when missing). */
export const CHROMIUM = process.env.FLGLM_CHROMIUM ?? '/usr/bin/chromium';

/** Headless Chromium without a sandbox (root in CI), or one clear error naming the install. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}. Fix: apt-get install -y chromium (or set FLGLM_CHROMIUM)`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'], timeout: 30_000 });
}

/** Where screenshots go (dist/test-screenshots/, rebuilt with the tests). */
export function screenshotPath(name: string): string {
  const dir = join(process.cwd(), 'dist', 'test-screenshots');
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}

/**
 * Layout problems on the page as one list: an SVG text outside its SVG (a cut legend or label),
 * two tick labels of one axis overlapping, a chart narrower than 90% of its container.
 */
export function layoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(LAYOUT_CHECK) as Promise<string[]>;
}

// Page-side JavaScript (this project compiles without the DOM's types).
const LAYOUT_CHECK = `(() => {
  const out = [];
  [...document.querySelectorAll('svg.chart')].forEach((svg, k) => {
    const box = svg.getBoundingClientRect();
    const parent = svg.parentElement.getBoundingClientRect();
    if (box.width < 0.9 * parent.width) out.push('chart ' + k + ': ' + box.width + ' px wide in ' + parent.width);
    for (const t of svg.querySelectorAll('text')) {
      const r = t.getBoundingClientRect();
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        out.push('chart ' + k + ': "' + t.textContent + '" outside its chart');
    }
    const ticks = [...svg.querySelectorAll('text[text-anchor="end"]')].map((t) => t.getBoundingClientRect());
    for (let i = 0; i < ticks.length; i++)
      for (let j = i + 1; j < ticks.length; j++) {
        const [a, b] = [ticks[i], ticks[j]];
        if (a.bottom > b.top && b.bottom > a.top && a.right > b.left && b.right > a.left)
          out.push('chart ' + k + ': tick labels ' + i + ' and ' + j + ' overlap');
      }
  });
  return out;
})()`;
