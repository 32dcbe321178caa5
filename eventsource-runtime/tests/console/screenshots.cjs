// The guide's screenshots of the console (docs/images/console-*.png), taken from the store
// `examples/operator.rs` leaves, as an operator would see it: CONTRIBUTING.md gives the
// commands. CONSOLE_URL: the console; EVENTSOURCE_CONSOLE_SCREENSHOTS: where they go;
// EVENTSOURCE_PLAYWRIGHT_DIR: playwright-core (`.ci/run --browser-only`).
'use strict';
const path = require('path');
const { chromium } = require(path.join(process.env.EVENTSOURCE_PLAYWRIGHT_DIR, 'node_modules', 'playwright-core'));

const url = process.env.CONSOLE_URL;
const shots = process.env.EVENTSOURCE_CONSOLE_SCREENSHOTS;
const wait = { timeout: 10000 };

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, 'console-' + name + '.png') });
}

(async () => {
  if (!url || !shots) throw new Error('CONSOLE_URL and EVENTSOURCE_CONSOLE_SCREENSHOTS are needed');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 560 } });
    // The projections: `revenue` behind with an event parked, `shipments` split, `refunds`
    // stopped.
    await page.goto(url + '#status');
    await page.locator('#status-table tr.stopped[data-stopped-projection="refunds"]').waitFor(wait);
    await shot(page, 'status');

    // The dead letter of `operator-billing`.
    await page.goto(url + '#dead-letters');
    await page.waitForFunction(() => [...document.querySelectorAll('.queue .letter-count')].some((count) => Number(count.textContent) > 0), null, wait);
    await shot(page, 'dead-letters');

    // An order's events, the first opened.
    await page.goto(url + '#events');
    await page.fill('#events-stream', 'Order/o-1');
    await page.click('#events-form button[type=submit]');
    const first = page.locator('#events-table tbody tr').first();
    await first.waitFor(wait);
    await first.locator('details summary').click();
    await shot(page, 'events');

    // Its request's causation tree, from its event type's link.
    await first.locator('a.event-tree').click();
    await page.locator('#causation-drawing svg g.marked text').waitFor(wait);
    await shot(page, 'causation');
    console.log('screenshots in ' + shots);
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
