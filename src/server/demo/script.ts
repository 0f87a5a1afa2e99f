/**
 * The demo's one ES module, served as it stands (a string, so that tsc carries it into
 * dist/; it must hold no backtick and no dollar-brace). It uses the browser SDK bundle
 * only:
 *
 * - this browser's device key lives in IndexedDB; the first visit signs up a user;
 * - a room is a site; its messages are the entries of the log `chat` (UTF-8 JSON
 *   `{t: "msg", name, text}`, after one `{t: "room", name}`), signed by their writer's device;
 * - an invite link carries, in its fragment (never sent to the server), the secret key of a
 *   device made for the invite and the hash of the owner's grant giving that device admin on
 *   the site. The browser that opens it signs, with that key, a grant of read and write
 *   to its own user (the owner's grant as proof) and joins with it: the owner need not be
 *   online. Whoever holds the link can join, as with any invite link.
 */
export const DEMO_SCRIPT = String.raw`// Datagrove demo: a chat room on a log, through the browser SDK only.
const LOG = 'chat';
const $ = (id) => document.getElementById(id);
const short = (device) => (device ?? '').slice(0, 6);
const fail = (err) => {
  $('error').textContent = err?.message ?? String(err);
};

let sdk;
try {
  sdk = await import('./datagrove-client.js');
} catch (err) {
  fail('The SDK bundle did not load (run npm run build:client): ' + (err?.message ?? err));
  throw err;
}

// The server's base URL: the directory of this page.
const base = new URL('.', location.href).href.replace(/\/$/, '');
let client = null;
let current = null; // { site, log, stops }

const rooms = {
  list() {
    try {
      const v = JSON.parse(localStorage.getItem('dg-demo-rooms') ?? '[]');
      return Array.isArray(v) ? v : [];
    } catch {
      return [];
    }
  },
  remember(site, name) {
    const others = rooms.list().filter((r) => r.site !== site);
    localStorage.setItem('dg-demo-rooms', JSON.stringify([{ site, name }, ...others].slice(0, 20)));
  },
  nameOf(site) {
    return rooms.list().find((r) => r.site === site)?.name ?? null;
  },
};

/** Signs in with the stored session, or signs this device up (or in again, when it was signed out). */
async function signIn() {
  const open = () => sdk.DatagroveClient.create({ url: base, storage: new sdk.IndexedDbKeyStorage(), onAuthError: () => fail('Signed out by the server: reload the page.') });
  let c = await open();
  if (c.signedIn) {
    try {
      await c.me();
      return c;
    } catch (err) {
      // A session the server no longer knows (a new data directory, a sign-out elsewhere).
      if (err?.code !== 'UNAUTHORIZED' && err?.code !== 'REFRESH_REUSED') throw err;
      await c.close();
      c = await open();
    }
  }
  try {
    await c.signup('demo browser');
  } catch (err) {
    if (err?.code !== 'CONFLICT') throw err;
    await c.login();
  }
  return c;
}

function myName() {
  return localStorage.getItem('dg-demo-name') || 'guest-' + short(client.device).slice(0, 4);
}

function showLobby() {
  $('room').hidden = true;
  $('lobby').hidden = false;
  const list = $('rooms');
  list.replaceChildren();
  for (const r of rooms.list()) {
    const a = document.createElement('a');
    a.href = '#' + new URLSearchParams({ room: r.site });
    a.textContent = r.name || r.site;
    const li = document.createElement('li');
    li.append(a);
    list.append(li);
  }
}

function render(room, e) {
  let msg = null;
  if (e.error === undefined && e.signed) {
    try {
      msg = JSON.parse(new TextDecoder().decode(e.payload));
    } catch {
      msg = null;
    }
  }
  if (msg?.t === 'room' && typeof msg.name === 'string') {
    $('title').textContent = msg.name;
    rooms.remember(room.site, msg.name);
    return;
  }
  const li = document.createElement('li');
  if (msg?.t !== 'msg' || typeof msg.text !== 'string') {
    li.className = 'bad';
    li.textContent = 'entry ' + e.index + ': not a signed message';
  } else {
    const part = (cls, text) => {
      const s = document.createElement('span');
      s.className = cls;
      s.textContent = text;
      return s;
    };
    // The name is the writer's word; the device is proven by the entry's signature.
    li.append(part('who', String(msg.name ?? '?').slice(0, 40)), part('dev', short(e.origin.device)), part('text', msg.text));
    if (e.origin.device === client.device) li.classList.add('mine');
  }
  li.dataset.index = String(e.index);
  $('messages').append(li);
  li.scrollIntoView({ block: 'nearest' });
}

function showRole(room) {
  const { log } = room;
  const el = $('role');
  el.dataset.role = log.role ?? '';
  el.dataset.state = log.state;
  if (log.state === 'opening') el.textContent = 'Opening the log…';
  else if (log.role === 'leader') el.textContent = 'This browser leads the log: it writes everyone\u2019s messages. (' + log.state + ')';
  else el.textContent = 'This browser follows the leader ' + (log.leader === null ? '(none yet)' : short(log.leader)) + ' and sends its messages through it. (' + log.state + ')';
}

async function closeRoom() {
  const room = current;
  current = null;
  if (room === null) return;
  for (const stop of room.stops) stop();
  await room.log.close();
}

async function openRoom(site, newName) {
  await closeRoom();
  $('lobby').hidden = true;
  $('room').hidden = false;
  $('title').textContent = newName ?? rooms.nameOf(site) ?? 'Room';
  $('messages').replaceChildren();
  $('sharing').hidden = true;
  $('invite-link').hidden = true;
  const log = client.openLog(site, LOG);
  const room = { site, log, stops: [] };
  current = room;
  room.stops.push(
    log.subscribe((entries) => entries.forEach((e) => render(room, e))),
    log.on('role', () => showRole(room)),
    log.on('leader', () => showRole(room)),
    log.on('state', () => showRole(room)),
    log.on('error', (err) => fail(err)),
  );
  showRole(room);
  await log.opened;
  if (current !== room) return;
  showRole(room);
  if (newName !== undefined) await log.append([new TextEncoder().encode(JSON.stringify({ t: 'room', name: newName }))]);
  const info = await client.siteInfo(site);
  if (current === room) $('sharing').hidden = info.owner !== client.user;
}

/** Makes an invite link: a device of its own, granted admin on the site by the owner. */
async function invite(site) {
  const keys = sdk.DeviceKeys.generate();
  const storage = new sdk.MemoryKeyStorage();
  await storage.save(sdk.DEVICE_KEYS_NAME, keys.toJSON());
  const inviter = await sdk.DatagroveClient.create({ url: base, storage });
  await inviter.signup('invite link'); // a grant's issuer must be a registered device
  await inviter.signOut();
  const grant = client.signGrant({ sub: 'device:' + keys.deviceId, site, logs: ['*'], rights: ['admin'] });
  const hash = await client.declare(grant);
  const k = keys.toJSON();
  return location.origin + location.pathname + '#' + new URLSearchParams({ join: site, key: k.sign + '.' + k.box, grant: hash });
}

/** Joins a site through an invite link: the invite's device grants this user read and write. */
async function join(params) {
  const site = params.get('join') ?? '';
  const [sign, box] = (params.get('key') ?? '').split('.');
  const keys = sdk.DeviceKeys.fromJSON({ sign: sign ?? '', box: box ?? '' });
  const grant = sdk.signGrant(keys, { sub: 'user:' + client.user, site, logs: ['*'], rights: ['read', 'write'], prf: params.get('grant') ?? '' });
  await client.join(site, grant);
  // The link's key leaves the address bar and the history.
  history.replaceState(null, '', '#' + new URLSearchParams({ room: site }));
  return site;
}

async function route() {
  fail('');
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has('join')) return openRoom(await join(params));
  if (params.has('room')) return openRoom(params.get('room'));
  await closeRoom();
  showLobby();
}

$('create').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = $('room-name').value.trim();
  if (name === '') return;
  (async () => {
    const { site } = await client.createSite(name);
    rooms.remember(site, name);
    $('room-name').value = '';
    history.pushState(null, '', '#' + new URLSearchParams({ room: site }));
    await openRoom(site, name);
  })().catch(fail);
});

$('post').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const room = current;
  const text = $('text').value.trim();
  const name = $('name').value.trim();
  if (room === null || text === '' || name === '') return;
  localStorage.setItem('dg-demo-name', name);
  $('text').value = '';
  // Shown once durable, when the log delivers it like anyone else's.
  room.log.append([new TextEncoder().encode(JSON.stringify({ t: 'msg', name, text }))]).catch((err) => {
    fail(err);
    if ($('text').value === '') $('text').value = text;
  });
});

$('invite').addEventListener('click', () => {
  const room = current;
  if (room === null) return;
  $('invite').disabled = true;
  invite(room.site)
    .then((link) => {
      const out = $('invite-link');
      out.value = link;
      out.hidden = false;
      out.select();
    })
    .catch(fail)
    .finally(() => {
      $('invite').disabled = false;
    });
});

window.addEventListener('hashchange', () => void route().catch(fail));

try {
  client = await signIn();
  $('name').value = myName();
  $('me').textContent = 'Signed in: user ' + short(client.user) + ', this browser is device ' + short(client.device) + '.';
  document.body.dataset.ready = 'true';
  await route();
} catch (err) {
  fail(err);
}
`;
