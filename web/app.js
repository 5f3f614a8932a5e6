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
//   server has it: a 404 from api/messages means an older server; rooms and
//   direct messages likewise only when api/rooms answers;
// - every conversation (general, another room, a direct conversation) keeps
//   its own message list; a frame goes to the list its fields name: `to`
//   is a direct message (the conversation is the other party), `room`
//   another room, neither general. Ids are one sequence over all of them,
//   so one set of seen ids and one newest id serve every conversation.
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
    log: $('log'), older: $('older'),
    sendForm: $('send-form'), text: $('text'), counter: $('counter'), send: $('send'),
    composerMsg: $('composer-msg'),
    side: $('side'), sideToggle: $('side-toggle'), totalUnread: $('total-unread'),
    roomsNav: $('rooms-nav'), roomList: $('room-list'), browseRooms: $('browse-rooms'), publicNone: $('public-none'),
    publicList: $('public-list'), dmList: $('dm-list'), dmHint: $('dm-hint'),
    newRoom: $('new-room'), roomForm: $('room-form'), roomName: $('room-name'),
    roomPrivate: $('room-private'), roomMsg: $('room-msg'),
    convTitle: $('conv-title'), convInfo: $('conv-info'), leaveRoom: $('leave-room'),
    inviteForm: $('invite-form'), inviteName: $('invite-name'), inviteMsg: $('invite-msg'),
    newDm: $('new-dm'), dmForm: $('dm-form'), dmName: $('dm-name'), dmMsg: $('dm-msg'),
  };
  // The list in the page is general's until another conversation is opened.
  const generalList = $('messages');

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

  // Per user, in this browser: the newest id received (so a reload resumes
  // with since= and counts what came meanwhile as unread) and the direct
  // conversations opened (the server has no list of them).
  function stored(what) {
    try {
      const v = localStorage.getItem(`piratchat.${what}.${state.me.toLowerCase()}`);
      return v === null ? null : JSON.parse(v);
    } catch { return null; }
  }
  function store(what, value) {
    try {
      const key = `piratchat.${what}.${state.me.toLowerCase()}`;
      if (value === null) localStorage.removeItem(key);
      else localStorage.setItem(key, JSON.stringify(value));
    } catch { /* storage off: nothing survives a reload, that is all */ }
  }

  // Human wording for the server's error codes ({"error": code} bodies).
  const HTTP_ERRORS = {
    invalid_username: 'A username is 1 to 32 letters (A–Z, a–z) or digits.',
    username_taken: 'That username is already taken.',
    invalid_key: 'That key is not valid.',
    invalid_request: 'The server could not read that request.',
    rate_limited: 'Too many attempts from your address.',
    server_busy: 'The server is busy. Try again in a moment.',
    invalid_room_name: 'A room name is 1 to 32 of a–z, 0–9, - and _.',
    room_exists: 'A room with that name exists already.',
    room_not_found: 'That room does not exist (any more).',
    user_not_found: 'There is no user with that name.',
    forbidden: 'Only the room\'s owner or a moderator can do that.',
    cannot_leave: 'Nobody leaves general, and the owner of a private room stays in it.',
    banned: 'This account has been banned.',
    kicked: 'You were kicked from that room; its owner or a moderator can invite you back.',
    not_a_member: 'That user is not in this room.',
    cannot_kick: 'Nobody can be kicked from general (admins may mute there).',
    target_is_admin: 'That user is an admin: take the role back first.',
    invalid_duration: 'A duration is a number and s, m, h, d or w, e.g. 10m.',
  };
  // Wording for {"status": false, "code": ...} acks, shown under the message.
  const ACK_ERRORS = {
    message_too_long: `Not sent: longer than ${MAX_LEN} characters.`,
    invalid_json: 'Not sent: the server could not read it.',
    invalid_message: 'Not sent: the message was empty or malformed.',
    binary_not_supported: 'Not sent: binary data is not supported.',
    rate_limited: 'Not sent: you are sending too fast. Wait a moment.',
    not_a_member: 'Not sent: you are not in this room (any more).',
    room_not_found: 'Not sent: this room does not exist for you.',
    user_not_found: 'Not sent: there is no such user.',
    not_found: 'That message is gone.',
    forbidden: 'Only its author (or a moderator) may do that.',
    invalid_emoji: 'The server did not take that emoji.',
    muted: 'Not done: you are muted.',
  };
  // Refusals that sending the same frame again cannot cure.
  const FINAL_ACKS = ['message_too_long', 'invalid_json', 'invalid_message', 'binary_not_supported',
    'not_a_member', 'room_not_found', 'user_not_found', 'muted'];

  const state = {
    me: null,          // our username while logged in
    ws: null,          // the current socket; events of older sockets are ignored
    attempt: 0,        // failed connections in a row, for the backoff
    timer: 0,          // pending reconnect
    pending: [],       // our messages awaiting an ack, oldest first
    sent: 0,           // counter for client_id
    online: [],        // usernames, in the server's order
    history: null,     // null: not known yet; false: server has no history API
    rooms: null,       // null: not known yet; false: server has no rooms API
    roomLines: [],     // GET api/rooms, as last read
    roomsGen: 0,       // GET api/rooms requests made, see refreshRooms()
    lastId: null,      // newest id received on a socket, for ws?since= on reconnect
    seen: new Set(),   // ids already shown, so a replay never doubles a message
    convs: new Map(),  // conversation key -> conversation (see conv())
    current: null,     // the conversation on screen
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
    state.lastId = null;
    state.seen.clear();
    resetConvs();
    setOnline([]);
    el.older.hidden = true;
    el.loading.hidden = true;
    el.chatView.hidden = true;
    el.whoami.hidden = el.logout.hidden = true;
    el.authView.hidden = false;
    setAdmin(false);
    el.authMsg.classList.remove('banned');
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
    const g = general();
    for (const name of stored('dms') || []) if (typeof name === 'string') conv('dm', name);
    showConv(g);
    updateComposer();
    el.text.focus();
    checkAdmin(username);
    // History and rooms first, so the socket can ask for whatever came
    // after them.
    await Promise.all([loadHistory(g), refreshRooms(true)]);
    if (state.me !== username) return;
    // Resume from the newest id this browser received before, so what came
    // meanwhile in other conversations arrives (and counts as unread);
    // otherwise from the newest one the page knows of.
    const last = stored('last');
    const known = Math.max(g.newestId, ...state.roomLines.filter((r) => r.joined).map((r) => Number(r.last_id) || 0));
    if (state.history) state.lastId = Number.isSafeInteger(last) && last > 0 ? last : known;
    connect();
  }

  // ---- conversations ----------------------------------------------------------

  const same = (a, b) => String(a).toLowerCase() === String(b).toLowerCase();
  const isGeneral = (c) => c.key === 'r:general';
  const label = (c) => (c.kind === 'dm' ? `@${c.name}` : `# ${c.name}`);

  // The conversation with that kind ('room' or 'dm') and name, made on
  // first use. A direct conversation is named by the other party.
  function conv(kind, name) {
    const key = `${kind === 'dm' ? 'd' : 'r'}:${String(name).toLowerCase()}`;
    let c = state.convs.get(key);
    if (c) return c;
    let list = generalList;
    if (key !== 'r:general') {
      list = document.createElement('ol');
      list.className = 'messages';
      list.setAttribute('role', 'log');
      list.setAttribute('aria-live', 'polite');
      list.setAttribute('aria-relevant', 'additions');
    }
    c = {
      key, kind, name: kind === 'dm' ? String(name) : String(name).toLowerCase(), list,
      loaded: false,     // history asked for
      oldestId: null,    // oldest message id shown, for "show earlier messages"
      newestId: 0,       // newest message id shown
      hasOlder: false,
      unread: 0,
      countFrom: 0,      // ids up to this one are in the server's `unread` already
      joined: true, private: false, role: null, members: null,
      atEnd: true, scrollTop: 0,
      gen: state.roomsGen, // a room list asked for before this was made may not have it yet
    };
    state.convs.set(key, c);
    applyModeration();
    if (kind === 'dm') store('dms', dmConvs().map((d) => d.name));
    return c;
  }
  const general = () => conv('room', 'general');
  const dmConvs = () => [...state.convs.values()].filter((c) => c.kind === 'dm');

  // The fields a frame to this conversation carries, and its history query.
  function target(c) {
    if (c.kind === 'dm') return { to: c.name };
    return isGeneral(c) ? {} : { room: c.name };
  }
  function historyQuery(c) {
    if (c.kind === 'dm') return `with=${encodeURIComponent(c.name)}&`;
    return isGeneral(c) ? '' : `room=${encodeURIComponent(c.name)}&`;
  }

  // The conversation a frame from the server belongs to.
  function convOf(f) {
    if (typeof f.to === 'string' && f.to) return conv('dm', same(f.author, state.me) ? f.to : f.author);
    if (typeof f.room === 'string' && f.room) return conv('room', f.room);
    return general();
  }

  function resetConvs() {
    const shown = el.log.querySelector('ol');
    if (shown !== generalList) shown.replaceWith(generalList);
    generalList.id = 'messages';
    generalList.replaceChildren();
    state.convs.clear();
    state.current = null;
    state.roomLines = [];
    el.roomList.replaceChildren();
    el.publicList.replaceChildren();
    el.dmList.replaceChildren();
    setSide(false);
    document.title = 'Piratchat';
  }

  // Forgets a conversation we are no longer in (its ids too, so history
  // shows them again if we come back).
  function dropConv(c) {
    if (isGeneral(c)) return;
    for (const li of c.list.querySelectorAll('li[data-id]')) state.seen.delete(li.dataset.id);
    state.convs.delete(c.key);
    if (state.current === c) showConv(general());
    renderSide();
  }

  // Puts a conversation on screen (its list in place of the one shown).
  function showConv(c) {
    const old = state.current;
    if (old && old !== c) {
      old.atEnd = nearEnd();
      old.scrollTop = el.log.scrollTop;
      el.inviteMsg.textContent = '';
    }
    const shown = el.log.querySelector('ol');
    if (shown !== c.list) {
      shown.removeAttribute('id');
      shown.replaceWith(c.list);
    }
    c.list.id = 'messages';
    c.list.setAttribute('aria-label', `Messages in ${label(c)}`);
    state.current = c;
    c.unread = 0;
    el.older.hidden = !c.hasOlder;
    updateHeader();
    renderSide();
    updateComposer();
    if (c.atEnd) scrollToEnd(true);
    else el.log.scrollTop = c.scrollTop;
    showTyping();
    markRead(c);
  }

  // What a click in the lists does: show it, and fetch its history once.
  function openConv(c) {
    showConv(c);
    setSide(false);
    el.text.focus();
    if (!c.loaded) loadHistory(c);
  }

  function updateHeader() {
    const c = state.current;
    if (!c) return;
    el.convTitle.textContent = label(c);
    let info = '';
    if (c.kind === 'dm') info = state.online.some((n) => same(n, c.name)) ? 'online' : 'offline';
    else if (isGeneral(c)) info = state.rooms ? 'everyone' : '';
    else if (c.members !== null) info = `${c.private ? 'private, ' : ''}${c.members} member${c.members === 1 ? '' : 's'}`;
    el.convInfo.textContent = info;
    // A private room's owner may not leave it (the server says cannot_leave).
    el.leaveRoom.hidden = c.kind !== 'room' || isGeneral(c) || !state.rooms
      || (c.private && c.role === 'owner');
    el.leaveRoom.setAttribute('aria-label', `Leave room ${c.name}`);
    updateMembers(c);
    const canInvite = c.kind === 'room' && c.private && (c.role === 'owner' || c.role === 'moderator');
    if (el.inviteForm.hidden === canInvite) {
      el.inviteForm.hidden = !canInvite;
      el.inviteMsg.textContent = '';
    }
    el.text.placeholder = `Message ${label(c)} (Enter sends)`;
  }

  // Rebuilds the room and direct-message lists (a few dozen entries at
  // most), keeping the keyboard focus on the entry that had it.
  function renderSide() {
    if (!state.current) return;
    const focused = document.activeElement && document.activeElement.dataset.focusKey;
    const rooms = [...state.convs.values()].filter((c) => c.kind === 'room' && c.joined)
      .sort((a, b) => (isGeneral(b) - isGeneral(a)) || a.name.localeCompare(b.name));
    el.roomList.replaceChildren(...rooms.map(convItem));
    const open = state.roomLines.filter((r) => !r.joined && !r.private);
    el.publicNone.hidden = open.length > 0;
    el.publicList.replaceChildren(...open.map(joinItem));
    const dms = dmConvs().sort((a, b) => (b.newestId - a.newestId) || a.name.localeCompare(b.name));
    el.dmList.replaceChildren(...dms.map(convItem));
    el.dmHint.hidden = dms.length > 0;
    let total = 0;
    for (const c of state.convs.values()) total += c.unread;
    el.totalUnread.textContent = total ? String(total) : '';
    el.totalUnread.hidden = !total;
    document.title = total ? `(${total}) Piratchat` : 'Piratchat';
    if (focused) {
      const again = el.side.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  function convItem(c) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'conv';
    b.dataset.focusKey = c.key;
    b.dataset.conv = c.key;
    if (c === state.current) b.setAttribute('aria-current', 'true');
    const name = document.createElement('span');
    name.className = 'conv-name';
    name.textContent = label(c);
    b.append(name);
    if (c.private) b.append(small(' private'));
    if (c.kind === 'dm' && state.online.some((n) => same(n, c.name))) {
      b.classList.add('on');
      const sr = document.createElement('span');
      sr.className = 'visually-hidden';
      sr.textContent = ' (online)';
      b.append(sr);
    }
    if (c.unread) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = String(c.unread);
      const sr = document.createElement('span');
      sr.className = 'visually-hidden';
      sr.textContent = ' unread';
      badge.append(sr);
      b.append(badge);
    }
    b.addEventListener('click', () => openConv(c));
    li.append(b);
    return li;
  }

  function joinItem(r) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'conv-name';
    name.textContent = `# ${r.name}`;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'quiet join';
    b.dataset.focusKey = `j:${r.name}`;
    b.dataset.join = r.name;
    b.textContent = 'Join';
    b.setAttribute('aria-label', `Join room ${r.name}`);
    b.addEventListener('click', () => joinRoom(r.name));
    li.append(name, small(` ${Number(r.members) || 0}`, `${Number(r.members) || 0} members`), b);
    return li;
  }

  function small(text, title) {
    const s = document.createElement('span');
    s.className = 'muted';
    s.textContent = text;
    if (title) s.title = title;
    return s;
  }

  // The phone layout hides the lists behind the Conversations button.
  function setSide(open) {
    el.chatView.classList.toggle('side-open', open);
    el.sideToggle.setAttribute('aria-expanded', String(open));
  }
  el.sideToggle.addEventListener('click', () => {
    setSide(el.sideToggle.getAttribute('aria-expanded') !== 'true');
  });
  el.side.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Escape' || !el.chatView.classList.contains('side-open')) return;
    setSide(false);
    el.sideToggle.focus();
  });

  // ---- rooms (servers that have GET api/rooms) ---------------------------------

  async function refreshRooms(initial) {
    if (state.rooms === false) return;
    const gen = ++state.roomsGen;
    let r;
    try { r = await api('GET', 'api/rooms'); } catch { return; }
    if (!state.me) return;
    if (r.status === 404 || r.status === 405) {
      state.rooms = false;
      el.chatView.classList.add('no-rooms');
      setOnline(state.online);
      return;
    }
    if (!r.ok || !Array.isArray(r.data.rooms)) return;
    const fresh = state.rooms !== true;
    state.rooms = true;
    el.chatView.classList.remove('no-rooms');
    state.roomLines = r.data.rooms.filter((x) => x && typeof x.name === 'string');
    const joined = new Set();
    for (const line of state.roomLines) {
      if (!line.joined) continue;
      const c = conv('room', line.name);
      joined.add(c);
      c.joined = true;
      c.private = !!line.private;
      c.role = typeof line.role === 'string' ? line.role : null;
      c.members = Number.isFinite(line.members) ? line.members : null;
      // A server that keeps read markers counts for us at load; frames up
      // to its last_id are in that count already.
      if (initial && Number(line.unread) > 0 && c !== state.current) {
        c.unread = Number(line.unread);
        c.countFrom = Number(line.last_id) || 0;
      }
    }
    for (const c of [...state.convs.values()]) {
      if (c.kind === 'room' && !joined.has(c) && c.gen < gen) dropConv(c);
    }
    if (fresh) setOnline(state.online); // people become buttons
    applyModeration();
    updateHeader();
    renderSide();
  }

  // Membership events come in bursts (a join reaches every member): one
  // list request for a burst.
  let roomsTimer = 0;
  function scheduleRooms() {
    clearTimeout(roomsTimer);
    roomsTimer = setTimeout(() => { if (state.me) refreshRooms(false); }, 150);
  }

  // Nobody is told when a room is made: the list is read again whenever
  // it is opened.
  el.browseRooms.addEventListener('toggle', () => { if (el.browseRooms.open) refreshRooms(false); });

  async function roomAction(name, action, body) {
    try {
      return await api('POST', `api/rooms/${encodeURIComponent(name)}/${action}`, body);
    } catch {
      return { status: 0, ok: false, data: { error: 'unreachable' } };
    }
  }

  async function joinRoom(name) {
    const r = await roomAction(name, 'join');
    if (!r.ok) {
      setComposerMsg(r.status ? httpError(r) : 'Cannot reach the server.');
      return;
    }
    await refreshRooms(false);
    openConv(conv('room', name));
  }

  el.leaveRoom.addEventListener('click', async () => {
    const c = state.current;
    if (!c || c.kind !== 'room' || isGeneral(c)) return;
    const r = await roomAction(c.name, 'leave');
    if (!r.ok) {
      setComposerMsg(r.status ? httpError(r) : 'Cannot reach the server.');
      return;
    }
    dropConv(c);
    refreshRooms(false);
    el.text.focus();
  });

  el.roomForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = el.roomName.value.trim();
    el.roomMsg.textContent = '';
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(name)) {
      el.roomMsg.textContent = HTTP_ERRORS.invalid_room_name;
      el.roomName.focus();
      return;
    }
    let r;
    try {
      r = await api('POST', 'api/rooms', { name, private: el.roomPrivate.checked });
    } catch {
      el.roomMsg.textContent = 'Cannot reach the server.';
      return;
    }
    if (r.status !== 201) {
      el.roomMsg.textContent = httpError(r);
      return;
    }
    el.roomName.value = '';
    el.roomPrivate.checked = false;
    el.newRoom.open = false;
    await refreshRooms(false);
    openConv(conv('room', typeof r.data.name === 'string' ? r.data.name : name));
  });

  el.inviteForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const c = state.current;
    const username = el.inviteName.value.trim();
    if (!c || !username) return;
    const r = await roomAction(c.name, 'invite', { username });
    if (!r.ok) {
      el.inviteMsg.textContent = r.status ? httpError(r) : 'Cannot reach the server.';
      return;
    }
    el.inviteName.value = '';
    el.inviteMsg.textContent = `Invited ${username}.`;
  });

  // A direct conversation with someone who is not online: the name is
  // checked (and its case taken) with api/user/NAME.
  el.dmForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = el.dmName.value.trim();
    el.dmMsg.textContent = '';
    if (!/^[A-Za-z0-9]{1,32}$/.test(name)) {
      el.dmMsg.textContent = HTTP_ERRORS.user_not_found;
      el.dmName.focus();
      return;
    }
    let r;
    try { r = await api('GET', `api/user/${encodeURIComponent(name)}`); } catch { r = null; }
    if (!r || !r.ok || typeof r.data.username !== 'string') {
      el.dmMsg.textContent = r ? httpError(r) : 'Cannot reach the server.';
      return;
    }
    el.dmName.value = '';
    el.newDm.open = false;
    openConv(conv('dm', r.data.username));
    renderSide();
  });

  // room_join / room_leave: a notice in the room; our own ones change the
  // room list (joined or invited elsewhere, left on another device).
  function onMembership(f) {
    if (f.id !== undefined && f.id !== null && state.seen.has(String(f.id))) return;
    const mine = same(f.username, state.me);
    const key = `r:${f.room.toLowerCase()}`;
    if (mine && f.event === 'room_leave') {
      const c = state.convs.get(key);
      if (c) dropConv(c);
    } else {
      const c = conv('room', f.room);
      const who = mine ? 'You' : f.username;
      addNotice(`${who} ${f.event === 'room_join' ? 'joined' : 'left'} the room`, c, f.id, f.ts);
    }
    scheduleRooms();
    if (mine && f.event === 'room_join') renderSide();
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
    // Whom one talked to stays off a shared computer after logging out.
    if (state.me) { store('dms', null); store('last', null); }
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
    // Edits, reactions, typing and read markers are not sent again: their
    // acks will never come.
    state.pending = state.pending.filter((p) => !p.op);
    if (state.history && state.pending.every((p) => p.cid)) {
      // Sent again with the same client_id once reconnected; the server
      // stores each at most once.
      for (const p of state.pending) p.note.textContent = 'Waiting for the connection…';
    } else {
      failPending('Not confirmed: the connection closed before the server answered.');
    }
    updateComposer();
    el.onlineList.classList.add('stale');
    if (ev.code === 1008 && ev.reason === 'banned') {
      showBanned();
      return;
    }
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
      // Refused only when the user holds every socket the server allows
      // (one by default; servers before --sockets-per-user send neither).
      const full = (r.data?.sockets ?? 1) >= (r.data?.sockets_per_user ?? 1);
      if (r.ok && r.data.online && full) why = 'This account seems to be open in another tab or device.';
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
      ws.send(JSON.stringify({ message: p.text, client_id: p.cid, ...target(p.conv) }));
      p.note.textContent = 'Sending…';
    }
  }

  function onFrame(data) {
    let f;
    try { f = JSON.parse(data); } catch { return; }
    if (!f || typeof f !== 'object') return;
    if (typeof f.status === 'boolean') {
      onAck(f);
    } else if (CONV_EVENTS.includes(f.event)) {
      onConvEvent(f);
    } else if ((f.event === 'join' || f.event === 'leave') && typeof f.username === 'string') {
      onPresence(f.event, f.username);
    } else if (f.event === 'resync') {
      resync();
    } else if ((f.event === 'room_join' || f.event === 'room_leave')
               && typeof f.room === 'string' && typeof f.username === 'string') {
      received(f.id);
      onMembership(f);
    } else if ((f.event === 'kick' || f.event === 'mute')
               && typeof f.room === 'string' && typeof f.username === 'string') {
      onModEvent(f);
    } else if (typeof f.message === 'string' && typeof f.author === 'string') {
      received(f.id);
      addMessage(f, convOf(f), 'append');
    }
  }

  // The newest id a socket brought, for since= on the next connection (and
  // the next page load).
  function received(id) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id)) return;
    if (state.lastId === null || id > state.lastId) {
      state.lastId = id;
      store('last', id);
    }
  }

  function onAck(f) {
    const p = state.pending.shift();
    if (!p) return;
    if (p.op) {
      p.op(f);
      return;
    }
    p.li.classList.remove('pending');
    if (f.status) {
      p.note.textContent = '';
      if (f.id === undefined || f.id === null) return;
      received(f.id);
      // Already shown by the replay after a reconnect: drop the copy.
      if (state.seen.has(String(f.id))) p.li.remove();
      else noteId(f.id, p.li, p.conv, true);
      // One's own message is read: the marker follows it.
      markRead(p.conv);
    } else {
      // Sending the same text again can only help when the refusal was
      // about timing; an unknown code might be, so it is offered too.
      markFailed(p, ackError(f), !FINAL_ACKS.includes(f.code));
    }
  }

  function failPending(text) {
    for (const p of state.pending) {
      if (p.op) continue;
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
    const frame = { message: p.text, ...target(p.conv) };
    if (state.history) frame.client_id = p.cid = nextClientId();
    ws.send(JSON.stringify(frame));
    p.li.classList.remove('failed');
    p.li.classList.add('pending');
    p.note.textContent = 'Sending…';
    state.pending.push(p);
    insert(p.li, p.conv, 'append');
    if (p.conv === state.current) scrollToEnd(true);
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

  // Everyone else is a button that opens the direct conversation with them
  // (on servers with rooms and direct messages).
  function setOnline(names) {
    state.online = names;
    const items = names.map((name) => {
      const li = document.createElement('li');
      if (same(name, state.me || '')) {
        li.textContent = name;
        li.classList.add('self');
        const you = document.createElement('span');
        you.className = 'you';
        you.textContent = ' (you)';
        li.append(you);
      } else if (state.rooms) {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'person';
        b.textContent = name;
        b.dataset.focusKey = `p:${name}`;
        b.title = `Write to ${name} alone`;
        b.setAttribute('aria-label', `${name}: direct message`);
        b.addEventListener('click', () => { openConv(conv('dm', name)); renderSide(); });
        li.append(b);
      } else {
        li.textContent = name;
      }
      return li;
    });
    const focused = document.activeElement && document.activeElement.dataset.focusKey;
    el.onlineList.replaceChildren(...items);
    el.onlineList.classList.remove('stale');
    el.onlineCount.textContent = `(${names.length})`;
    if (focused && focused.startsWith('p:')) {
      const again = el.onlineList.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
    // Online marks in the direct-message list and the header.
    updateHeader();
    renderSide();
  }

  // ---- history (servers that have GET api/messages) -----------------------

  const sessionGone = (r) => r.status === 401 || (r.status === 422 && r.data.error !== 'invalid_request');

  async function loadHistory(c) {
    if (state.history === false) return;
    c.loaded = true;
    let r;
    try { r = await api('GET', `api/messages?${historyQuery(c)}limit=${HISTORY_PAGE}`); } catch { c.loaded = false; return; }
    if (isGeneral(c) && (r.status === 404 || r.status === 405)) { state.history = false; return; }
    if (sessionGone(r)) { showAuth('Your session has ended. Please log in again.'); return; }
    if (!r.ok || !Array.isArray(r.data.messages)) { c.loaded = false; return; }
    if (state.convs.get(c.key) !== c) return; // left meanwhile
    state.history = true;
    const list = sortById(r.data.messages);
    for (const m of list) addMessage(m, c, 'append', true);
    c.hasOlder = list.length >= HISTORY_PAGE;
    if (c === state.current) {
      el.older.hidden = !c.hasOlder;
      scrollToEnd(true);
      markRead(c);
    }
  }

  // Too much was missed for the server to replay: start again from the
  // newest page of each conversation (the one on screen now, the others
  // when opened). Live messages arriving meanwhile find their place by id.
  async function resync() {
    for (const c of state.convs.values()) {
      // Our own unconfirmed messages stay: their acks are still to come.
      for (const n of [...c.list.children]) if (!n.classList.contains('pending')) n.remove();
      c.loaded = false;
      c.oldestId = null;
      c.hasOlder = false;
    }
    state.seen.clear();
    const c = state.current;
    addNotice('Many messages were missed; showing the latest.', c);
    await refreshRooms(false);
    // The socket is live from here: resume later from the newest id known.
    for (const line of state.roomLines) if (line.joined) received(Number(line.last_id));
    if (state.current) await loadHistory(state.current);
  }

  el.older.addEventListener('click', async () => {
    const c = state.current;
    if (!c || c.oldestId === null) return;
    let r;
    try {
      r = await api('GET', `api/messages?${historyQuery(c)}before=${encodeURIComponent(c.oldestId)}&limit=${HISTORY_PAGE}`);
    } catch { return; }
    if (!r.ok || !Array.isArray(r.data.messages) || state.current !== c) return;
    const list = sortById(r.data.messages);
    // Prepend newest first, so the oldest ends at the top; keep the view
    // where the reader was.
    const before = el.log.scrollHeight;
    for (let i = list.length - 1; i >= 0; i--) addMessage(list[i], c, 'prepend', true);
    el.log.scrollTop += el.log.scrollHeight - before;
    c.hasOlder = list.length >= HISTORY_PAGE;
    el.older.hidden = !c.hasOlder;
  });

  function sortById(list) {
    return list.filter((m) => m && typeof m.message === 'string')
      .sort((a, b) => Number(a.id) - Number(b.id));
  }

  // ---- rendering ------------------------------------------------------------

  function noteId(id, li, c, isMessage) {
    state.seen.add(String(id));
    li.dataset.id = String(id);
    if (!isMessage) return;
    const n = Number(id);
    if (c.oldestId === null || n < Number(c.oldestId)) c.oldestId = id;
    if (n > c.newestId) c.newestId = n;
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
    const reactions = document.createElement('p');
    reactions.className = 'reactions';
    li.append(head, body, reactions, note);
    head.append(' ', actions(same(author, state.me)));
    return { li, note };
  }

  // A message into its conversation; one that arrives live for a
  // conversation not on screen counts as unread there.
  function addMessage(m, c, where, fromHistory) {
    const hasId = m.id !== undefined && m.id !== null;
    if (hasId && state.seen.has(String(m.id))) return;
    const author = String(m.author);
    const { li } = messageItem(author, m.message, toDate(m.ts));
    const own = same(author, state.me);
    if (own) li.classList.add('own');
    if (hasId) noteId(m.id, li, c, true);
    if (m.edited) li.classList.add('edited');
    if (hasId && m.reactions && typeof m.reactions === 'object') {
      const map = new Map();
      for (const [e, who] of Object.entries(m.reactions)) if (Array.isArray(who)) map.set(e, who.map(String));
      state.reactions.set(String(m.id), map);
      showReactions(li);
    }
    if (fromHistory) li.classList.add('old');
    insert(li, c, where, m.id);
    if (fromHistory) return;
    if (c === state.current) markRead(c);
    // The lists are rebuilt only when they change (a rebuild between a
    // press and a release would swallow a click): a new unread mark, or a
    // direct conversation moving up.
    if (c !== state.current && !own && !(hasId && Number(m.id) <= c.countFrom)) {
      c.unread++;
      renderSide();
    } else if (c.kind === 'dm') {
      renderSide();
    }
  }

  function addNotice(text, c = general(), id, ts) {
    const li = document.createElement('li');
    li.className = 'event';
    li.append(text, ' ', timeElement(ts === undefined ? new Date() : toDate(ts)));
    if (id !== undefined && id !== null) noteId(id, li, c, false);
    insert(li, c, 'append', id);
  }

  function insert(li, c, where, id) {
    const list = c.list;
    if (where === 'prepend') {
      list.prepend(li);
      return;
    }
    const onScreen = c === state.current;
    const stick = onScreen && nearEnd();
    // Normally the end; a message older than some shown one (history that
    // arrived after live frames) goes before the first newer one.
    let after = null;
    if (id !== undefined && id !== null) {
      for (let n = list.lastElementChild; n; n = n.previousElementSibling) {
        if (n.dataset.id !== undefined && Number(n.dataset.id) > Number(id)) after = n;
        else if (n.dataset.id !== undefined) break;
      }
    }
    if (after) list.insertBefore(li, after);
    else list.append(li);
    while (list.children.length > MAX_SHOWN) {
      list.firstElementChild.remove();
      const first = list.querySelector('li.msg[data-id]');
      c.oldestId = first ? first.dataset.id : c.oldestId;
      c.hasOlder = !!state.history;
      if (onScreen) el.older.hidden = !c.hasOlder;
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

  el.text.addEventListener('input', () => {
    updateComposer();
    sendTyping();
  });

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
    if (text.startsWith('/') && runCommand(text)) return;
    // Say why nothing was sent; the text stays in the box.
    if (codePoints(text) > MAX_LEN) {
      updateComposer();
      return;
    }
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      setComposerMsg('Not connected yet: the message is kept here; send it once connected.');
      return;
    }
    const c = state.current;
    const frame = { message: text, ...target(c) };
    let cid;
    // client_id makes a resend after a lost ack safe; a server without
    // history would refuse the extra field.
    if (state.history) frame.client_id = cid = nextClientId();
    ws.send(JSON.stringify(frame));
    const { li, note } = messageItem(state.me, text, new Date());
    li.classList.add('own', 'pending');
    note.textContent = 'Sending…';
    state.pending.push({ li, note, text, cid, conv: c });
    insert(li, c, 'append');
    scrollToEnd(true);
    el.text.value = '';
    updateComposer();
  });

  // ---- edits, deletions, reactions, typing, read markers --------------------

  const CONV_EVENTS = ['edit', 'delete', 'react', 'typing', 'read'];
  const REACTION = '👍';
  const TYPING_SEND_MS = 3000; // the server relays one notice per 3 s
  const TYPING_SHOW_MS = 6000;
  state.reactions = new Map(); // message id -> Map(emoji -> [names])
  state.typing = new Map();    // conversation key -> Map(name -> timer)
  state.typedAt = new Map();   // conversation key -> when we last sent typing

  const typingLine = document.createElement('p');
  typingLine.id = 'typing';
  typingLine.className = 'typing';
  typingLine.setAttribute('aria-live', 'polite');
  el.log.after(typingLine);

  // A frame that is not a message: its ack is matched in order like a
  // message's, and handed to `then`.
  function sendOp(frame, then) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    state.pending.push({ op: then || (() => {}) });
    return true;
  }

  // The buttons of a message: react for all, edit and delete for one's own,
  // delete, mute and kick on others' for moderators (see addModActions).
  function actions(own) {
    const span = document.createElement('span');
    span.className = 'actions';
    const button = (action, text, title, cls) => {
      const b = document.createElement('button');
      b.type = 'button';
      if (cls) b.className = cls;
      b.dataset.action = action;
      b.textContent = text;
      b.title = title;
      b.setAttribute('aria-label', title);
      span.append(b);
    };
    button('react', REACTION, `React with ${REACTION}`);
    if (own) {
      button('edit', 'Edit', 'Edit this message');
      button('delete', 'Delete', 'Delete this message');
    } else {
      addModActions(button);
    }
    return span;
  }

  el.log.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-action]');
    const li = b && b.closest('li[data-id]');
    if (!li) return; // not sent yet: no id to name it by
    const id = Number(li.dataset.id);
    const report = (f) => { if (!f.status) setComposerMsg(ACK_ERRORS[f.code] || `Not done (${f.code}).`); };
    if (b.dataset.action === 'react') {
      sendOp({ react: id, emoji: REACTION }, report);
    } else if (b.dataset.action === 'delete') {
      sendOp({ delete: id }, (f) => { report(f); if (f.status) markDeleted(li); });
    } else if (b.dataset.action === 'mute' || b.dataset.action === 'kick') {
      moderateMessage(b.dataset.action, li);
    } else if (b.dataset.action === 'edit') {
      const old = li.querySelector('.text').textContent;
      const text = window.prompt('Edit your message', old);
      if (text === null || text === old || !/\S/u.test(text)) return;
      sendOp({ edit: id, message: text }, (f) => { report(f); if (f.status) markEdited(li, text); });
    }
  });

  // A shown message by id, in whichever conversation's list it is.
  function msgItem(id) {
    const sel = `li.msg[data-id="${CSS.escape(String(id))}"]`;
    for (const c of state.convs.values()) {
      const li = c.list.querySelector(sel);
      if (li) return li;
    }
    return null;
  }

  function markEdited(li, text) {
    li.querySelector('.text').textContent = text;
    li.classList.add('edited');
  }

  function markDeleted(li) {
    li.querySelector('.text').textContent = 'Message deleted';
    li.classList.add('deleted');
    li.querySelector('.actions')?.remove();
    li.querySelector('.reactions')?.replaceChildren();
  }

  function showReactions(li) {
    const map = state.reactions.get(li.dataset.id);
    const p = li.querySelector('.reactions');
    if (!p) return;
    p.replaceChildren();
    for (const [emoji, who] of map || []) {
      if (!who.length) continue;
      const span = document.createElement('span');
      span.className = 'reaction';
      if (who.some((n) => same(n, state.me))) span.classList.add('mine');
      span.textContent = `${emoji} ${who.length}`;
      span.title = who.join(', ');
      p.append(span);
    }
  }

  // The conversation a typing or read event names.
  function eventConv(f, other) {
    if (typeof f.room === 'string' && f.room) return conv('room', f.room);
    if (typeof other === 'string' && other) return conv('dm', other);
    return general();
  }

  function onConvEvent(f) {
    if (f.event === 'typing' && typeof f.username === 'string') {
      const c = eventConv(f, typeof f.to === 'string' ? f.username : null);
      onTyping(c, f.username);
      return;
    }
    if (f.event === 'read') {
      const c = eventConv(f, f.with);
      c.readId = Math.max(c.readId || 0, Number(f.id) || 0);
      c.unread = 0;
      renderSide();
      return;
    }
    received(f.id);
    const li = msgItem(f.target);
    if (f.event === 'react' && typeof f.emoji === 'string' && typeof f.username === 'string') {
      const key = String(f.target);
      const map = state.reactions.get(key) || new Map();
      const who = (map.get(f.emoji) || []).filter((n) => !same(n, f.username));
      if (f.on) who.push(f.username);
      map.set(f.emoji, who);
      state.reactions.set(key, map);
      if (li) showReactions(li);
    } else if (f.event === 'edit' && typeof f.message === 'string') {
      if (li) markEdited(li, f.message);
    } else if (f.event === 'delete') {
      if (li) markDeleted(li);
    }
  }

  function onTyping(c, name) {
    if (same(name, state.me)) return;
    const who = state.typing.get(c.key) || new Map();
    clearTimeout(who.get(name));
    who.set(name, setTimeout(() => { who.delete(name); showTyping(); }, TYPING_SHOW_MS));
    state.typing.set(c.key, who);
    showTyping();
  }

  function showTyping() {
    const c = state.current;
    const names = c ? [...(state.typing.get(c.key) || new Map()).keys()] : [];
    typingLine.textContent = !names.length ? ''
      : `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…`;
  }

  function sendTyping() {
    const c = state.current;
    if (!c || !state.history || !/\S/u.test(el.text.value)) return;
    const last = state.typedAt.get(c.key) || 0;
    if (Date.now() - last < TYPING_SEND_MS) return;
    if (sendOp({ typing: true, ...target(c) })) state.typedAt.set(c.key, Date.now());
  }

  // The read marker follows what is on screen: the newest message of the
  // conversation shown, once the reader is at its end.
  function markRead(c) {
    if (!c || c !== state.current || !state.history || document.hidden || !nearEnd()) return;
    if (!c.newestId || c.newestId <= (c.readId || 0)) return;
    const where = c.kind === 'dm' ? { with: c.name } : (isGeneral(c) ? {} : { room: c.name });
    if (sendOp({ read: c.newestId, ...where })) c.readId = c.newestId;
  }

  el.log.addEventListener('scroll', () => markRead(state.current));
  document.addEventListener('visibilitychange', () => markRead(state.current));

  // ---- moderation and administration (SPEC §12) ------------------------------
  //
  // Room owners and moderators (the `role` of api/rooms) and server admins
  // ("admin": true in api/user/@me) get delete, mute and kick on other
  // people's messages, and the commands /kick, /mute, /ban (and /unban,
  // /unmute) in the composer. Kicking and muting in a room use the room's
  // API and reach its members as kick and mute events; in general and in
  // direct conversations /mute is the admin's server-wide mute. Admins also
  // get the admin page: the users, with ban, unban, unmute and key reset.

  const DURATION = /^\d+[smhdw]$/;
  state.admin = false;

  // The buttons every message of someone else carries; the list's classes
  // (set from the role in that conversation) show or hide them.
  function addModActions(button) {
    button('delete', 'Delete', 'Delete this message (moderator)', 'mod');
    button('mute', 'Mute', 'Mute its author', 'mod');
    button('kick', 'Kick', 'Kick its author from the room', 'mod kick');
  }

  const canModerate = (c) => c.kind === 'room'
    && (state.admin || c.role === 'owner' || c.role === 'moderator');

  function applyModeration() {
    for (const c of state.convs.values()) {
      c.list.classList.toggle('can-mod', canModerate(c));
      c.list.classList.toggle('can-kick', canModerate(c) && !isGeneral(c));
    }
  }

  const convOfList = (ol) => [...state.convs.values()].find((c) => c.list === ol) || null;

  // When an end time is shown: the time of day, with the date unless today.
  function untilText(until) {
    const d = toDate(until);
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
  }

  function ackError(f) {
    if (f.code === 'muted') {
      return f.until ? `Not sent: you are muted until ${untilText(f.until)}.` : 'Not sent: you are muted.';
    }
    return ACK_ERRORS[f.code] || `Not sent (${f.code}).`;
  }

  async function adminCall(name, action, body) {
    try {
      return await api('POST', `api/admin/users/${encodeURIComponent(name)}/${action}`, body);
    } catch {
      return { status: 0, ok: false, data: { error: 'unreachable' } };
    }
  }
  const failure = (r) => (r.status ? httpError(r) : 'Cannot reach the server.');

  // One moderation step from a command or a message's button, in the
  // conversation c. Says on screen what happened or why not; true if done.
  async function moderate(action, c, username, duration, reason) {
    const inRoom = c.kind === 'room' && !isGeneral(c);
    let r;
    let done = '';
    if (action === 'kick') {
      if (!inRoom) { setComposerMsg('Kick works in a room other than general: open the room first.'); return false; }
      r = await roomAction(c.name, 'kick', { username, reason });
      // The room's kick event says it.
    } else if (action === 'mute' && inRoom) {
      r = await roomAction(c.name, 'mute', { username, duration, reason });
    } else if (!state.admin) {
      setComposerMsg(action === 'mute' ? 'Outside a room, only admins can mute.' : 'Only admins can do that.');
      return false;
    } else if (action === 'mute') {
      r = await adminCall(username, 'mute', { duration, reason });
      if (r.ok) done = `${username} is muted everywhere until ${untilText(r.data.until)}.`;
    } else {
      r = await adminCall(username, action, action === 'ban' ? { reason } : undefined);
      done = { ban: `${username} is banned.`, unban: `${username} is no longer banned.`,
        unmute: `${username} is no longer muted.` }[action];
    }
    if (!r.ok) {
      setComposerMsg(failure(r));
      return false;
    }
    if (done) addNotice(done, c);
    return true;
  }

  // "/kick user reason", "/mute user 10m reason", "/ban user reason",
  // "/unban user", "/unmute user": null if the text is no such command.
  const COMMAND = /^\/(kick|mute|ban|unban|unmute)(?:\s+(\S+))?(?:\s+([\s\S]*))?$/i;
  const USAGE = {
    kick: '/kick user reason', mute: '/mute user 10m reason (30s, 10m, 1h, 2d, 1w)',
    ban: '/ban user reason', unban: '/unban user', unmute: '/unmute user',
  };
  function runCommand(text) {
    const m = COMMAND.exec(text.trim());
    if (!m) return false;
    const action = m[1].toLowerCase();
    let username = m[2] || '';
    let rest = (m[3] || '').trim();
    let duration;
    if (action === 'mute') {
      [duration = ''] = rest.split(/\s+/, 1);
      rest = rest.slice(duration.length).trim();
      if (!DURATION.test(duration)) username = '';
    }
    if (!/^[A-Za-z0-9]{1,32}$/.test(username)) {
      setComposerMsg(`Usage: ${USAGE[action]}`);
      return true;
    }
    moderate(action, state.current, username, duration, rest).then((ok) => {
      if (!ok || el.text.value !== text) return;
      el.text.value = '';
      updateComposer();
    });
    return true;
  }

  // Mute and kick from a message's buttons (or the member list); the reason
  // (and the duration) are asked for like an edit's text.
  function moderateMessage(action, li) {
    const c = convOfList(li.closest('ol'));
    if (c) moderateUser(action, c, li.querySelector('.author').textContent);
  }

  function moderateUser(action, c, username) {
    if (action === 'kick') {
      const reason = window.prompt(`Kick ${username} from # ${c.name}? Reason:`, '');
      if (reason !== null) moderate('kick', c, username, undefined, reason.trim());
      return;
    }
    const answer = window.prompt(`Mute ${username} for how long, and why? (e.g. "10m flooding"; 30s, 10m, 1h, 2d, 1w)`, '10m ');
    if (answer === null) return;
    const [duration = ''] = answer.trim().split(/\s+/, 1);
    if (!DURATION.test(duration)) {
      setComposerMsg('Not muted: give the duration first, e.g. 10m.');
      return;
    }
    moderate('mute', c, username, duration, answer.trim().slice(duration.length).trim());
  }

  // kick and mute events: a line in the room's timeline. Being kicked
  // takes the room away; the line goes to general then.
  function onModEvent(f) {
    if (f.id !== undefined && f.id !== null && state.seen.has(String(f.id))) return;
    received(f.id);
    const mine = same(f.username, state.me);
    const by = typeof f.by === 'string' && f.by ? ` by ${f.by}` : '';
    const why = typeof f.reason === 'string' && f.reason ? `: ${f.reason}` : '';
    const c = conv('room', f.room);
    if (f.event === 'kick') {
      if (mine) {
        dropConv(c);
        addNotice(`You were kicked from # ${c.name}${by}${why}`, general(), f.id, f.ts);
        scheduleRooms();
      } else {
        addNotice(`${f.username} was kicked${by}${why}`, c, f.id, f.ts);
        scheduleRooms();
        if (c === state.current && mem.box.open) loadMembers(c);
      }
    } else {
      const until = f.until ? ` until ${untilText(f.until)}` : '';
      addNotice(`${mine ? 'You were' : `${f.username} was`} muted in this room${by}${until}${why}`, c, f.id, f.ts);
    }
  }

  // A room's members (GET api/rooms/NAME/members), folded under the
  // header; its moderators get Mute and Kick beside each name.
  const mem = { box: $('members'), list: $('member-list') };
  let membersGen = 0;

  function updateMembers(c) {
    const show = c.kind === 'room' && !isGeneral(c) && !!state.rooms;
    if (mem.box.dataset.conv !== c.key) {
      mem.box.open = false;
      mem.list.replaceChildren();
      mem.box.dataset.conv = c.key;
    }
    mem.box.hidden = !show;
  }

  async function loadMembers(c) {
    const gen = ++membersGen;
    let r;
    try { r = await api('GET', `api/rooms/${encodeURIComponent(c.name)}/members`); } catch { return; }
    if (gen !== membersGen || state.current !== c || !r.ok || !Array.isArray(r.data.members)) return;
    mem.list.replaceChildren(...r.data.members.filter((m) => m && typeof m.username === 'string').map((m) => {
      const li = document.createElement('li');
      li.dataset.user = m.username;
      li.append(m.username);
      if (m.role && m.role !== 'member') li.append(small(` ${m.role}`));
      if (m.online) li.append(small(' online'));
      if (canModerate(c) && !same(m.username, state.me) && m.role !== 'owner') {
        for (const [action, text] of [['mute', 'Mute'], ['kick', 'Kick']]) {
          const b = document.createElement('button');
          b.type = 'button';
          b.className = 'quiet';
          b.dataset.memberAction = action;
          b.textContent = text;
          b.setAttribute('aria-label', `${text} ${m.username}`);
          li.append(b);
        }
      }
      return li;
    }));
  }

  mem.box.addEventListener('toggle', () => {
    if (mem.box.open && state.current) loadMembers(state.current);
  });
  mem.list.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-member-action]');
    const li = b && b.closest('li');
    if (li && state.current) moderateUser(b.dataset.memberAction, state.current, li.dataset.user);
  });

  // The server closes a banned user's sockets with 1008 "banned": no
  // reconnecting, the login view says why.
  function showBanned() {
    showAuth('You have been banned from this chat. Logging in again is refused.');
    el.authMsg.classList.add('banned');
  }

  // ---- the admin page --------------------------------------------------------

  const adm = {
    open: $('admin-open'), view: $('admin-view'), close: $('admin-close'),
    search: $('admin-search'), prefix: $('admin-prefix'), msg: $('admin-msg'),
    keyBox: $('admin-key'), keyUser: $('admin-key-user'), newKey: $('admin-new-key'), keyDone: $('admin-key-done'),
    rows: document.querySelector('#admin-users tbody'), none: $('admin-none'), more: $('admin-more'),
  };
  const ADMIN_PAGE = 50;
  let adminGen = 0;     // requests made: an older answer is dropped
  let adminAfter = null; // the last name shown, for the next page

  async function checkAdmin(me) {
    let r;
    try { r = await api('GET', 'api/user/@me'); } catch { return; }
    if (state.me === me) setAdmin(r.ok && r.data.admin === true);
  }

  function setAdmin(on) {
    state.admin = on;
    adm.open.hidden = !on;
    if (!on) showAdmin(false);
    applyModeration();
  }

  function showAdmin(on) {
    adm.view.hidden = !on;
    el.chatView.hidden = on || !state.me;
    adm.open.setAttribute('aria-expanded', String(on));
    if (on) {
      adm.msg.textContent = '';
      loadUsers(true);
      adm.prefix.focus();
    } else {
      hideNewKey();
      adm.rows.replaceChildren();
      if (state.me) el.text.focus();
    }
  }

  function hideNewKey() {
    adm.newKey.value = '';
    adm.keyBox.hidden = true;
  }

  async function loadUsers(reset) {
    const gen = ++adminGen;
    const q = new URLSearchParams({ limit: String(ADMIN_PAGE) });
    const prefix = adm.prefix.value.trim();
    if (prefix) q.set('prefix', prefix);
    if (!reset && adminAfter !== null) q.set('after', adminAfter);
    let r;
    try { r = await api('GET', `api/admin/users?${q}`); } catch { r = { status: 0 }; }
    if (gen !== adminGen) return;
    if (!r.ok || !Array.isArray(r.data.users)) {
      adm.msg.textContent = failure(r);
      return;
    }
    const users = r.data.users.filter((u) => u && typeof u.username === 'string');
    if (reset) adm.rows.replaceChildren();
    adm.rows.append(...users.map(userRow));
    if (reset || users.length) adminAfter = users.length ? users[users.length - 1].username : null;
    adm.more.hidden = users.length < ADMIN_PAGE;
    adm.none.hidden = adm.rows.children.length > 0;
  }

  function userRow(u) {
    const tr = document.createElement('tr');
    tr.dataset.user = u.username;
    const cell = (...parts) => {
      const td = document.createElement('td');
      td.append(...parts);
      tr.append(td);
      return td;
    };
    cell(u.username, u.online ? small(' online') : '').className = 'admin-name';
    cell(String(u.role || 'user'));
    const muted = Number(u.muted_until) > Date.now();
    const states = [u.banned ? 'banned' : '', muted ? `muted until ${untilText(u.muted_until)}` : ''].filter(Boolean);
    cell(states.join(', ') || '—').className = u.banned ? 'admin-state banned' : 'admin-state';
    cell(u.last_seen ? toDate(u.last_seen).toLocaleString() : (u.online ? 'now' : 'never'));
    const actions = cell();
    actions.className = 'admin-actions';
    const button = (action, text) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'quiet';
      b.dataset.adminAction = action;
      b.textContent = text;
      b.setAttribute('aria-label', `${text}: ${u.username}`);
      actions.append(b);
    };
    if (u.role !== 'admin') button(u.banned ? 'unban' : 'ban', u.banned ? 'Unban' : 'Ban');
    if (muted) button('unmute', 'Unmute');
    button('reset-key', 'Reset key');
    tr.user = u;
    return tr;
  }

  adm.rows.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button[data-admin-action]');
    const tr = b && b.closest('tr');
    if (!tr) return;
    const u = tr.user;
    const action = b.dataset.adminAction;
    let body;
    if (action === 'ban') {
      const reason = window.prompt(`Ban ${u.username}? Their sessions end at once. Reason:`, '');
      if (reason === null) return;
      body = { reason: reason.trim() };
    } else if (action === 'reset-key'
               && !window.confirm(`Reset the key of ${u.username}? Their current key and every session stop working.`)) {
      return;
    }
    adm.msg.textContent = '';
    b.disabled = true;
    const r = await adminCall(u.username, action, body);
    b.disabled = false;
    if (!r.ok) {
      adm.msg.textContent = failure(r);
      return;
    }
    if (action === 'reset-key') {
      adm.keyUser.textContent = u.username;
      adm.newKey.value = String(r.data.key || '');
      adm.keyBox.hidden = false;
      adm.newKey.focus();
      adm.newKey.select();
      return;
    }
    if (action === 'ban') u.banned = true;
    if (action === 'unban') u.banned = false;
    if (action === 'unmute') u.muted_until = null;
    if (action === 'ban') u.online = false;
    adm.msg.textContent = { ban: `${u.username} is banned.`, unban: `${u.username} is no longer banned.`,
      unmute: `${u.username} is no longer muted.` }[action];
    const row = userRow(u);
    tr.replaceWith(row);
    row.querySelector('button')?.focus();
  });

  adm.open.addEventListener('click', () => showAdmin(adm.view.hidden));
  adm.close.addEventListener('click', () => showAdmin(false));
  adm.keyDone.addEventListener('click', hideNewKey);
  adm.more.addEventListener('click', () => loadUsers(false));
  adm.search.addEventListener('submit', (ev) => {
    ev.preventDefault();
    adm.msg.textContent = '';
    loadUsers(true);
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
