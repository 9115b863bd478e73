// report.html in a real browser (issue 15 item 4): headless Chromium from
// apt (/usr/bin/chromium, scripts/setup.sh installs it) driven by
// playwright-core, on the report of a real training run and of
// `cmac eval localization --report`: no console errors, no network request,
// every chart drawn by uPlot with its series and ticks, hover values in the
// legend, the log-scale toggle. Screenshots go to the test's temp folder, and
// to docs/img/ with CMAC_UPDATE_DOCS_IMG=1.
/// <reference lib="dom" />
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { root, tmpDir } from './helpers';

const chromiumPath = process.env.CMAC_CHROMIUM ?? '/usr/bin/chromium';
const cli = path.join(root, 'dist', 'cli', 'main.js');
const run = (...args: string[]) => {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, MALLOC_ARENA_MAX: '1' } });
  if (r.status !== 0) throw new Error(`cmac ${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
};

interface ChartState {
  title: string;
  series: number;
  points: number;
  ticksX: number;
  ticksY: number;
  log: boolean;
  inked: number;
}

describe('report.html in headless Chromium', function () {
  this.timeout(600000);
  const dir = tmpDir('cmac-browser-');
  let browser: Browser | undefined;

  before(async function () {
    if (!fs.existsSync(chromiumPath)) {
      console.log(
        `    skipped: ${chromiumPath} is missing (install it with: bash scripts/setup.sh --browser, or apt-get install -y chromium; CMAC_CHROMIUM names another)`,
      );
      this.skip();
    }
    run('synth', '--out', path.join(dir, 'd'), '--clips', '24', '--size', '32', '--fps', '8', '--seconds', '2', '--quiet');
    run(
      'train',
      '--preset',
      'tiny',
      '--data',
      path.join(dir, 'd'),
      '--steps',
      '12',
      '--set',
      'data.batchSize=4',
      '--set',
      'train.logEvery=4',
      '--run-dir',
      path.join(dir, 'r'),
      '--quiet',
    );
    run(
      'eval',
      'localization',
      '--checkpoint',
      path.join(dir, 'r'),
      '--data',
      path.join(dir, 'd'),
      '--report',
      path.join(dir, 'eval.html'),
      '--quiet',
    );
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  after(async () => {
    await browser?.close();
  });

  /** Opens a report, recording console errors, page errors and any request that is not the file itself. */
  async function open(file: string): Promise<{ page: Page; errors: string[]; requests: string[] }> {
    const page = await browser!.newPage({ viewport: { width: 1150, height: 900 } });
    const errors: string[] = [],
      requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('request', (r) => {
      if (!r.url().startsWith('data:') && r.url() !== `file://${file}`) requests.push(r.url());
    });
    await page.goto(`file://${file}`, { waitUntil: 'load' });
    return { page, errors, requests };
  }

  const charts = (page: Page) =>
    page.evaluate(() =>
      Array.from(document.querySelectorAll<HTMLElement & { uplot?: any; ticks?: { x?: number; y?: number } }>('.cmac-chart')).map(
        (el): ChartState => {
          const u = el.uplot;
          const canvas = el.querySelector('canvas');
          let inked = 0;
          if (canvas) {
            const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
            for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0 && (px[i] < 200 || px[i + 2] < 200)) inked++;
          }
          return {
            title: el.querySelector('.u-title')?.textContent ?? '',
            series: u ? u.series.length - 1 : 0,
            points: u ? u.data[0].length : 0,
            ticksX: el.ticks?.x ?? 0,
            ticksY: el.ticks?.y ?? 0,
            log: !!u && u.scales.y.distr === 3,
            inked,
          };
        },
      ),
    );

  it('training report: 7 charts, one series each, real ticks, no console error or network request', async () => {
    const file = path.join(dir, 'r', 'report.html');
    const { page, errors, requests } = await open(file);
    const state = await charts(page);
    expect(state.map((c) => c.title)).to.deep.equal([
      'total loss',
      'L_con (cross-modal contrastive)',
      'L_v (visual attention consistency)',
      'L_a (audio attention consistency)',
      'gradient norm',
      'learning rate',
      'clips per second (data + step)',
    ]);
    for (const c of state) {
      expect(c.series, c.title).to.equal(1);
      expect(c.points, c.title).to.equal(12);
      expect(c.ticksX, c.title).to.be.within(3, 13);
      expect(c.ticksY, c.title).to.be.at.least(3);
      expect(c.inked, `${c.title}: drawn pixels`).to.be.greaterThan(500);
    }
    expect(state.find((c) => c.title === 'gradient norm')!.log).to.equal(true);
    // The log-scale toggle redraws the chart on a log axis; hovering fills the legend with values.
    const first = page.locator('.cmac-chart').first();
    await first.locator('input[type=checkbox]').check();
    expect((await charts(page))[0].log).to.equal(true);
    const before = await first.locator('.u-legend .u-series').nth(1).locator('.u-value').textContent();
    const over = await first.locator('.u-over').boundingBox();
    await page.mouse.move(over!.x + over!.width / 2, over!.y + over!.height / 2);
    const after = await first.locator('.u-legend .u-series').nth(1).locator('.u-value').textContent();
    expect(before).to.equal('-');
    expect(Number(after)).to.be.greaterThan(0);
    const html = await page.content();
    expect(html).to.not.include('<td>{}</td>');
    expect(await page.locator('.cmac-cfg table').count()).to.be.at.least(5);
    expect(errors).to.deep.equal([]);
    expect(requests).to.deep.equal([]);
    await page.mouse.move(0, 0);
    await shot(page, 'report-training.png', { x: 0, y: 0, width: 1150, height: 1500 });
    await page.close();
  });

  it("every y axis has at least 3 ticks, whatever the value range (ranges that gave uPlot's default spacing 2)", async () => {
    const { lineChart, writeReport } = await import('../lib/report');
    const ranges: Array<[number, number]> = [
      [14.7, 33.2],
      [0.9, 2.1],
      [101, 187],
      [3.3, 3.9],
      [0, 41],
      [7.2, 19.9],
    ];
    const html = ranges
      .map(([lo, hi], k) =>
        lineChart([{ name: 'v', points: Array.from({ length: 12 }, (_, i) => [i + 1, lo + ((hi - lo) * i) / 11] as [number, number]) }], {
          title: `range ${k}`,
        }),
      )
      .join('');
    const file = path.join(dir, 'ticks.html');
    writeReport(file, 'ticks', [{ title: 'ranges', html }]);
    const { page, errors } = await open(file);
    const state = await charts(page);
    expect(state).to.have.length(ranges.length);
    for (const c of state) expect(c.ticksY, `${c.title}: y ticks`).to.be.at.least(3);
    expect(errors).to.deep.equal([]);
    await page.close();
  });

  it('evaluation report: titled localisation panels, frequency maps, PCA scatter; no console error', async () => {
    const file = path.join(dir, 'eval.html');
    const { page, errors, requests } = await open(file);
    const imgs = await page.evaluate(() =>
      Array.from(document.querySelectorAll('img')).map((i) => ({
        w: i.naturalWidth,
        h: i.naturalHeight,
        ok: i.complete && i.naturalWidth > 0,
      })),
    );
    expect(imgs.length).to.be.at.least(6); // best and worst localisation panels, frequency maps
    for (const i of imgs) expect(i.ok).to.equal(true);
    const svgs = await page.evaluate(() =>
      Array.from(document.querySelectorAll('svg')).map((s) => {
        const r = s.getBoundingClientRect(),
          frame = s.querySelector('rect.plot')!.getBoundingClientRect();
        const dots = Array.from(s.querySelectorAll('circle.dot')).map((c) => c.getBoundingClientRect());
        return {
          w: r.width,
          dots: dots.length,
          inside: dots.every(
            (d) => d.left >= frame.left - 0.5 && d.right <= frame.right + 0.5 && d.top >= frame.top - 0.5 && d.bottom <= frame.bottom + 0.5,
          ),
        };
      }),
    );
    expect(svgs).to.have.length(2);
    for (const s of svgs) {
      expect(s.dots).to.be.greaterThan(2);
      expect(s.inside).to.equal(true);
    }
    expect(errors).to.deep.equal([]);
    expect(requests).to.deep.equal([]);
    const examples = await page.locator('section', { hasText: 'Localisation examples' }).boundingBox();
    await shot(page, 'report-eval.png', { x: 0, y: examples!.y, width: 1150, height: Math.min(560, examples!.height) });
    await page.close();
  });

  async function shot(page: Page, name: string, clip: { x: number; y: number; width: number; height: number }): Promise<void> {
    const file = path.join(dir, name);
    await page.screenshot({ path: file, clip, fullPage: true });
    const png = fs.readFileSync(file);
    expect(png.subarray(1, 4).toString('latin1')).to.equal('PNG');
    if (process.env.CMAC_UPDATE_DOCS_IMG === '1') fs.copyFileSync(file, path.join(root, 'docs', 'img', name));
  }
});
