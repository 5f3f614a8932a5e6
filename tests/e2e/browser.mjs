// Browser end-to-end test of the web client: headless Chromium, two isolated
// browser contexts (two people), driven through the page as a person would.
// Started by .ci/e2e-browser.sh with BASE_URL pointing at a fresh server.
//
// Prints one line per check and "N passed, M failed"; exits 1 on failure.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

const BASE = process.env.BASE_URL;
const ADMIN = process.env.ADMIN_NAME; // started with --admins ADMIN_NAME
const SHOTS = process.env.SCREENSHOT_DIR || 'target/e2e';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 5000; // ms for any single expectation

if (!BASE || !ADMIN) {
  console.error('BASE_URL or ADMIN_NAME is not set');
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${String(e && e.message).split('\n')[0]}`);
  }
}
const codePointsOf = (s) => [...s].length;
function assertEq(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

// Resolves once some element matching sel has text containing text.
function waitText(page, sel, text, timeout = WAIT) {
  return page.waitForFunction(
    ([s, t]) => [...document.querySelectorAll(s)].some((e) => e.textContent.includes(t)),
    [sel, text], { timeout },
  );
}
function waitNoText(page, sel, text, timeout = WAIT) {
  return page.waitForFunction(
    ([s, t]) => ![...document.querySelectorAll(s)].some((e) => e.textContent.includes(t)),
    [sel, text], { timeout },
  );
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  // Playwright gives every launch a fresh temporary profile (user-data-dir).
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});

const tag = randomBytes(3).toString('hex');
const people = [];
async function person(name) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  const p = { name, context, page, errors: [], dialogs: 0, failedRequests: [] };
  page.on('response', (r) => { if (r.status() >= 400) p.failedRequests.push(`${r.status()} ${r.url()}`); });
  page.on('pageerror', (e) => p.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') p.errors.push(`console: ${m.text()}`); });
  page.on('dialog', (d) => { p.dialogs++; d.dismiss().catch(() => {}); });
  page.setDefaultTimeout(WAIT);
  people.push(p);
  return p;
}

const ann = await person(`ann${tag}`);
const ben = await person(`ben${tag}`);

// Ann's WebSockets pass through Playwright, so the test can cut her
// connection and refuse reconnects for a while, like a network outage.
const annWs = { block: false, urls: [], current: null };
await ann.context.routeWebSocket(/\/ws(\?|$)/, (ws) => {
  annWs.urls.push(ws.url());
  if (annWs.block) {
    ws.close({ code: 4000, reason: 'network down (test)' });
    return;
  }
  annWs.current = { ws, server: ws.connectToServer() };
});

try {
  await check('page loads and shows the login view', async () => {
    await ann.page.goto(BASE);
    await ann.page.locator('#auth-view').waitFor({ state: 'visible' });
    const ctype = await ann.page.evaluate(async () => (await fetch('style.css')).headers.get('content-type'));
    if (!ctype || !ctype.startsWith('text/css')) throw new Error(`style.css Content-Type ${ctype}`);
  });

  await check('a first visit makes no failing request (no 422 from api/user/@me)', async () => {
    await ann.page.waitForLoadState('networkidle');
    if (ann.failedRequests.length) throw new Error(ann.failedRequests.join(', '));
  });

  await check('register shows the key once, with copy button and warning', async () => {
    const { page } = ann;
    await page.fill('#reg-name', ann.name);
    await page.click('#register-form button[type=submit]');
    await page.locator('#key-box').waitFor({ state: 'visible' });
    ann.key = await page.inputValue('#new-key');
    if (!/^[0-9a-f]{64}$/.test(ann.key)) throw new Error(`key ${ann.key}`);
    const warning = await page.textContent('#key-box .warning');
    if (!/only password/.test(warning) || !/cannot be recovered/.test(warning)) throw new Error(`warning: ${warning}`);
    await page.locator('#copy-key').waitFor({ state: 'visible' });
    await page.screenshot({ path: `${SHOTS}/register.png` });
  });

  await check('after registering, Register is not offered again for the same name', async () => {
    const { page } = ann;
    assertEq(await page.isDisabled('#reg-submit'), true, 'Register disabled');
    await page.fill('#reg-name', `${ann.name}x`);
    assertEq(await page.isDisabled('#reg-submit'), false, 'enabled for another name');
  });

  await check('registering a taken name (other case) shows the error', async () => {
    const { page } = ann;
    await page.fill('#reg-name', ann.name.toUpperCase());
    await page.click('#register-form button[type=submit]');
    await waitText(page, '#reg-msg', 'already taken');
    // The key shown before stays, so it can still be used.
    assertEq(await page.inputValue('#new-key'), ann.key, 'key still shown');
  });

  await check('log in with the new key opens the chat', async () => {
    const { page } = ann;
    await page.click('#use-key');
    await page.locator('#chat-view').waitFor({ state: 'visible' });
    assertEq(await page.textContent('#me-name'), ann.name, 'name shown');
    await waitText(page, '#online-list li', ann.name);
    if (await page.isVisible('#key-box')) throw new Error('the key is still shown');
  });

  await check('second person registers and logs in with the keyboard alone', async () => {
    const { page } = ben;
    await page.goto(BASE);
    await page.locator('#auth-view').waitFor({ state: 'visible' });
    // The key field has focus first; Tab order leads to the register form.
    assertEq(await page.evaluate(() => document.activeElement.id), 'login-key', 'first focus');
    await page.keyboard.press('Tab'); // Log in button
    await page.keyboard.press('Tab'); // username
    assertEq(await page.evaluate(() => document.activeElement.id), 'reg-name', 'focus after two Tabs');
    await page.keyboard.type(ben.name);
    await page.keyboard.press('Enter');
    await page.locator('#key-box').waitFor({ state: 'visible' });
    assertEq(await page.evaluate(() => document.activeElement.id), 'new-key', 'focus on the key');
    await page.keyboard.press('Tab'); // Copy key
    await page.keyboard.press('Tab'); // Log in with this key
    assertEq(await page.evaluate(() => document.activeElement.id), 'use-key', 'focus');
    await page.keyboard.press('Enter');
    await page.locator('#chat-view').waitFor({ state: 'visible' });
    assertEq(await page.evaluate(() => document.activeElement.id), 'text', 'focus in the message box');
  });

  await check('both see each other in the online list', async () => {
    await waitText(ann.page, '#online-list li', ben.name);
    await waitText(ben.page, '#online-list li', ann.name);
    const names = await ben.page.evaluate(() => [...document.querySelectorAll('#online-list li')].map((li) => li.firstChild.textContent));
    if (!names.includes(ann.name) || !names.includes(ben.name)) throw new Error(`online: ${names}`);
  });

  await check('join notice', async () => {
    await waitText(ann.page, '#messages li.event', `${ben.name} joined`);
  });

  await check('messages both ways (Enter sends, own message confirmed by the ack)', async () => {
    await ann.page.fill('#text', 'Hello Ben! ✓');
    await ann.page.press('#text', 'Enter');
    await waitText(ben.page, '#messages li.msg .text', 'Hello Ben! ✓');
    const author = await ben.page.$eval('#messages li.msg:last-child .author', (e) => e.textContent);
    assertEq(author, ann.name, 'author');
    await ann.page.waitForFunction(() => {
      const own = document.querySelector('#messages li.msg.own:last-child');
      return own && !own.classList.contains('pending') && !own.classList.contains('failed');
    }, null, { timeout: WAIT });
    assertEq(await ann.page.inputValue('#text'), '', 'message box emptied');

    await ben.page.fill('#text', 'Hi Ann,\nhow are you?');
    await ben.page.click('#send');
    await waitText(ann.page, '#messages li.msg .text', 'how are you?');
  });

  const evil = '<script>alert(1)</script><b>x</b>';
  await check('a message with <script> and <b> is shown as literal text', async () => {
    await ann.page.fill('#text', evil);
    await ann.page.press('#text', 'Enter');
    await waitText(ben.page, '#messages li.msg .text', '<script>');
    for (const p of [ann, ben]) {
      const last = await p.page.$eval('#messages li.msg:last-child .text', (e) => e.textContent);
      assertEq(last, evil, `${p.name} textContent`);
      const tags = await p.page.evaluate(() => document.querySelectorAll('#messages b, #messages script').length);
      assertEq(tags, 0, `${p.name} <b>/<script> elements in the log`);
      assertEq(p.dialogs, 0, `${p.name} alert dialogs`);
    }
  });

  await check('connection lost: reconnects by itself, missed messages replayed (ws?since=)', async () => {
    const history = await ann.page.evaluate(async () => (await fetch('api/messages?limit=1')).status);
    const { ws, server } = annWs.current;
    annWs.block = true;
    server.close();
    ws.close({ code: 4000, reason: 'network down (test)' });
    await waitText(ann.page, '#conn-status', 'Reconnecting');
    await waitText(ben.page, '#messages li.event', `${ann.name} left`);
    await ben.page.fill('#text', 'sent while Ann was away');
    await ben.page.press('#text', 'Enter');
    await ben.page.waitForFunction(() => document.querySelectorAll('#messages li.pending').length === 0, null, { timeout: WAIT });
    annWs.block = false;
    // Within the backoff (a few seconds at this point).
    await waitText(ann.page, '#messages li.msg .text', 'sent while Ann was away', 20000);
    await waitText(ben.page, '#messages li.event', `${ann.name} joined`);
    const copies = await ann.page.$$eval('#messages li.msg .text', (ps) => ps.filter((p) => p.textContent === 'sent while Ann was away').length);
    assertEq(copies, 1, 'copies of the missed message');
    const last = annWs.urls[annWs.urls.length - 1];
    if (history === 200 && !/[?&]since=\d+/.test(last)) throw new Error(`reconnect URL without since: ${last}`);
    if (annWs.urls.length < 2) throw new Error(`no reconnection: ${annWs.urls.length} connection(s)`);
    await ann.page.waitForFunction(() => !document.getElementById('conn-status').textContent, null, { timeout: WAIT });
  });

  await check('300-character counter counts code points', async () => {
    const { page } = ann;
    await page.fill('#text', '😀'.repeat(300));
    assertEq(await page.textContent('#counter'), '300 / 300', 'counter at 300 emoji');
    assertEq(await page.isDisabled('#send'), false, 'send enabled at 300');
    await page.fill('#text', 'a'.repeat(301));
    assertEq(await page.textContent('#counter'), '301 / 300', 'counter at 301');
    assertEq(await page.isDisabled('#send'), true, 'send disabled at 301');
    assertEq(await page.getAttribute('#text', 'aria-invalid'), 'true', 'aria-invalid');
    // Enter does not fail silently: the reason is on screen, the text kept.
    await page.press('#text', 'Enter');
    await waitText(page, '#composer-msg', 'Too long to send: 301 characters');
    assertEq(await page.isVisible('#composer-msg'), true, 'reason visible');
    assertEq(codePointsOf(await page.inputValue('#text')), 301, 'text kept');
    await page.fill('#text', '');
    assertEq(await page.isVisible('#composer-msg'), false, 'reason gone once fixed');
  });

  // ---- rooms and direct messages ------------------------------------------
  const room = `r${tag}`;
  const secret = `p${tag}`;
  const title = (p) => p.page.textContent('#conv-title');
  const convButton = (p, key) => p.page.locator(`#side button.conv[data-conv="${key}"]`);
  const badge = (p, key) => p.page.locator(`#side button.conv[data-conv="${key}"] .badge`);
  async function openConv(p, key, want) {
    await convButton(p, key).click();
    await waitText(p.page, '#conv-title', want);
  }
  async function createRoom(p, name, priv) {
    const { page } = p;
    if (!(await page.evaluate(() => document.getElementById('new-room').open))) await page.click('#new-room summary');
    await page.fill('#room-name', name);
    await page.setChecked('#room-private', priv);
    await page.click('#room-form button[type=submit]');
    await waitText(page, '#conv-title', `# ${name}`);
  }
  async function say(p, text) {
    await p.page.fill('#text', text);
    await p.page.press('#text', 'Enter');
    await p.page.waitForFunction(() => document.querySelectorAll('#messages li.pending').length === 0, null, { timeout: WAIT });
  }
  const texts = (p) => p.page.$$eval('#messages li.msg .text', (ps) => ps.map((e) => e.textContent));

  await check('creating a public room opens it and lists it', async () => {
    await createRoom(ann, room, false);
    await waitText(ann.page, '#room-list button.conv', `# ${room}`);
    assertEq(await convButton(ann, `r:${room}`).getAttribute('aria-current'), 'true', 'current room marked');
    assertEq(await ann.page.isVisible('#leave-room'), true, 'Leave offered');
    await waitText(ann.page, '#messages li.event', 'You joined the room');
  });

  await check('the other person finds the room in the list and joins it', async () => {
    const { page } = ben;
    await page.click('#browse-rooms summary');
    await page.locator(`#public-list button[data-join="${room}"]`).click();
    await waitText(page, '#conv-title', `# ${room}`);
    await waitText(page, '#room-list button.conv', `# ${room}`);
    await waitNoText(page, '#public-list', `# ${room}`);
    await waitText(ann.page, '#messages li.event', `${ben.name} joined the room`);
    await waitText(ann.page, '#conv-info', '2 members');
  });

  await check('a room message appears in the room view, not in general', async () => {
    await say(ann, 'hello room');
    await waitText(ben.page, '#messages li.msg .text', 'hello room');
    // Ben is looking at the room: nothing unread there.
    assertEq(await badge(ben, `r:${room}`).count(), 0, 'badge on the room on screen');
    await openConv(ben, 'r:general', '# general');
    if ((await texts(ben)).includes('hello room')) throw new Error('room message shown in general');
    // History of the room (GET api/messages?room=) agrees.
    const hist = await ben.page.evaluate(async (r) => (await (await fetch(`api/messages?room=${r}`)).json()).messages.map((m) => m.message), room);
    if (!hist.includes('hello room')) throw new Error(`room history: ${hist}`);
  });

  await check('unread marks: room and general count frames for the conversation not on screen', async () => {
    await say(ann, 'second in room');
    await ben.page.locator(`#side button.conv[data-conv="r:${room}"] .badge`).waitFor();
    assertEq((await badge(ben, `r:${room}`).textContent()).trim(), '1 unread', 'room badge');
    await waitText(ben.page, '#total-unread', '1');
    // Ben says something in general while Ann looks at the room.
    await say(ben, 'general while you are in the room');
    await badge(ann, 'r:general').waitFor();
    if ((await texts(ann)).includes('general while you are in the room')) throw new Error('general message in the room view');
    await openConv(ben, `r:${room}`, `# ${room}`);
    await waitText(ben.page, '#messages li.msg .text', 'second in room');
    assertEq(await badge(ben, `r:${room}`).count(), 0, 'badge gone once read');
    await openConv(ann, 'r:general', '# general');
    await waitText(ann.page, '#messages li.msg .text', 'general while you are in the room');
    assertEq(await badge(ann, 'r:general').count(), 0, 'general badge gone');
  });

  await check('screenshot of the room view (desktop and phone, lists open)', async () => {
    await openConv(ann, `r:${room}`, `# ${room}`);
    await ann.page.screenshot({ path: `${SHOTS}/room.png` });
    await ben.page.setViewportSize({ width: 390, height: 760 });
    await ben.page.screenshot({ path: `${SHOTS}/room-phone.png` });
    await ben.page.click('#side-toggle');
    await ben.page.locator('#side').waitFor({ state: 'visible' });
    await ben.page.screenshot({ path: `${SHOTS}/room-phone-lists.png` });
    const wide = await ben.page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > 390) throw new Error(`page is ${wide}px wide at 390px`);
    // Choosing a conversation closes the lists again.
    await openConv(ben, 'r:general', '# general');
    assertEq(await ben.page.isVisible('#side'), false, 'lists closed');
    await ben.page.setViewportSize({ width: 1000, height: 700 });
  });

  await check('direct message from the online list: unread mark, then the message', async () => {
    const key = `d:${ben.name.toLowerCase()}`;
    await ann.page.locator('#online-list button.person', { hasText: ben.name }).click();
    await waitText(ann.page, '#conv-title', `@${ben.name}`);
    await waitText(ann.page, '#conv-info', 'online');
    await say(ann, 'psst, just you');
    const annKey = `d:${ann.name.toLowerCase()}`;
    await badge(ben, annKey).waitFor();
    assertEq((await badge(ben, annKey).textContent()).trim(), '1 unread', 'DM badge');
    await ben.page.screenshot({ path: `${SHOTS}/dm-unread.png` });
    if ((await texts(ben)).includes('psst, just you')) throw new Error('DM shown in general');
    await openConv(ben, annKey, `@${ann.name}`);
    await waitText(ben.page, '#messages li.msg .text', 'psst, just you');
    assertEq(await ben.page.$eval('#messages li.msg:last-child .author', (e) => e.textContent), ann.name, 'author');
    await say(ben, 'got it');
    // Ann has the conversation on screen: shown at once, nothing unread.
    await waitText(ann.page, '#messages li.msg .text', 'got it');
    assertEq(await badge(ann, key).count(), 0, 'no badge on the open DM');
    const hist = await ann.page.evaluate(async (b) => (await (await fetch(`api/messages?with=${b}`)).json()).messages.map((m) => m.message), ben.name);
    assertEq(JSON.stringify(hist), JSON.stringify(['psst, just you', 'got it']), 'DM history');
  });

  await check('"Write to…" opens a direct conversation by name, unknown names refused', async () => {
    const { page } = ann;
    await openConv(ann, 'r:general', '# general');
    await page.click('#new-dm summary');
    await page.fill('#dm-name', `nobody${tag}`);
    await page.press('#dm-name', 'Enter');
    await waitText(page, '#dm-msg', 'no user with that name');
    await page.fill('#dm-name', ben.name.toUpperCase());
    await page.press('#dm-name', 'Enter');
    // The conversation already open with him, under the name as registered.
    await waitText(page, '#conv-title', `@${ben.name}`);
    await waitText(page, '#messages li.msg .text', 'got it');
    assertEq(await page.locator('#dm-list button.conv').count(), 1, 'one direct conversation');
  });

  await check('a private room is not listed for others until its owner invites them', async () => {
    await createRoom(ann, secret, true);
    await waitText(ann.page, '#conv-info', 'private');
    await ann.page.locator('#invite-form').waitFor({ state: 'visible' });
    await say(ann, 'before the invitation');
    const { page } = ben;
    // Reopening the list reads it again.
    await page.click('#browse-rooms summary');
    await page.click('#browse-rooms summary');
    await page.waitForFunction(() => document.getElementById('browse-rooms').open);
    await page.waitForLoadState('networkidle');
    const listed = await page.$$eval('#side button', (bs) => bs.map((b) => b.textContent).join(' '));
    if (listed.includes(secret)) throw new Error(`private room listed for ${ben.name}: ${listed}`);
    const api = await page.evaluate(async () => (await (await fetch('api/rooms')).json()).rooms.map((r) => r.name));
    if (api.includes(secret)) throw new Error('in api/rooms');
    await ann.page.fill('#invite-name', ben.name);
    await ann.page.click('#invite-form button[type=submit]');
    await waitText(ann.page, '#invite-msg', `Invited ${ben.name}`);
    await waitText(page, '#room-list button.conv', `# ${secret}`);
    await say(ann, 'welcome in');
    await badge(ben, `r:${secret}`).waitFor();
    await openConv(ben, `r:${secret}`, `# ${secret}`);
    await waitText(page, '#messages li.msg .text', 'welcome in');
    // Its history is open to him now, the earlier message included.
    await waitText(page, '#messages li.msg .text', 'before the invitation');
  });

  await check('leaving a room: back in general, the room offered to join again', async () => {
    const { page } = ben;
    await openConv(ben, `r:${room}`, `# ${room}`);
    await page.click('#leave-room');
    await waitText(page, '#conv-title', '# general');
    await waitNoText(page, '#room-list', `# ${room}`);
    await waitText(page, '#public-list', `# ${room}`);
    const members = await page.evaluate(async (r) => (await (await fetch(`api/rooms/${r}/members`)).json()).members.map((m) => m.username), room);
    assertEq(JSON.stringify(members), JSON.stringify([ann.name]), 'members after leaving');
  });

  await check('a reload resumes: room messages that came meanwhile are unread, DMs kept', async () => {
    const { page } = ben;
    await page.goto('about:blank');
    await say(ann, 'while ben was away');  // Ann is in the private room
    await page.goto(BASE);
    await page.locator('#chat-view').waitFor({ state: 'visible' });
    await badge(ben, `r:${secret}`).waitFor();
    await waitText(page, '#dm-list button.conv', `@${ann.name}`);
    await openConv(ben, `r:${secret}`, `# ${secret}`);
    await waitText(page, '#messages li.msg .text', 'while ben was away');
    const copies = (await texts(ben)).filter((t) => t === 'while ben was away').length;
    assertEq(copies, 1, 'copies');
    await openConv(ben, 'r:general', '# general');
    await openConv(ann, 'r:general', '# general');
  });

  // ---- edits, deletions, reactions, typing, read markers (SPEC §10) ----------
  const item = (p, text) => p.page.locator('#messages li.msg', { hasText: text }).last();
  async function poll(what, fn) {
    const end = Date.now() + WAIT;
    for (;;) {
      const got = await fn();
      if (got) return got;
      if (Date.now() > end) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  await check('edit, react and delete a message; the other person sees each', async () => {
    await openConv(ann, 'r:general', '# general');
    await openConv(ben, 'r:general', '# general');
    const text = `edit me ${tag}`;
    await say(ann, text);
    await waitText(ben.page, '#messages li.msg .text', text);
    // The edit asks with window.prompt; answer it as a person would.
    await ann.page.evaluate((t) => { window.prompt = () => t; }, `edited ${tag}`);
    await item(ann, text).locator('button[data-action=edit]').dispatchEvent('click');
    await waitText(ben.page, '#messages li.msg.edited .text', `edited ${tag}`);
    await item(ben, `edited ${tag}`).locator('button[data-action=react]').dispatchEvent('click');
    await waitText(ann.page, '#messages li.msg .reaction', '👍 1');
    await item(ann, `edited ${tag}`).locator('button[data-action=delete]').dispatchEvent('click');
    await waitText(ben.page, '#messages li.msg.deleted .text', 'Message deleted');
    // History agrees: the message is deleted, its text gone.
    const hist = await ben.page.evaluate(async () => (await (await fetch('api/messages')).json()).messages);
    if (hist.some((m) => String(m.message).includes(tag) && String(m.message).includes('edit'))) {
      throw new Error('deleted text still in history');
    }
  });

  await check('typing shows on the other side and goes away', async () => {
    await ben.page.fill('#text', 'typing…');
    await waitText(ann.page, '#typing', `${ben.name} is typing`);
    await ben.page.fill('#text', '');
    await waitNoText(ann.page, '#typing', ben.name, 10000);
  });

  await check('read markers follow what is on screen (unread in api/rooms)', async () => {
    const marked = `m${tag}`;
    const unread = (p) => p.page.evaluate(async (r) => {
      const rooms = (await (await fetch('api/rooms')).json()).rooms;
      return rooms.find((x) => x.name === r)?.unread;
    }, marked);
    await createRoom(ann, marked, false);
    await ben.page.click('#browse-rooms summary');
    await ben.page.locator(`#public-list button[data-join="${marked}"]`).click();
    await waitText(ben.page, '#conv-title', `# ${marked}`);
    await openConv(ben, 'r:general', '# general');
    await say(ann, `unread ${tag}`);
    await poll('one unread for ben', async () => (await unread(ben)) === 1);
    await openConv(ben, `r:${marked}`, `# ${marked}`);
    await poll('nothing unread once shown', async () => (await unread(ben)) === 0);
    assertEq(await unread(ann), 0, "ann's own room on screen");
    // Back where the next checks expect them.
    await openConv(ann, 'r:general', '# general');
    await openConv(ben, 'r:general', '# general');
  });

  await check('screenshots (desktop and phone width)', async () => {
    await ann.page.fill('#text', 'Typing a reply…');
    await ann.page.screenshot({ path: `${SHOTS}/chat.png` });
    await ben.page.setViewportSize({ width: 390, height: 760 });
    await ben.page.screenshot({ path: `${SHOTS}/chat-phone.png` });
    // Nothing may stick out sideways at phone width.
    const wide = await ben.page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > 390) throw new Error(`page is ${wide}px wide at 390px`);
    await ann.page.fill('#text', '');
  });

  await check('closing one person\'s browser: the other sees leave', async () => {
    await ben.context.close();
    await waitText(ann.page, '#messages li.event', `${ben.name} left`);
    await waitNoText(ann.page, '#online-list li', ben.name);
  });

  await check('error acks are shown next to the message they refer to', async () => {
    // 40 messages in one go: past the server's burst of 20, the rest are
    // answered rate_limited, in order.
    const { page } = ann;
    await page.evaluate(() => {
      const text = document.getElementById('text');
      const form = document.getElementById('send-form');
      for (let i = 0; i < 40; i++) {
        text.value = `burst ${i}`;
        text.dispatchEvent(new Event('input'));
        form.requestSubmit();
      }
    });
    await page.waitForFunction(() => document.querySelectorAll('#messages li.pending').length === 0, null, { timeout: WAIT });
    const notes = await page.$$eval('#messages li.msg.own', (lis) => lis
      .filter((li) => li.querySelector('.text').textContent.startsWith('burst '))
      .map((li) => [li.querySelector('.text').textContent, li.classList.contains('failed'), li.querySelector('.note').textContent]));
    assertEq(notes.length, 40, 'messages shown');
    const bad = notes.filter(([, f]) => f);
    if (bad.length === 0) throw new Error('no message was rate limited');
    if (!bad.every(([, , n]) => /too fast/.test(n))) throw new Error(`notes: ${JSON.stringify(bad[0])}`);
    // FIFO: the accepted ones are the first ones.
    const firstBad = notes.findIndex(([, f]) => f);
    if (notes.slice(0, firstBad).length < 1) throw new Error('first message already refused');
  });

  await check('a failed message can be sent again with Retry', async () => {
    const { page } = ann;
    const text = await page.$eval('#messages li.msg.own.failed .text', (e) => e.textContent);
    const item = page.locator('#messages li.msg.own', { hasText: text });
    // The rate limit refills at 10 a second: a retry may be refused again
    // at first, and offers Retry again.
    const deadline = Date.now() + WAIT;
    for (;;) {
      await item.locator('button.retry').click();
      await page.waitForFunction(() => document.querySelectorAll('#messages li.pending').length === 0, null, { timeout: WAIT });
      if (!(await item.evaluate((li) => li.classList.contains('failed')))) break;
      if (Date.now() > deadline) throw new Error('still refused');
    }
    const last = await page.$eval('#messages li.msg.own:last-child .text', (e) => e.textContent);
    assertEq(last, text, 'moved to the end, confirmed');
    assertEq(await item.locator('button.retry').count(), 0, 'no Retry once sent');
  });

  await check('reload keeps the session (api/user/@me), shows history, reconnects', async () => {
    const { page } = ann;
    await page.reload();
    await page.locator('#chat-view').waitFor({ state: 'visible' });
    await waitText(page, '#online-list li', ann.name);
    // A server with history shows the earlier conversation again.
    const history = await page.evaluate(async () => (await fetch('api/messages?limit=1')).status);
    if (history === 200) {
      await waitText(page, '#messages li.msg .text', 'how are you?');
      const evils = await page.$$eval('#messages li.msg .text', (ps) => ps.filter((p) => p.textContent.includes('<script>')).length);
      assertEq(evils, 1, 'the <script> message, once, from history');
      assertEq(await page.evaluate(() => document.querySelectorAll('#messages b, #messages script').length), 0, 'elements from history');
    } else if (history !== 404) {
      throw new Error(`api/messages: ${history}`);
    }
    assertEq(await page.isDisabled('#send'), true, 'send disabled with an empty box');
    await page.fill('#text', 'back');
    assertEq(await page.isDisabled('#send'), false, 'send enabled when connected');
    await page.fill('#text', '');
  });

  await check('log out returns to the login view and ends the session', async () => {
    const { page } = ann;
    await page.click('#logout');
    await page.locator('#auth-view').waitFor({ state: 'visible' });
    const status = await page.evaluate(async () => (await fetch('api/user/@me')).status);
    if (status !== 401 && status !== 422) throw new Error(`api/user/@me after logout: ${status}`);
  });

  await check('log in again with the key', async () => {
    const { page } = ann;
    await page.fill('#login-key', ann.key);
    await page.press('#login-key', 'Enter');
    await page.locator('#chat-view').waitFor({ state: 'visible' });
    await waitText(page, '#online-list li', ann.name);
  });

  // ---- moderation and administration (SPEC §12) -------------------------------
  // The server was started with --admins $ADMIN_NAME; Ann owns the public
  // room made above, so she moderates it.
  async function registerAndLogIn(p) {
    const { page } = p;
    await page.goto(BASE);
    await page.locator('#auth-view').waitFor({ state: 'visible' });
    await page.fill('#reg-name', p.name);
    await page.click('#register-form button[type=submit]');
    await page.locator('#key-box').waitFor({ state: 'visible' });
    p.key = await page.inputValue('#new-key');
    await page.click('#use-key');
    await page.locator('#chat-view').waitFor({ state: 'visible' });
    await waitText(page, '#online-list li', p.name);
  }
  const boss = await person(ADMIN);
  const cat = await person(`cat${tag}`);
  // Cat's sockets pass through Playwright, so the test sees how the server
  // closes them.
  const catWs = { urls: [], closes: [] };
  await cat.context.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    catWs.urls.push(ws.url());
    const server = ws.connectToServer();
    server.onClose((code, reason) => {
      catWs.closes.push({ code, reason });
      ws.close({ code, reason });
    });
  });

  await check('an admin gets the Admin button, nobody else does', async () => {
    await registerAndLogIn(boss);
    await registerAndLogIn(cat);
    await boss.page.locator('#admin-open').waitFor({ state: 'visible' });
    // Ann and Cat know by now whether they are admins (api/user/@me).
    await ann.page.waitForLoadState('networkidle');
    await cat.page.waitForLoadState('networkidle');
    assertEq(await ann.page.isVisible('#admin-open'), false, 'Admin button for the room owner');
    assertEq(await cat.page.isVisible('#admin-open'), false, 'Admin button for a user');
  });

  await check('a room owner sees delete, mute and kick on others\' messages and uses them', async () => {
    await cat.page.click('#browse-rooms summary');
    await cat.page.locator(`#public-list button[data-join="${room}"]`).click();
    await waitText(cat.page, '#conv-title', `# ${room}`);
    await openConv(ann, `r:${room}`, `# ${room}`);
    await waitText(ann.page, '#messages li.event', `${cat.name} joined the room`);
    await say(cat, `spam ${tag}`);
    await waitText(ann.page, '#messages li.msg .text', `spam ${tag}`);
    const catMsg = item(ann, `spam ${tag}`);
    await catMsg.hover();
    for (const action of ['delete', 'mute', 'kick']) {
      if (!(await catMsg.locator(`button[data-action=${action}]`).isVisible())) throw new Error(`no ${action} for the owner`);
    }
    // A member has none of them on the owner's messages.
    const annMsg = item(cat, 'hello room');
    await annMsg.hover();
    for (const action of ['delete', 'mute', 'kick']) {
      if (await annMsg.locator(`button[data-action=${action}]`).isVisible()) throw new Error(`${action} offered to a member`);
    }
    await catMsg.locator('button[data-action=delete]').click();
    await waitText(cat.page, '#messages li.msg.deleted .text', 'Message deleted');
    // A room mute from the message's button: the room sees the event.
    await ann.page.evaluate(() => { window.prompt = () => '10m calm down'; });
    await item(ann, 'hello room').hover(); // move away, then back to Cat's
    await say(cat, `more ${tag}`);
    const more = item(ann, `more ${tag}`);
    await more.hover();
    await more.locator('button[data-action=mute]').click();
    await waitText(ann.page, '#messages li.event', `${cat.name} was muted in this room by ${ann.name}`);
    await waitText(cat.page, '#messages li.event', 'You were muted in this room');
  });

  await check('the room\'s member list offers its owner Mute and Kick, not its members', async () => {
    await ann.page.click('#members summary');
    const row = ann.page.locator(`#member-list li[data-user="${cat.name}"]`);
    await row.locator('button[data-member-action=kick]').waitFor({ state: 'visible' });
    await row.locator('button[data-member-action=mute]').waitFor({ state: 'visible' });
    await ann.page.screenshot({ path: `${SHOTS}/members.png` });
    await cat.page.click('#members summary');
    await waitText(cat.page, '#member-list li', ann.name);
    assertEq(await cat.page.locator('#member-list button').count(), 0, 'buttons for a member');
    await cat.page.click('#members summary');
    await ann.page.click('#members summary');
  });

  await check('a muted user\'s message shows the muted error with its end time', async () => {
    await cat.page.fill('#text', 'can I still talk?');
    await cat.page.press('#text', 'Enter');
    await waitText(cat.page, '#messages li.msg.failed .note', 'you are muted until');
    const note = await item(cat, 'can I still talk?').locator('.note').textContent();
    if (!/muted until \S*\d\d[:.]\d\d/.test(note)) throw new Error(`note: ${note}`);
    assertEq(await item(cat, 'can I still talk?').locator('button.retry').count(), 0, 'Retry offered');
  });

  await check('a moderator kicks with /kick; the kicked user sees it', async () => {
    await ann.page.fill('#text', `/kick ${cat.name} spamming`);
    await ann.page.press('#text', 'Enter');
    await waitText(ann.page, '#messages li.event', `${cat.name} was kicked by ${ann.name}: spamming`);
    assertEq(await ann.page.inputValue('#text'), '', 'command cleared');
    assertEq(await ann.page.$$eval('#messages li.msg .text', (ps) => ps.some((p) => p.textContent.startsWith('/kick'))), false, 'sent as a message');
    // Cat is back in general, told why, and the room is gone from the list.
    await waitText(cat.page, '#conv-title', '# general');
    await waitText(cat.page, '#messages li.event', `You were kicked from # ${room} by ${ann.name}: spamming`);
    await waitNoText(cat.page, '#room-list', `# ${room}`);
  });

  await check('an admin mutes with /mute in general; the muted message shows the end time', async () => {
    await boss.page.fill('#text', `/mute ${cat.name} 10m flooding`);
    await boss.page.press('#text', 'Enter');
    await waitText(boss.page, '#messages li.event', `${cat.name} is muted everywhere until`);
    await cat.page.fill('#text', 'hello general');
    await cat.page.press('#text', 'Enter');
    await waitText(cat.page, '#messages li.msg.failed .note', 'you are muted until');
    // A user without the rights is told so, and nothing is sent.
    await cat.page.fill('#text', `/ban ${ann.name} revenge`);
    await cat.page.press('#text', 'Enter');
    await waitText(cat.page, '#composer-msg', 'Only admins');
  });

  await check('an admin bans a user from the admin page; the banned browser shows it', async () => {
    const { page } = boss;
    await page.click('#admin-open');
    await page.locator('#admin-view').waitFor({ state: 'visible' });
    assertEq(await page.isVisible('#chat-view'), false, 'chat hidden');
    await page.fill('#admin-prefix', cat.name.slice(0, 5));
    await page.press('#admin-prefix', 'Enter');
    const row = page.locator(`#admin-users tr[data-user="${cat.name}"]`);
    // Only names with the prefix are listed (the full list shown on opening
    // is replaced).
    await page.waitForFunction((pre) => {
      const trs = [...document.querySelectorAll('#admin-users tbody tr')];
      return trs.length === 1 && trs[0].dataset.user.startsWith(pre);
    }, cat.name.slice(0, 5), { timeout: WAIT });
    await waitText(page, `#admin-users tr[data-user="${cat.name}"]`, 'muted until');
    await page.screenshot({ path: `${SHOTS}/admin.png` });
    await page.setViewportSize({ width: 390, height: 760 });
    await page.screenshot({ path: `${SHOTS}/admin-phone.png` });
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > 390) throw new Error(`admin page is ${wide}px wide at 390px`);
    await page.setViewportSize({ width: 1000, height: 700 });
    await page.evaluate(() => { window.prompt = () => 'spam'; });
    const before = catWs.urls.length;
    await row.locator('button[data-admin-action=ban]').click();
    await waitText(page, '#admin-msg', `${cat.name} is banned`);
    await waitText(page, `#admin-users tr[data-user="${cat.name}"] td`, 'banned');
    await waitText(cat.page, '#auth-msg', 'You have been banned');
    await cat.page.locator('#auth-view').waitFor({ state: 'visible' });
    await poll('the socket closed 1008 banned', async () => catWs.closes.some((c) => c.code === 1008 && c.reason === 'banned'));
    await cat.page.screenshot({ path: `${SHOTS}/banned.png` });
    // No reconnecting: nothing is scheduled, no socket opened since.
    assertEq(await cat.page.textContent('#conn-status'), '', 'connection status');
    assertEq(catWs.urls.length, before, 'sockets opened after the ban');
    // Logging in again is refused, with the reason.
    await cat.page.fill('#login-key', cat.key);
    await cat.page.press('#login-key', 'Enter');
    await waitText(cat.page, '#login-msg', 'banned');
  });

  await check('the admin page unbans and resets a key, shown once', async () => {
    const { page } = boss;
    const row = page.locator(`#admin-users tr[data-user="${cat.name}"]`);
    await row.locator('button[data-admin-action=unban]').click();
    await waitText(page, '#admin-msg', `${cat.name} is no longer banned`);
    await row.locator('button[data-admin-action=unmute]').click();
    await waitText(page, '#admin-msg', `${cat.name} is no longer muted`);
    await page.evaluate(() => { window.confirm = () => true; });
    await row.locator('button[data-admin-action=reset-key]').click();
    await page.locator('#admin-key').waitFor({ state: 'visible' });
    await waitText(page, '#admin-key', cat.name);
    const key = await page.inputValue('#admin-new-key');
    if (!/^[0-9a-f]{64}$/.test(key) || key === cat.key) throw new Error(`new key ${key}`);
    await page.click('#admin-key-done');
    assertEq(await page.isVisible('#admin-key'), false, 'key hidden again');
    assertEq(await page.inputValue('#admin-new-key'), '', 'key kept in the page');
    // The old key no longer works, the new one does.
    await cat.page.fill('#login-key', cat.key);
    await cat.page.press('#login-key', 'Enter');
    await waitText(cat.page, '#login-msg', 'not valid');
    await cat.page.fill('#login-key', key);
    await cat.page.press('#login-key', 'Enter');
    await cat.page.locator('#chat-view').waitFor({ state: 'visible' });
    await page.click('#admin-close');
    await page.locator('#chat-view').waitFor({ state: 'visible' });
  });

  await check('no script errors or CSP violations in the pages', async () => {
    const errors = people.flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`))
      // A refused login or a 404 probe is logged by the browser as a failed
      // resource load; that is the server answering, not a page error.
      .filter((e) => !/Failed to load resource/.test(e));
    if (errors.length) throw new Error(errors.join(' | '));
  });
} finally {
  await browser.close().catch(() => {});
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
