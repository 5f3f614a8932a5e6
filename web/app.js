// Piratchat browser client: plain DOM code, no framework, no build step.
//
// Rules this file keeps:
// - every URL is relative ('api/login', new URL('ws', location.href)), so the
//   page works under any path prefix a proxy puts it behind;
// - text from the network reaches the page only through textContent, never
//   as HTML;
// - the server does not echo our own messages back: each one is shown at once
//   as "sending" and settled by the next ack, since acks come back in the order
//   the frames were sent;
// - history (api/messages, ws?since=, ids, client_id) is used only when the
//   server has it: a 404 from api/messages means an older server.
'use strict';

(() => {
  const MAX_LEN = 300;          // the server's limit, in Unicode code points
  const HISTORY_PAGE = 50;      // messages asked for per history request
  const MAX_SHOWN = 1000;       // older entries are dropped to bound memory
  const BACKOFF_BASE_MS = 1000; // first reconnect delay, doubled per failure
  const BACKOFF_MAX_MS = 30000;

  const $ = (id) => document.getElementById(id);
  const el = {
    loading: $('loading'), authView: $('auth-view'), chatView: $('chat-view'),
    authMsg: $('auth-msg'), whoami: $('whoami'), meName: $('me-name'), logout: $('logout'),
    loginForm: $('login-form'), loginKey: $('login-key'), loginMsg: $('login-msg'),
    regForm: $('register-form'), regName: $('reg-name'), regMsg: $('reg-msg'), regSubmit: $('reg-submit'),
    keyBox: $('key-box'), newKey: $('new-key'), copyKey: $('copy-key'), useKey: $('use-key'),
    copyMsg: $('copy-msg'),
    onlineList: $('online-list'), onlineCount: $('online-count'), status: $('conn-status'),
    log: $('log'), messages: $('messages'), older: $('older'),
    sendForm: $('send-form'), text: $('text'), counter: $('counter'), send: $('send'),
    composerMsg: $('composer-msg'),
  };

  // Set while this browser holds a session, so a first visit does not ask
  // api/user/@me just to be told 422 (a red line in the console). The
  // session cookie itself is HttpOnly, out of the page's reach.
  const SESSION_FLAG = 'piratchat.session';
  function flagSession(on) {
    try {
      if (on) localStorage.setItem(SESSION_FLAG, '1');
      else localStorage.removeItem(SESSION_FLAG);
    } catch { /* storage off: start() asks the server instead */ }
  }
  function sessionFlagged() {
    try { return localStorage.getItem(SESSION_FLAG) !== null; } catch { return true; }
  }

  // Human wording for the server's error codes ({"error": code} bodies).
  const HTTP_ERRORS = {
    invalid_username: 'A username is 1 to 32 letters (A–Z, a–z) or digits.',
    username_taken: 'That username is already taken.',
    invalid_key: 'That key is not valid.',
    invalid_request: 'The server could not read that request.',
    rate_limited: 'Too many attempts from your address.',
    server_busy: 'The server is busy. Try again in a moment.',
  };
  // Wording for {"status": false, "code": ...} acks, shown under the message.
  const ACK_ERRORS = {
    message_too_long: `Not sent: longer than ${MAX_LEN} characters.`,
    invalid_json: 'Not sent: the server could not read it.',
    invalid_message: 'Not sent: the message was empty or malformed.',
    binary_not_supported: 'Not sent: binary data is not supported.',
    rate_limited: 'Not sent: you are sending too fast. Wait a moment.',
  };

  const state = {
    me: null,          // our username while logged in
    ws: null,          // the current socket; events of older sockets are ignored
    attempt: 0,        // failed connections in a row, for the backoff
    timer: 0,          // pending reconnect
    pending: [],       // our messages awaiting an ack, oldest first
    sent: 0,           // counter for client_id
    online: [],        // usernames, in the server's order
    history: null,     // null: not known yet; false: server has no history API
    lastId: null,      // newest message id seen, for ws?since= on reconnect
    oldestId: null,    // oldest id shown, for "show earlier messages"
    seen: new Set(),   // ids already shown, so a replay never doubles a message
  };

  // ---- HTTP ---------------------------------------------------------------

  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', cache: 'no-store', headers: {} };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    let data = {};
    try { data = await res.json(); } catch { /* empty or non-JSON body */ }
    return { status: res.status, ok: res.ok, data: data || {}, retryAfter: res.headers.get('Retry-After') };
  }

  function httpError(r) {
    const code = r.data && r.data.error;
    let text = HTTP_ERRORS[code] || `Unexpected answer from the server (${r.status}${code ? ' ' + code : ''}).`;
    if (r.status === 429 && r.retryAfter) text += ` Try again in ${r.retryAfter} s.`;
    return text;
  }

  // ---- views --------------------------------------------------------------

  function showAuth(message) {
    dropSocket();
    flagSession(false);
    state.me = null;
    state.pending = [];
    state.lastId = state.oldestId = null;
    state.seen.clear();
    el.messages.replaceChildren();
    setOnline([]);
    el.older.hidden = true;
    el.loading.hidden = true;
    el.chatView.hidden = true;
    el.whoami.hidden = el.logout.hidden = true;
    el.authView.hidden = false;
    el.authMsg.textContent = message || '';
    el.authMsg.hidden = !message;
    el.loginKey.focus();
  }

  async function enterChat(username) {
    state.me = username;
    flagSession(true);
    el.meName.textContent = username;
    el.loading.hidden = el.authView.hidden = true;
    el.keyBox.hidden = true;
    el.newKey.value = '';
    el.chatView.hidden = false;
    el.whoami.hidden = el.logout.hidden = false;
    updateComposer();
    el.text.focus();
    // History first, so the socket can ask for whatever came after it.
    await loadHistory();
    if (state.me === username) connect();
  }

  // ---- register and log in ------------------------------------------------

  el.regForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = el.regName.value.trim();
    el.regMsg.textContent = '';
    if (!/^[A-Za-z0-9]{1,32}$/.test(username)) {
      el.regMsg.textContent = HTTP_ERRORS.invalid_username;
      el.regName.focus();
      return;
    }
    try {
      const r = await api('POST', 'api/register', { username });
      if (r.status !== 201 || typeof r.data.key !== 'string') {
        el.regMsg.textContent = httpError(r);
        return;
      }
      el.newKey.value = r.data.key;
      el.copyMsg.textContent = '';
      // The name is taken now (by us): offer Register again only for a
      // different name.
      el.regSubmit.disabled = true;
      el.regSubmit.textContent = 'Registered';
      el.regMsg.textContent = '';
      el.keyBox.hidden = false;
      el.newKey.focus();
      el.newKey.select();
    } catch {
      el.regMsg.textContent = 'Cannot reach the server.';
    }
  });

  el.regName.addEventListener('input', () => {
    el.regSubmit.disabled = false;
    el.regSubmit.textContent = 'Register';
  });

  el.copyKey.addEventListener('click', async () => {
    const key = el.newKey.value;
    try {
      await navigator.clipboard.writeText(key);
    } catch {
      // The clipboard API needs HTTPS; selecting the text lets the
      // browser's own copy command do the rest.
      el.newKey.select();
      if (!document.execCommand || !document.execCommand('copy')) {
        el.copyMsg.textContent = 'Copy failed: the key is selected, copy it by hand.';
        return;
      }
    }
    el.copyMsg.textContent = 'Key copied.';
  });

  el.useKey.addEventListener('click', () => {
    el.loginKey.value = el.newKey.value;
    el.loginForm.requestSubmit();
  });

  el.loginForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = el.loginKey.value.trim();
    el.loginMsg.textContent = '';
    if (!key) {
      el.loginMsg.textContent = 'Paste the key you got when you registered.';
      el.loginKey.focus();
      return;
    }
    try {
      const r = await api('POST', 'api/login', { key });
      if (!r.ok) {
        el.loginMsg.textContent = httpError(r);
        return;
      }
      el.loginKey.value = '';
      // Older servers answer with an empty body: ask who we are.
      let name = r.data.username;
      if (typeof name !== 'string') {
        const me = await api('GET', 'api/user/@me');
        name = me.data.username;
      }
      enterChat(String(name));
    } catch {
      el.loginMsg.textContent = 'Cannot reach the server.';
    }
  });

  el.logout.addEventListener('click', async () => {
    dropSocket();
    try { await api('POST', 'api/logout'); } catch { /* the view changes anyway */ }
    showAuth('You have logged out.');
  });

  // ---- WebSocket ----------------------------------------------------------

  function wsUrl() {
    const url = new URL('ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    if (state.history && state.lastId !== null) url.searchParams.set('since', String(state.lastId));
    return url;
  }

  function connect() {
    clearTimeout(state.timer);
    if (!state.me || state.ws) return;
    setStatus('Connecting…');
    let ws;
    try { ws = new WebSocket(wsUrl()); } catch { scheduleReconnect(); return; }
    state.ws = ws;
    ws.onopen = () => {
      if (state.ws !== ws) return;
      state.attempt = 0;
      setStatus('');
      resendPending(ws);
      updateComposer();
      refreshOnline();
    };
    ws.onmessage = (ev) => { if (state.ws === ws) onFrame(ev.data); };
    ws.onclose = (ev) => { if (state.ws === ws) onClose(ev); };
  }

  // Forgets the current socket first, so its close event changes nothing.
  function dropSocket() {
    clearTimeout(state.timer);
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000);
    failPending('Not confirmed: the connection closed before the server answered.');
    updateComposer();
  }

  async function onClose(ev) {
    state.ws = null;
    if (state.history && state.pending.every((p) => p.cid)) {
      // Sent again with the same client_id once reconnected; the server
      // stores each at most once.
      for (const p of state.pending) p.note.textContent = 'Waiting for the connection…';
    } else {
      failPending('Not confirmed: the connection closed before the server answered.');
    }
    updateComposer();
    el.onlineList.classList.add('stale');
    if (ev.code === 1000 && ev.reason === 'logged out') {
      showAuth('You were logged out.');
      return;
    }
    // A refused upgrade (expired session, or this user already connected in
    // another tab) looks like any network failure here: ask the server.
    const me = state.me;
    let why = 'Disconnected.';
    try {
      const r = await api('GET', 'api/user/@me');
      if (state.me !== me) return;
      if (r.status === 401 || r.status === 422) {
        showAuth('Your session has ended. Please log in again.');
        return;
      }
      // The server allows one socket per user.
      if (r.ok && r.data.online) why = 'This account seems to be open in another tab or device.';
    } catch { /* server unreachable: keep retrying */ }
    if (state.me === me) scheduleReconnect(why);
  }

  function scheduleReconnect(why = 'Disconnected.') {
    // Exponential backoff with jitter: a restarting server is not hit by
    // every client at the same instant.
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** state.attempt);
    const delay = cap / 2 + Math.random() * (cap / 2);
    state.attempt = Math.min(state.attempt + 1, 16);
    setStatus(`${why} Reconnecting in ${Math.ceil(delay / 1000)} s…`);
    clearTimeout(state.timer);
    state.timer = setTimeout(connect, delay);
  }

  // Back online after a network change: no need to wait out the backoff.
  window.addEventListener('online', () => { if (state.me && !state.ws) connect(); });

  // Messages whose ack was lost go out again, in order, so acks still match
  // the queue. Only with client_id (history servers), so nothing is doubled.
  function resendPending(ws) {
    for (const p of state.pending) {
      ws.send(JSON.stringify({ message: p.text, client_id: p.cid }));
      p.note.textContent = 'Sending…';
    }
  }

  function onFrame(data) {
    let f;
    try { f = JSON.parse(data); } catch { return; }
    if (!f || typeof f !== 'object') return;
    if (typeof f.status === 'boolean') {
      onAck(f);
    } else if ((f.event === 'join' || f.event === 'leave') && typeof f.username === 'string') {
      onPresence(f.event, f.username);
    } else if (f.event === 'resync') {
      resync();
    } else if (typeof f.message === 'string' && typeof f.author === 'string') {
      addMessage(f, 'append');
    }
  }

  function onAck(f) {
    const p = state.pending.shift();
    if (!p) return;
    p.li.classList.remove('pending');
    if (f.status) {
      p.note.textContent = '';
      if (f.id === undefined || f.id === null) return;
      // Already shown by the replay after a reconnect: drop the copy.
      if (state.seen.has(String(f.id))) p.li.remove();
      else noteId(f.id, p.li);
    } else {
      // Sending the same text again can only help when the refusal was
      // about timing; an unknown code might be, so it is offered too.
      const final = ['message_too_long', 'invalid_json', 'invalid_message', 'binary_not_supported'];
      markFailed(p, ACK_ERRORS[f.code] || `Not sent (${f.code}).`, !final.includes(f.code));
    }
  }

  function failPending(text) {
    for (const p of state.pending) {
      p.li.classList.remove('pending');
      markFailed(p, text, true);
    }
    state.pending = [];
  }

  // Shows why a message failed, with a Retry button when sending it again
  // could work.
  function markFailed(p, text, retryable) {
    p.li.classList.add('failed');
    p.note.textContent = text;
    if (!retryable) return;
    const retry = document.createElement('button');
    retry.type = 'button';
    retry.className = 'retry';
    retry.textContent = 'Retry';
    retry.addEventListener('click', () => resend(p));
    p.note.append(' ', retry);
  }

  // Sends a failed message again as a new one (a new client_id: the server
  // never stored the old one), moved to the end where its answer will be.
  function resend(p) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      setComposerMsg('Not connected: retry once the connection is back.');
      return;
    }
    const frame = { message: p.text };
    if (state.history) frame.client_id = p.cid = nextClientId();
    ws.send(JSON.stringify(frame));
    p.li.classList.remove('failed');
    p.li.classList.add('pending');
    p.note.textContent = 'Sending…';
    state.pending.push(p);
    insert(p.li, 'append');
    scrollToEnd(true);
  }

  // ---- online list ----------------------------------------------------------

  async function refreshOnline() {
    try {
      const r = await api('GET', 'api/online');
      if (r.ok && Array.isArray(r.data.online_clients)) setOnline(r.data.online_clients.map(String));
    } catch { /* the join/leave events keep the list roughly right */ }
  }

  function onPresence(event, name) {
    if (event === 'join') {
      if (!state.online.includes(name)) setOnline([...state.online, name]);
      addNotice(`${name} joined`);
    } else {
      setOnline(state.online.filter((n) => n !== name));
      addNotice(`${name} left`);
    }
  }

  function setOnline(names) {
    state.online = names;
    const items = names.map((name) => {
      const li = document.createElement('li');
      li.textContent = name;
      if (name === state.me) {
        li.classList.add('self');
        const you = document.createElement('span');
        you.className = 'you';
        you.textContent = ' (you)';
        li.append(you);
      }
      return li;
    });
    el.onlineList.replaceChildren(...items);
    el.onlineList.classList.remove('stale');
    el.onlineCount.textContent = `(${names.length})`;
  }

  // ---- history (servers that have GET api/messages) -----------------------

  async function loadHistory() {
    if (state.history === false) return;
    let r;
    try { r = await api('GET', `api/messages?limit=${HISTORY_PAGE}`); } catch { return; }
    if (r.status === 404 || r.status === 405) { state.history = false; return; }
    if (r.status === 401 || r.status === 422) { showAuth('Your session has ended. Please log in again.'); return; }
    if (!r.ok || !Array.isArray(r.data.messages)) return;
    state.history = true;
    const list = sortById(r.data.messages);
    for (const m of list) addMessage(m, 'append', true);
    el.older.hidden = list.length < HISTORY_PAGE;
    scrollToEnd(true);
  }

  // Too much was missed for the server to replay: start again from the
  // newest page. Live messages arriving meanwhile find their place by id.
  async function resync() {
    // Our own unconfirmed messages stay: their acks are still to come.
    for (const n of [...el.messages.children]) if (!n.classList.contains('pending')) n.remove();
    state.seen.clear();
    state.lastId = state.oldestId = null;
    addNotice('Many messages were missed; showing the latest.');
    await loadHistory();
  }

  el.older.addEventListener('click', async () => {
    if (state.oldestId === null) return;
    let r;
    try {
      r = await api('GET', `api/messages?before=${encodeURIComponent(state.oldestId)}&limit=${HISTORY_PAGE}`);
    } catch { return; }
    if (!r.ok || !Array.isArray(r.data.messages)) return;
    const list = sortById(r.data.messages);
    // Prepend newest first, so the oldest ends at the top; keep the view
    // where the reader was.
    const before = el.log.scrollHeight;
    for (let i = list.length - 1; i >= 0; i--) addMessage(list[i], 'prepend', true);
    el.log.scrollTop += el.log.scrollHeight - before;
    el.older.hidden = list.length < HISTORY_PAGE;
  });

  function sortById(list) {
    return list.filter((m) => m && typeof m.message === 'string')
      .sort((a, b) => Number(a.id) - Number(b.id));
  }

  // ---- rendering ------------------------------------------------------------

  function noteId(id, li) {
    state.seen.add(String(id));
    li.dataset.id = String(id);
    if (state.lastId === null || Number(id) > Number(state.lastId)) state.lastId = id;
    if (state.oldestId === null || Number(id) < Number(state.oldestId)) state.oldestId = id;
  }

  // ts may be seconds or milliseconds since 1970, or an ISO 8601 string.
  function toDate(ts) {
    if (typeof ts === 'number') return new Date(ts < 1e12 ? ts * 1000 : ts);
    if (typeof ts === 'string') {
      const d = new Date(ts);
      if (!Number.isNaN(d.getTime())) return d;
    }
    return new Date();
  }

  function timeElement(date) {
    const t = document.createElement('time');
    t.dateTime = date.toISOString();
    t.title = date.toLocaleString();
    t.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return t;
  }

  function messageItem(author, text, date) {
    const li = document.createElement('li');
    li.className = 'msg';
    const head = document.createElement('div');
    head.className = 'meta';
    const who = document.createElement('span');
    who.className = 'author';
    who.textContent = author;
    head.append(who, ' ', timeElement(date));
    const body = document.createElement('p');
    body.className = 'text';
    body.textContent = text;
    const note = document.createElement('p');
    note.className = 'note';
    li.append(head, body, note);
    return { li, note };
  }

  function addMessage(m, where, fromHistory) {
    if (m.id !== undefined && m.id !== null && state.seen.has(String(m.id))) return;
    const author = String(m.author);
    const { li } = messageItem(author, m.message, toDate(m.ts));
    if (author === state.me) li.classList.add('own');
    if (m.id !== undefined && m.id !== null) noteId(m.id, li);
    if (fromHistory) li.classList.add('old');
    insert(li, where, m.id);
  }

  function addNotice(text) {
    const li = document.createElement('li');
    li.className = 'event';
    li.append(text, ' ', timeElement(new Date()));
    insert(li, 'append');
  }

  function insert(li, where, id) {
    if (where === 'prepend') {
      el.messages.prepend(li);
      return;
    }
    const stick = nearEnd();
    // Normally the end; a message older than some shown one (history that
    // arrived after live frames) goes before the first newer one.
    let after = null;
    if (id !== undefined && id !== null) {
      for (let n = el.messages.lastElementChild; n; n = n.previousElementSibling) {
        if (n.dataset.id !== undefined && Number(n.dataset.id) > Number(id)) after = n;
        else if (n.dataset.id !== undefined) break;
      }
    }
    if (after) el.messages.insertBefore(li, after);
    else el.messages.append(li);
    while (el.messages.children.length > MAX_SHOWN) {
      el.messages.firstElementChild.remove();
      const first = el.messages.querySelector('li[data-id]');
      state.oldestId = first ? first.dataset.id : state.oldestId;
      el.older.hidden = !state.history;
    }
    scrollToEnd(stick);
  }

  function nearEnd() {
    return el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 80;
  }

  // Follows new messages only when the reader is already at the end, so
  // scrolling back to read is not interrupted.
  function scrollToEnd(really) {
    if (really) el.log.scrollTop = el.log.scrollHeight;
  }

  function setStatus(text) {
    el.status.textContent = text;
    el.status.hidden = !text;
  }

  // ---- composer ---------------------------------------------------------------

  const codePoints = (s) => [...s].length; // how the server counts

  function updateComposer() {
    const n = codePoints(el.text.value);
    const over = n > MAX_LEN;
    el.counter.textContent = `${n} / ${MAX_LEN}`;
    el.counter.classList.toggle('over', over);
    el.text.setAttribute('aria-invalid', String(over));
    const open = !!state.ws && state.ws.readyState === WebSocket.OPEN;
    el.send.disabled = !open || over || !/\S/u.test(el.text.value);
    // A red counter alone does not say why Enter does nothing.
    setComposerMsg(over ? `Too long to send: ${n} characters, the limit is ${MAX_LEN}.` : '');
  }

  function setComposerMsg(text) {
    el.composerMsg.textContent = text;
    el.composerMsg.hidden = !text;
  }

  function nextClientId() {
    return `c${Date.now().toString(36)}-${++state.sent}`;
  }

  el.text.addEventListener('input', updateComposer);

  el.text.addEventListener('keydown', (ev) => {
    // Enter sends; Shift+Enter makes a new line; an input method composing
    // text uses Enter for itself.
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      el.sendForm.requestSubmit();
    }
  });

  el.sendForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = el.text.value;
    const ws = state.ws;
    if (!/\S/u.test(text)) return;
    // Say why nothing was sent; the text stays in the box.
    if (codePoints(text) > MAX_LEN) {
      updateComposer();
      return;
    }
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      setComposerMsg('Not connected yet: the message is kept here; send it once connected.');
      return;
    }
    const frame = { message: text };
    let cid;
    // client_id makes a resend after a lost ack safe; a server without
    // history would refuse the extra field.
    if (state.history) frame.client_id = cid = nextClientId();
    ws.send(JSON.stringify(frame));
    const { li, note } = messageItem(state.me, text, new Date());
    li.classList.add('own', 'pending');
    note.textContent = 'Sending…';
    state.pending.push({ li, note, text, cid });
    insert(li, 'append');
    scrollToEnd(true);
    el.text.value = '';
    updateComposer();
  });

  // ---- start ------------------------------------------------------------------

  async function start() {
    if (!sessionFlagged()) {
      showAuth('');
      return;
    }
    try {
      const r = await api('GET', 'api/user/@me');
      if (r.ok && typeof r.data.username === 'string') {
        enterChat(r.data.username);
        return;
      }
      showAuth('');
    } catch {
      showAuth('Cannot reach the server. Reload the page to try again.');
    }
  }

  start();
})();
