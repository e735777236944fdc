// Browser tests of the web UI: headless Chromium (Debian's, never Playwright's own download)
// driven by playwright-core through the main flows against a running Drover, with an axe-core
// accessibility check of each page (no serious or critical violations) and a screenshot of
// each page. The browser reaches only loopback: other hosts do not resolve and any request
// off 127.0.0.1 is aborted (and fails the test).
//
//   DROVER_URL=http://127.0.0.1:PORT DROVER_ADMIN=user:password DROVER_VIEWER=user:password \
//   [DROVER_RESTRICTED=user:password] SCREENSHOTS=dir node tests/browser.mjs
// The admin user must be an admin; the viewer read-only in `default`, the restricted user
// restricted there. Needs the image
// drover-test/app:1 (scripts/build-test-images.sh).
import { launch } from './chromium.mjs';
import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const URL_ = process.env.DROVER_URL;
const [adminUser, adminPw] = (process.env.DROVER_ADMIN ?? '').split(/:(.*)/s);
const [viewerUser, viewerPw] = (process.env.DROVER_VIEWER ?? '').split(/:(.*)/s);
const [restrictedUser, restrictedPw] = (process.env.DROVER_RESTRICTED ?? '').split(/:(.*)/s);
const SHOTS = process.env.SCREENSHOTS ?? 'target/ui-screenshots';
const STACK = process.env.STACK ?? `uitest${Date.now() % 100000}`;
const T = 60_000;
if (!URL_ || !adminUser || !viewerUser) {
  console.error('set DROVER_URL, DROVER_ADMIN=user:pw and DROVER_VIEWER=user:pw');
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });

const started = Date.now();
const step = (s) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${s}`);
const offLoopback = [];
const consoleErrors = [];
const axeProblems = [];

const browser = await launch();

async function newPage(viewport = { width: 1366, height: 900 }) {
  const context = await browser.newContext({ viewport });
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.hostname === '127.0.0.1' || u.protocol === 'data:') return route.continue();
    offLoopback.push(u.href);
    return route.abort();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

/** axe-core on the page as it is: serious and critical violations fail the run. */
async function axe(page, name) {
  await page.evaluate(AXE);
  const res = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  for (const v of res) {
    const line = `${name}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(', ')}`;
    if (v.impact === 'serious' || v.impact === 'critical') axeProblems.push(line);
    else console.log(`  axe (${v.impact}): ${line}`);
  }
}

async function signIn(page, user, pw) {
  await page.goto(URL_ + '/');
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(pw);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
}

const BROKEN = `services:
  web:
    image: drover-test/app:1
    ports: ["not-a-port"]
