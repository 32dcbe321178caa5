// Drives the console in Debian's chromium through playwright-core (see browser.rs).
// CONSOLE_PHASE=refused: without the admin token, try to requeue the dead letters and to
// skip the parked event; report the page's messages. CONSOLE_PHASE=act: read the `orders`
// projection's lag, give the token, open the dead letter's tree, requeue the dead letters,
// open the parked event in the log, reset `orders` to 0 and
// retire `eventsource.relay` (each name typed again when asked), open an event's payload and
// its request's tree from the events view, draw req-1's causation tree
// and follow the link of the node in trace CONSOLE_TRACE_ID. The last stdout line is JSON.
'use strict';
const path = require('path');
const { chromium } = require(path.join(process.env.EVENTSOURCE_PLAYWRIGHT_DIR, 'node_modules', 'playwright-core'));

const url = process.env.CONSOLE_URL;
const queue = process.env.CONSOLE_QUEUE;

// What the next prompts are answered, in turn (a confirm is accepted).
const answers = [];

// Each action's request and how it ended, for the error when a message never comes.
const actions = [];

// The page's message after an action: the first one since the message box was cleared
// that says `refused` or `done`. Polled from here, not on the page's animation frames
// (which a loaded machine starves), over every text the box took (see `clearMessage`), so
// a message replaced by the next is still seen. On a timeout it says what the page said
// and which actions were answered.
async function outcome(page, done = 'requeued') {
  const wanted = new RegExp('refused|' + done);
  const deadline = Date.now() + 10000;
  for (;;) {
    const said = await page.evaluate(() => window.eventsourceSaid || []);
    const found = said.find((text) => wanted.test(text));
    if (found !== undefined) return found;
    if (Date.now() > deadline) {
      throw new Error(`no message matching ${wanted} within 10 s; the page said ${JSON.stringify(said)}; actions: ${JSON.stringify(actions)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// Clicks `label` on the status row of `projection`, the prompts answered with `typed`.
async function change(page, projection, label, done, ...typed) {
  answers.push(...typed);
  await clearMessage(page);
  await page.locator(`#status-table tr[data-projection="${projection}"] td.changes button`, { hasText: label }).click();
  return outcome(page, done);
}

// Empties the message box and keeps, from now on, every text it takes.
async function clearMessage(page) {
  await page.evaluate(() => {
    const box = document.querySelector('#message');
    box.textContent = '';
    window.eventsourceSaid = [];
    if (!window.eventsourceWatcher) {
      window.eventsourceWatcher = new MutationObserver(() => window.eventsourceSaid.push(box.textContent));
      window.eventsourceWatcher.observe(box, { childList: true, characterData: true, subtree: true });
    }
  });
}

async function refused(page) {
  await page.goto(url + '#dead-letters');
  const count = page.locator(`.queue[data-queue="${queue}"] .letter-count`);
  await count.filter({ hasText: '1' }).waitFor({ timeout: 10000 });
  await clearMessage(page);
  await page.locator(`.queue[data-queue="${queue}"] button`, { hasText: 'Requeue all' }).click();
  const requeue = await outcome(page);
  await page.goto(url + '#parked');
  await page.fill('#parked-projection', 'orders');
  await page.click('#parked-form button[type=submit]');
  const skipButton = page.locator('#parked-table tr[data-position="1"] button', { hasText: 'Skip' });
  await skipButton.waitFor({ timeout: 10000 });
  await clearMessage(page);
  await skipButton.click();
  const skip = await outcome(page);
  return { requeue, skip };
}

async function act(page) {
  await page.goto(url + '#status');
  const lagCell = page.locator('#status-table tr[data-projection="orders"] td.lag-events');
  await lagCell.waitFor({ timeout: 10000 });
  const lag = (await lagCell.textContent()).trim();
  const stopCell = page.locator('#status-table tr.stopped[data-stopped-projection="orders"] td.stop-error');
  const stopped = (await stopCell.textContent()).trim();
  const segmentStopCell = page.locator('#status-table tr.stopped[data-stopped-projection="totals[1/2]"] td.stop-error');
  const segmentStopped = (await segmentStopCell.textContent()).trim();

  await page.fill('#token', process.env.CONSOLE_TOKEN);
  await page.click('#token-save');
  await page.goto(url + '#dead-letters');
  await page.locator(`.queue[data-queue="${queue}"] .letter-count`).filter({ hasText: '1' }).waitFor({ timeout: 10000 });
  // A dead letter's event type opens its request's tree, the event marked.
  await page.locator(`.queue[data-queue="${queue}"] a.event-tree`).first().click();
  const deadNode = page.locator('#causation-drawing svg g.marked text');
  await deadNode.waitFor({ timeout: 10000 });
  const deadTree = await deadNode.textContent();
  await page.goto(url + '#dead-letters');
  await page.locator(`.queue[data-queue="${queue}"] .letter-count`).filter({ hasText: '1' }).waitFor({ timeout: 10000 });
  await clearMessage(page);
  await page.locator(`.queue[data-queue="${queue}"] button`, { hasText: 'Requeue all' }).click();
  const requeue = await outcome(page);

  // A parked event's position opens the log there.
  await page.goto(url + '#parked');
  await page.fill('#parked-projection', 'orders');
  await page.click('#parked-form button[type=submit]');
  await page.locator('#parked-table tr[data-position="1"] a.event-link').click();
  const parkedRow = page.locator('#events-table tbody tr').first();
  await parkedRow.waitFor({ timeout: 10000 });
  const parkedEvent = await parkedRow.getAttribute('data-position');

  // The log from position 4, then the page before it; a correlation's events.
  await page.fill('#events-from', '4');
  await page.click('#events-form button[type=submit]');
  await page.locator('#events-table tbody tr[data-position="4"]').first().waitFor({ timeout: 10000 });
  await page.click('#events-earlier');
  await page.locator('#events-table tbody tr[data-position="1"]').waitFor({ timeout: 10000 });
  const earlier = await page.locator('#events-table tbody tr').first().getAttribute('data-position');
  await page.fill('#events-correlation', 'req-2');
  await page.click('#events-form button[type=submit]');
  await page.locator('#events-table tbody tr[data-position="1"]').waitFor({ state: 'detached', timeout: 10000 });
  const correlated = await page.locator('#events-table tbody tr').count();
  await page.fill('#events-correlation', '');

  await page.goto(url + '#status');
  await page.locator('#status-table tr[data-projection="eventsource.relay"] td.changes button').first().waitFor({ timeout: 10000 });
  const reset = await change(page, 'orders', 'Reset', 'reset to', '0', 'orders');
  const retire = await change(page, 'eventsource.relay', 'Retire', 'retired', 'eventsource.relay');
  await page.locator('#status-table tr[data-projection="eventsource.relay"]').waitFor({ state: 'detached', timeout: 10000 });

  await page.goto(url + '#events');
  await page.fill('#events-stream', 'Order/o-1');
  await page.click('#events-form button[type=submit]');
  const first = page.locator('#events-table tbody tr').first();
  await first.waitFor({ timeout: 10000 });
  await first.locator('details summary').click();
  const payload = await first.locator('pre.event-body').textContent();
  // Its type opens its request's tree, the event marked (the dead letter's drawn before
  // is cleared first, so that only the new one is read).
  await page.evaluate(() => document.querySelector('#causation-drawing').replaceChildren());
  await first.locator('a.event-tree').click();
  const markedNode = page.locator('#causation-drawing svg g.marked text');
  await markedNode.waitFor({ timeout: 10000 });
  const marked = await markedNode.textContent();

  await page.goto(url + '#causation');
  await page.fill('#causation-id', 'req-1');
  await page.click('#causation-form button[type=submit]');
  const node = page.locator(`svg a.trace-link[data-trace-id="${process.env.CONSOLE_TRACE_ID}"]`);
  await node.waitFor({ timeout: 10000 });
  // The trace opens in a tab of its own; the console stays where it was.
  const [viewerTab] = await Promise.all([page.context().waitForEvent('page', { timeout: 10000 }), node.click()]);
  await viewerTab.waitForURL('**/trace/**', { timeout: 10000 });
  const viewer = (await viewerTab.textContent('#trace')).trim();
  const stayed = page.url();
  return { lag, stopped, segmentStopped, requeue, deadTree, parkedEvent, earlier, correlated, reset, retire, payload, marked, landed: viewerTab.url(), viewer, stayed };
}

(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 560 } });
    const started = Date.now();
    const seen = (request, how) => {
      if (request.url().includes('/api/actions/')) actions.push(`${request.url().split('/api/actions/')[1]} ${how} at ${Date.now() - started} ms`);
    };
    page.on('request', (request) => seen(request, 'sent'));
    page.on('requestfinished', (request) => seen(request, 'answered'));
    page.on('requestfailed', (request) => seen(request, 'failed: ' + (request.failure() || {}).errorText));
    page.on('dialog', (dialog) => (dialog.type() === 'prompt' ? dialog.accept(answers.shift()) : dialog.accept()));
    const report = process.env.CONSOLE_PHASE === 'refused' ? await refused(page) : await act(page);
    console.log(JSON.stringify(report));
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
