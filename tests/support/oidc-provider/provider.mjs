// A real OpenID provider for Gatehouse's integration tests: the certified npm
// `oidc-provider`, listening on 127.0.0.1 on a port the OS picks, configured from
// a JSON file (argv[2]) written by the Rust harness (tests/src/oidc.rs).
//
// Config file:
//   {
//     "trailing_slash_issuer": false,      // Auth0 shape: issuer "http://127.0.0.1:PORT/"
//     "claims_in_id_token": false,         // false: the conformant default (ID token has
//                                          // sub only; profile claims from UserInfo)
//     "extra_openid_claims": ["org_id"],   // claims released with the openid scope
//     "select_account_prompt": false,      // accept prompt=select_account (Google shape)
//     "accounts_file": "/tmp/…/accounts.json",  // re-read on every lookup, so tests
//                                          // change claims between sign-ins
//     "clients": [ { client_id, client_secret, redirect_uris, ... } ]
//   }
//
// Login and consent are minimal interaction pages of our own (no browser needed):
//   GET  /interaction/:uid          -> HTML with data-prompt="login|consent|select_account"
//                                      and a form posting to /interaction/:uid/submit
//   POST /interaction/:uid/submit   -> login=<account id> finishes login (and account
//                                      selection); for consent, grants what was asked
// When ready it prints one line: GATEHOUSE_OP_READY {"port":…,"issuer":"…"}.

import fs from 'node:fs';
import http from 'node:http';
import { once } from 'node:events';

import Provider, { interactionPolicy } from 'oidc-provider';
import { exportJWK, generateKeyPair } from 'jose';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

function escapeHtml(value) {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}

function readAccounts() {
  return JSON.parse(fs.readFileSync(config.accounts_file, 'utf8'));
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const server = http.createServer();
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}${config.trailing_slash_issuer ? '/' : ''}`;

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), kid: 'op-rs256', alg: 'RS256', use: 'sig' };

const policy = interactionPolicy.base();
if (config.select_account_prompt) {
  policy.add(new interactionPolicy.Prompt({ name: 'select_account', requestable: true }), 0);
}

const extraClaims = config.extra_openid_claims ?? [];

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: ['gatehouse-test-cookie-key-0123456789'] },
  claims: {
    openid: ['sub', ...extraClaims],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username', 'groups'],
  },
  conformIdTokenClaims: !config.claims_in_id_token,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    // Signed UserInfo for a client registered with userinfo_signed_response_alg (only).
    jwtUserinfo: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = `<!DOCTYPE html><html><body>
${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
</body></html>`;
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = '<!DOCTYPE html><html><body><p>Signed out.</p></body></html>';
      },
    },
  },
  interactions: {
    policy,
    url(_ctx, interaction) {
      return `/interaction/${interaction.uid}`;
    },
  },
  async findAccount(_ctx, id) {
    const claims = readAccounts()[id];
    if (!claims) return undefined;
    return {
      accountId: id,
      async claims() {
        return { ...readAccounts()[id], sub: id };
      },
    };
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><body><pre id="error">${escapeHtml(JSON.stringify(out))}</pre></body></html>`;
  },
});
// The tests speak plain http on loopback.
provider.proxy = false;

function interactionPage(uid, details) {
  const prompt = details.prompt.name;
  return `<!DOCTYPE html><html><body data-prompt="${escapeHtml(prompt)}">
<h1>${escapeHtml(prompt)}</h1>
<form method="post" action="/interaction/${escapeHtml(uid)}/submit">
<input name="login" value="">
<button type="submit">Continue</button>
</form></body></html>`;
}

async function handleInteraction(req, res, url) {
  const [, , uid, action] = url.pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end('interaction mismatch');
    return;
  }
  if (req.method === 'GET' && action === undefined) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(interactionPage(uid, details));
    return;
  }
  if (req.method !== 'POST' || action !== 'submit') {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    return;
  }
  const form = await readBody(req);
  const prompt = details.prompt.name;
  let result;
  if (prompt === 'login' || prompt === 'select_account') {
    const accountId = form.get('login') ?? '';
    if (!readAccounts()[accountId]) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<p id="error">no such account</p>${interactionPage(uid, details)}`);
      return;
    }
    result = { login: { accountId } };
    if (prompt === 'select_account') result.select_account = {};
  } else if (prompt === 'consent') {
    const { prompt: { details: missing }, params, session } = details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    result = { consent: details.grantId ? {} : { grantId } };
  } else {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`unknown prompt ${prompt}`);
    return;
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname.startsWith('/interaction/')) {
    handleInteraction(req, res, url).catch((error) => {
      if (!res.headersSent) {
        res.writeHead(400, { 'content-type': 'text/plain' });
      }
      res.end(`interaction failed: ${error.name}: ${error.message}`);
    });
    return;
  }
  callback(req, res);
});

// The harness holds our stdin open; when it goes away (even killed), so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

process.stdout.write(`GATEHOUSE_OP_READY ${JSON.stringify({ port, issuer })}\n`);
