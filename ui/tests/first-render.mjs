// Time to first meaningful render of the dashboard: headless Chromium (Debian's) opens the
// UI already signed in, cold each time (a new browser context: no cache), and the clock runs
// from the navigation's start until the dashboard shows every container running and every
// host up — the figures a user opens the page for. Prints each run and the median.
//
//   DROVER_URL=http://127.0.0.1:PORT DROVER_TOKEN=... CONTAINERS=1000 HOSTS=50 [RUNS=5] \
//   node tests/first-render.mjs
import { launch } from './chromium.mjs';

const URL_ = process.env.DROVER_URL;
const TOKEN = process.env.DROVER_TOKEN;
const containers = Number(process.env.CONTAINERS ?? 0);
const hosts = Number(process.env.HOSTS ?? 0);
const runs = Number(process.env.RUNS ?? 5);
if (!URL_ || !TOKEN || !containers || !hosts) {
  console.error('set DROVER_URL, DROVER_TOKEN, CONTAINERS and HOSTS');
  process.exit(2);
}

const browser = await launch();
const times = [];
try {
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    await context.addInitScript((t) => sessionStorage.setItem('drover.token', t), TOKEN);
    const page = await context.newPage();
    await page.goto(`${URL_}/`);
    await page.waitForFunction(
      ([c, h]) => {
        const text = document.querySelector('section.tiles')?.textContent ?? '';
        return text.includes(`${c}/${c}`) && text.includes(`${h}/${h}`);
      },
      [containers, hosts],
      { polling: 'raf', timeout: 60_000 },
    );
    const ms = await page.evaluate(() => performance.now());
    const rows = await page.locator('tbody tr').count();
    times.push(ms);
    console.log(`run ${i + 1}: dashboard with ${containers} containers on ${hosts} hosts rendered in ${ms.toFixed(0)} ms (${rows} table rows)`);
    await context.close();
  }
} finally {
  await browser.close();
}
times.sort((a, b) => a - b);
console.log(
  `time to first meaningful render of the dashboard (${containers} containers, ${hosts} hosts): median ${times[Math.floor(times.length / 2)].toFixed(0)} ms, best ${times[0].toFixed(0)} ms, worst ${times[times.length - 1].toFixed(0)} ms over ${times.length} cold loads`,
);