`;
const FIXED = `services:
  web:
    image: drover-test/app:1
    command: ["serve"]
    healthcheck:
      test: ["CMD", "/app", "health", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 2s
      retries: 5
    stop_grace_period: 1s
`;

let failed = null;
try {
  const page = await newPage();

  step('sign in: a wrong password shows the API error');
  await page.goto(URL_ + '/');
  await page.getByRole('heading', { name: 'Sign in to Drover' }).waitFor();
  await axe(page, 'sign-in');
  await shot(page, '01-sign-in');
  await page.getByLabel('User name').fill(adminUser);
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  step(`  error shown: ${await page.getByRole('alert').innerText()}`);
  await signIn(page, adminUser, adminPw);
  await axe(page, 'dashboard');
  await shot(page, '02-dashboard');

  step('deploy: a file with an error, shown at its line, then fixed');
  await page.getByRole('link', { name: 'Deploy', exact: true }).click();
  await page.getByLabel('Stack name').fill(STACK);
  await page.getByLabel('Compose file', { exact: true }).fill(BROKEN);
  await page.getByRole('button', { name: 'Deploy' }).click();
  const err = page.locator('#compose-error');
  await err.waitFor();
  const errText = await err.innerText();
  if (!/Line 4, column \d+/.test(errText) || !errText.includes('not-a-port')) throw new Error(`deploy error not at its line: ${errText}`);
  if ((await page.locator('.gutter .err').innerText()) !== '4') throw new Error('line 4 not marked');
  step(`  error: ${errText.replace(/\n/g, ' ')}`);
  await axe(page, 'deploy-error');
  await shot(page, '03-deploy-error');
  await page.getByLabel('Compose file', { exact: true }).fill(FIXED);
  await page.getByRole('button', { name: 'Deploy' }).click();
  await page.getByRole('heading', { name: `Stack ${STACK}` }).waitFor();

  step('watch it become healthy (live: no reload)');
  const healthy = page.locator('table').nth(1).locator('.badge', { hasText: /^healthy$/ });
  await healthy.first().waitFor({ timeout: 90_000 });
  await axe(page, 'stack');
  await shot(page, '04-stack-healthy');

  step('logs: streamed, searched');
  const container = `${STACK}-web-1`;
  await page.getByRole('link', { name: `Logs of ${container}` }).click();
  await page.getByRole('heading', { name: `Logs of ${container}` }).waitFor();
  await page.waitForFunction(() => (document.querySelector('.logs')?.textContent ?? '').trim().length > 0, null, { timeout: 30_000 });
  const firstLine = (await page.locator('.logs').innerText()).split('\n')[0];
  step(`  first line: ${firstLine}`);
  await page.getByLabel('Search').fill(firstLine.slice(0, 8));
  await page.locator('.logs mark').first().waitFor();
  await axe(page, 'logs');
  await shot(page, '05-logs');

  step('shell: run echo in the container, see its output');
  await page.goto(`${URL_}/containers/${container}/shell`);
  await page.getByLabel('Command').fill('/app echo hello-from-the-browser');
  await page.getByRole('button', { name: 'Run' }).click();
  await page.waitForFunction(() => (document.querySelector('.xterm-rows')?.textContent ?? '').includes('hello-from-the-browser'), null, { timeout: 30_000 });
  await page.waitForFunction(() => (document.querySelector('.xterm-rows')?.textContent ?? '').includes('exited with code 0'), null, { timeout: 30_000 });
  await axe(page, 'shell');
  await shot(page, '06-shell');

  step('scale to 2');
  await page.goto(`${URL_}/stacks/${STACK}`);
  await page.getByLabel('Replicas of web').fill('2');
  await page.getByRole('button', { name: 'Scale' }).click();
  await page.locator('table').first().locator('td', { hasText: /^2\/2$/ }).waitFor({ timeout: 90_000 });
  // The service's chart (the sum of its containers), once the agent has sampled them (every 10 s).
  await page.locator('figure.chart', { hasText: 'CPU of service web' }).locator('svg path.line').waitFor({ state: 'attached', timeout: 25_000 }); // a flat line has no height: 'visible' would wait forever
  await shot(page, '07-scaled');

  step('the audit log shows the scale');
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByLabel('Action starts with').fill('stack.');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.locator('td', { hasText: /scale/ }).first().waitFor();
  await axe(page, 'audit');
  await shot(page, '08-audit');

  step('users, members and keys: a key is shown once');
  await page.getByRole('link', { name: 'Users & keys' }).click();
  await page.getByLabel('Key name').fill('from-the-ui');
  await page.getByRole('button', { name: 'Create API key' }).click();
  await page.locator('.once .secret').waitFor();
  if (!(await page.locator('.once .secret').innerText()).startsWith('drv_')) throw new Error('no key shown');
  await axe(page, 'access');
  await shot(page, '09-access');

  step('catalog');
  await page.getByRole('link', { name: 'Catalog' }).click();
  await page.locator('.card').first().waitFor();
  await axe(page, 'catalog');
  await shot(page, '10-catalog');
  await page.locator('.card h2 a').first().click();
  await page.getByRole('button', { name: 'Install' }).waitFor();
  await axe(page, 'template');
  await shot(page, '11-template');

  step('hosts: the local host up, drained and back, labelled, its CPU and memory charted');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Hosts' }).click();
  await page.getByRole('heading', { name: 'Hosts', exact: true }).waitFor();
  const hostRow = page.locator('table tbody tr').first();
  await hostRow.locator('.badge', { hasText: /^up$/ }).waitFor();
  const hostName = (await hostRow.locator('th').innerText()).split('\n')[0].trim();
  step(`  host ${hostName} is up`);
  await page.getByRole('button', { name: `Drain ${hostName}`, exact: true }).click();
  await hostRow.locator('.badge', { hasText: /^draining$/ }).waitFor();
  await page.getByRole('button', { name: `Undo drain of ${hostName}` }).click();
  await page.getByRole('button', { name: `Drain ${hostName}`, exact: true }).waitFor();
  if (await hostRow.locator('.badge', { hasText: /^draining$/ }).count()) throw new Error('still draining after undo');
  await page.getByRole('button', { name: `Edit labels of ${hostName}` }).click();
  await page.getByLabel(`Labels of ${hostName} set here`).fill('zone=ui-test');
  await page.getByRole('button', { name: 'Save labels' }).click();
  await hostRow.locator('.label', { hasText: 'zone=ui-test' }).waitFor();
  await page.getByRole('button', { name: `Edit labels of ${hostName}` }).click();
  await page.getByLabel(`Labels of ${hostName} set here`).fill('');
  await page.getByRole('button', { name: 'Save labels' }).click();
  await page.waitForFunction(() => !document.querySelector('table')?.textContent?.includes('zone=ui-test'));
  const cpuChart = page.locator('.host-use figure.chart').first();
  await cpuChart.locator('svg path.line').waitFor({ state: 'attached', timeout: 25_000 }); // a flat line has no height: 'visible' would wait forever
  step(`  chart: ${await cpuChart.locator('svg').getAttribute('aria-label')}`);
  await axe(page, 'hosts');
  await shot(page, '12-hosts');

  step('ingress: no ingress host yet; a broken certificate refused with the API\'s message');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Ingress' }).click();
  await page.getByRole('heading', { name: 'Ingress', exact: true }).waitFor();
  await page.getByText('No host serves the ingress').waitFor();
  await page.getByLabel('Name (what routes name it by: tls: NAME)').fill('broken');
  await page.getByLabel('Certificate chain (PEM, leaf first)').fill('not a certificate');
  await page.getByLabel('Private key (PEM; sent once, never shown again)').fill('not a key');
  await page.getByRole('button', { name: 'Add certificate' }).click();
  await page.getByRole('alert').filter({ hasText: /certificate|key/ }).waitFor();
  await axe(page, 'ingress');
  await shot(page, '12b-ingress');

  step('on a phone');
  const phone = await newPage({ width: 390, height: 844 });
  await signIn(phone, adminUser, adminPw);
  await phone.getByRole('button', { name: 'Menu' }).click();
  await axe(phone, 'phone-dashboard');
  await shot(phone, '13-phone-dashboard');

  step('sign out; a read-only user sees no change buttons');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(page, viewerUser, viewerPw);
  await page.goto(`${URL_}/stacks/${STACK}`);
  await page.getByRole('heading', { name: 'Services' }).waitFor();
  await page.locator('table').first().locator('tbody tr').first().waitFor();
  for (const name of ['Scale', 'Restart web', 'Roll back web', 'Remove stack', 'Roll back stack']) {
    if (await page.getByRole('button', { name }).count()) throw new Error(`read-only user sees "${name}"`);
  }
  if (await page.getByRole('link', { name: /^Shell in/ }).count()) throw new Error('read-only user sees a shell link');
  await axe(page, 'read-only-stack');
  await shot(page, '14-read-only');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Hosts' }).click();
  await page.locator('table tbody tr .badge').first().waitFor();
  for (const name of [/^Drain /, /^Undo drain/, /^Edit labels/]) {
    if (await page.getByRole('button', { name }).count()) throw new Error(`read-only user sees a host button ${name}`);
  }
  await axe(page, 'read-only-hosts');
  await shot(page, '15-read-only-hosts');

  if (restrictedUser) {
    step('a restricted user may not list hosts: the API\'s message is shown');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(page, restrictedUser, restrictedPw);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Hosts' }).click();
    const denied = page.getByRole('alert');
    await denied.waitFor();
    step(`  ${await denied.innerText()}`);
    if (await page.locator('figure.chart').count()) throw new Error('a restricted user sees host charts');
    await axe(page, 'restricted-hosts');
    await shot(page, '16-restricted-hosts');
  }

  if (offLoopback.length) throw new Error(`requests off loopback: ${offLoopback.join(', ')}`);
  // Expected: the wrong password (401), the broken compose file (400), a read-only 403.
  // Not the UI's: Chromium aborts a request in flight with ERR_NETWORK_CHANGED when another
  // test adds or removes a network interface (namespaces, bridges) on this machine; every
  // step above still had to see its outcome.
  const errors = consoleErrors.filter(
    (e) => !/status of 40[013]/.test(e) && !/net::ERR_NETWORK_CHANGED/.test(e),
  );
  if (errors.length) throw new Error(`console errors:\n  ${errors.join('\n  ')}`);
  if (axeProblems.length) throw new Error(`accessibility (axe-core, serious or critical):\n  ${axeProblems.join('\n  ')}`);
} catch (e) {
  failed = e;
} finally {
  await browser.close();
}
if (failed) {
  console.error(`browser test failed after ${((Date.now() - started) / 1000).toFixed(1)}s: ${failed.stack ?? failed}`);
  process.exit(1);
}
step(`all flows passed; screenshots in ${SHOTS}`);
