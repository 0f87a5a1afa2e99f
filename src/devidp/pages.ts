/** The dev IdP's two pages: the sign-in form and an error page. Plain HTML, no scripts. */

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}
input[type=email]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}button{margin-top:1rem;padding:.5rem 1.5rem;font-size:1rem}
.note{color:#666;font-size:.9rem}</style></head>
<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

export function signInPage(action: string, client: string, problem?: string): string {
  return layout(
    'Datagrove dev sign-in',
    `<p class="note">Development identity provider: any email signs in, no password. Never enable it in production.</p>
${problem === undefined ? '' : `<p><strong>${escapeHtml(problem)}</strong></p>`}
<form method="post" action="${escapeHtml(action)}">
<label>Email<br><input type="email" name="email" required maxlength="254" autofocus></label>
<p><label><input type="checkbox" name="email_verified" value="yes" checked> email verified</label></p>
<button type="submit">Sign in</button>
</form>
<p class="note">Signing in to ${escapeHtml(client)}.</p>`,
  );
}

export function errorPage(message: string): string {
  return layout('Sign-in failed', `<p>${escapeHtml(message)}</p><p class="note">Start the sign-in again from the app.</p>`);
}
