/**
 * The demo page and its stylesheet, kept as strings so that tsc carries them into dist/.
 * Every text the app shows is set with textContent by the script (script.ts).
 */

export const DEMO_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Datagrove demo</title>
<link rel="stylesheet" href="demo/app.css">
<script type="module" src="demo/app.js"></script>
</head>
<body>
<header>
  <h1>Datagrove demo</h1>
  <p id="me">Starting…</p>
</header>
<main>
  <section id="lobby" hidden>
    <p>A room is a site of its own; its messages are the entries of the site's log <code>chat</code>,
    signed by the device that wrote them. Create one, then invite another browser.</p>
    <form id="create">
      <input id="room-name" maxlength="80" placeholder="Room name" aria-label="Room name" required>
      <button>Create room</button>
    </form>
    <ul id="rooms"></ul>
  </section>
  <section id="room" hidden>
    <p><a href="#">All rooms</a></p>
    <h2 id="title">Room</h2>
    <p id="role"></p>
    <p id="sharing" hidden>
      <button id="invite" type="button">Create invite link</button>
      <input id="invite-link" readonly hidden aria-label="Invite link">
    </p>
    <ol id="messages"></ol>
    <form id="post">
      <input id="name" maxlength="40" aria-label="Your name" required>
      <input id="text" maxlength="2000" placeholder="Message" aria-label="Message" autocomplete="off" required>
      <button>Send</button>
    </form>
  </section>
  <p id="error" role="alert"></p>
</main>
<noscript>This demo needs JavaScript.</noscript>
</body>
</html>
`;

export const DEMO_CSS = `body { font: 16px/1.4 system-ui, sans-serif; max-width: 44rem; margin: 0 auto; padding: 0 1rem; color: #222; }
header { border-bottom: 1px solid #ddd; }
h1 { font-size: 1.3rem; margin-bottom: 0; }
#me, #role, .dev { color: #666; font-size: 0.85rem; }
form { display: flex; gap: 0.5rem; }
#text, #room-name, #invite-link { flex: 1; }
#name { width: 8rem; }
#invite-link { width: 100%; margin-top: 0.5rem; }
#messages { list-style: none; padding: 0; }
#messages li { padding: 0.3rem 0; border-bottom: 1px solid #f0f0f0; overflow-wrap: anywhere; }
.who { font-weight: 600; margin-right: 0.3rem; }
.mine .who { color: #1a6; }
.dev { margin-right: 0.5rem; font-family: ui-monospace, monospace; }
.bad { color: #a33; font-style: italic; }
#error { color: #a33; }
`;
