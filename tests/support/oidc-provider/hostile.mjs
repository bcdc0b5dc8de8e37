// A hostile OpenID provider for Gatehouse's integration tests: it performs the
// token-level attacks a real provider never will. It serves discovery, JWKS, an
// authorization endpoint that redirects straight back with a code (no login page),
// a token endpoint that returns an ID token crafted per the current *mode*, and
// UserInfo. Listens on 127.0.0.1 on a port the OS picks; configured from a JSON
// file (argv[2]):
//   { "client_id": "…", "client_secret": "…", "account": { "sub": "…", "email": … } }
//
// Test control (the Rust harness, tests/src/oidc.rs, drives these):
//   POST /__test/mode   {"mode": "valid", "claims": {…}}  mode for the next flows;
//                        "claims" are merged into the account's claims
//   GET  /__test/log    every authorization and token request seen, with what was
//                        checked (client authentication, PKCE)
// Modes: valid, wrong-nonce, no-nonce, replay-id-token, alg-none, bad-signature,
// wrong-key, hs256-public-pem, hs256-public-der, wrong-iss, wrong-aud, extra-aud,
// azp-other, azp-other-single-aud, expired, iat-past, iat-future, missing-sub,
// callback-iss-other, userinfo-other-sub.
// Egress modes: the discovery document (fetched once per host database) aims one
// back-channel endpoint at an internal address: token-link-local (the cloud metadata
// address 169.254.169.254), jwks-private (10.0.0.5), userinfo-unique-local ([fd00::1]),
// token-unspecified (https://0.0.0.0:PORT, which on Linux reaches this very server:
// whatever arrives there that is not HTTP, such as a TLS handshake, is logged as
// endpoint "not-http", so a test can see that no bytes were sent).
// When ready it prints one line: GATEHOUSE_OP_READY {"port":…,"issuer":"…"}.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { once } from 'node:events';

import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

const server = http.createServer();
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const KID = 'hostile-rs256';
const published = await generateKeyPair('RS256', { extractable: true });
const unpublished = await generateKeyPair('RS256', { extractable: true });
const publicJwk = { ...(await exportJWK(published.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
const publicPem = await exportSPKI(published.publicKey);
const publicDer = crypto.createPublicKey(publicPem).export({ type: 'spki', format: 'der' });

let mode = 'valid';
let claimOverrides = {};
let lastIdToken = null;
const log = [];
const codes = new Map(); // code -> { nonce, code_challenge, redirect_uri, client_id, used }
const accessTokens = new Map(); // token -> sub

const b64url = (buffer) => Buffer.from(buffer).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function send(res, status, body, headers = {}) {
  const json = typeof body !== 'string';
  res.writeHead(status, {
    'content-type': json ? 'application/json' : 'text/plain',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(json ? JSON.stringify(body) : body);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function account() {
  return { ...config.account, ...claimOverrides };
}

async function idToken(grant) {
  const t = now();
  const claims = {
    ...account(),
    iss: issuer,
    aud: config.client_id,
    iat: t,
    exp: t + 300,
    nonce: grant.nonce,
  };
  const header = { alg: 'RS256', kid: KID, typ: 'JWT' };
  switch (mode) {
    case 'wrong-nonce': claims.nonce = b64url(crypto.randomBytes(16)); break;
    case 'no-nonce': delete claims.nonce; break;
    case 'wrong-iss': claims.iss = 'http://evil.example'; break;
    case 'wrong-aud': claims.aud = 'another-client'; break;
    case 'extra-aud': claims.aud = [config.client_id, 'untrusted-client']; claims.azp = config.client_id; break;
    case 'azp-other': claims.aud = [config.client_id, 'another-client']; claims.azp = 'another-client'; break;
    case 'azp-other-single-aud': claims.azp = 'another-client'; break;
    // Expired beyond any clock skew, though issued recently enough.
    case 'expired': claims.iat = t - 400; claims.exp = t - 300; break;
    case 'iat-past': claims.iat = t - 7200; claims.exp = t + 300; break;
    case 'iat-future': claims.iat = t + 3600; claims.exp = t + 7200; break;
    case 'missing-sub': delete claims.sub; break;
    default: break;
  }
  const sign = (key) => new SignJWT(claims).setProtectedHeader(header).sign(key);
  switch (mode) {
    case 'replay-id-token':
      return lastIdToken;
    case 'alg-none':
      return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}.`;
    case 'bad-signature': {
      const [h, p, s] = (await sign(published.privateKey)).split('.');
      const signature = Buffer.from(s, 'base64url');
      signature[10] ^= 0x01;
      return `${h}.${p}.${b64url(signature)}`;
    }
    case 'wrong-key':
      return sign(unpublished.privateKey);
    case 'hs256-public-pem':
    case 'hs256-public-der': {
      const secret = mode === 'hs256-public-pem' ? new TextEncoder().encode(publicPem) : new Uint8Array(publicDer);
      return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: KID, typ: 'JWT' }).sign(secret);
    }
    default: {
      const token = await sign(published.privateKey);
      if (mode === 'valid') lastIdToken = token;
      return token;
    }
  }
}

function clientAuthenticated(req, form) {
  const basic = req.headers.authorization;
  if (basic?.startsWith('Basic ')) {
    const [id, secret] = Buffer.from(basic.slice(6), 'base64').toString('utf8').split(':').map(decodeURIComponent);
    return { method: 'client_secret_basic', ok: id === config.client_id && secret === config.client_secret };
  }
  if (form.has('client_secret')) {
    return {
      method: 'client_secret_post',
      ok: form.get('client_id') === config.client_id && form.get('client_secret') === config.client_secret,
    };
  }
  return { method: 'none', ok: false };
}

// The back-channel endpoints per egress mode; the others are this server's own.
const INTERNAL_ENDPOINTS = {
  'token-link-local': { token_endpoint: 'https://169.254.169.254/token' },
  'jwks-private': { jwks_uri: 'https://10.0.0.5/jwks' },
  'userinfo-unique-local': { userinfo_endpoint: 'https://[fd00::1]/userinfo' },
  'token-unspecified': { token_endpoint: `https://0.0.0.0:${port}/token` },
};

async function handle(req, res) {
  const url = new URL(req.url, issuer);
  const path = url.pathname;
  if (path === '/.well-known/openid-configuration') {
    return send(res, 200, {
      issuer,
      authorization_endpoint: `${issuer}/authorize`,
      token_endpoint: `${issuer}/token`,
      jwks_uri: `${issuer}/jwks`,
      userinfo_endpoint: `${issuer}/userinfo`,
      ...INTERNAL_ENDPOINTS[mode],
      end_session_endpoint: `${issuer}/logout`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      scopes_supported: ['openid', 'email', 'profile'],
      authorization_response_iss_parameter_supported: true,
    });
  }
  if (path === '/jwks') return send(res, 200, { keys: [publicJwk] });
  if (path === '/authorize') {
    const p = url.searchParams;
    const code = b64url(crypto.randomBytes(24));
    const entry = {
      endpoint: 'authorize',
      client_id: p.get('client_id'),
      redirect_uri: p.get('redirect_uri'),
      response_type: p.get('response_type'),
      scope: p.get('scope'),
      state: p.get('state'),
      nonce: p.get('nonce'),
      code_challenge: p.get('code_challenge'),
      code_challenge_method: p.get('code_challenge_method'),
      mode,
    };
    log.push(entry);
    if (entry.client_id !== config.client_id || !entry.redirect_uri) {
      return send(res, 400, 'unknown client or no redirect_uri');
    }
    codes.set(code, { ...entry, used: false });
    const back = new URL(entry.redirect_uri);
    back.searchParams.set('code', code);
    if (entry.state !== null) back.searchParams.set('state', entry.state);
    back.searchParams.set('iss', mode === 'callback-iss-other' ? 'http://127.0.0.1:1/other-provider' : issuer);
    res.writeHead(303, { location: back.href });
    return res.end();
  }
  if (path === '/token' && req.method === 'POST') {
    const form = new URLSearchParams(await readBody(req));
    const auth = clientAuthenticated(req, form);
    const grant = codes.get(form.get('code') ?? '');
    const verifier = form.get('code_verifier') ?? '';
    const pkceOk = Boolean(grant) && grant.code_challenge_method === 'S256'
      && b64url(crypto.createHash('sha256').update(verifier).digest()) === grant.code_challenge;
    const entry = {
      endpoint: 'token',
      client_auth: auth.method,
      client_auth_ok: auth.ok,
      code_known: Boolean(grant),
      code_reused: Boolean(grant?.used),
      pkce_ok: pkceOk,
      redirect_uri_ok: Boolean(grant) && form.get('redirect_uri') === grant.redirect_uri,
      mode,
    };
    log.push(entry);
    if (!auth.ok) return send(res, 401, { error: 'invalid_client' });
    if (!grant || grant.used || !pkceOk || !entry.redirect_uri_ok) {
      return send(res, 400, { error: 'invalid_grant' });
    }
    grant.used = true;
    const accessToken = b64url(crypto.randomBytes(24));
    accessTokens.set(accessToken, true);
    return send(res, 200, {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: 300,
      id_token: await idToken(grant),
      scope: grant.scope,
    });
  }
  if (path === '/userinfo') {
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    log.push({ endpoint: 'userinfo', token_ok: accessTokens.has(token), mode });
    if (!accessTokens.has(token)) return send(res, 401, { error: 'invalid_token' });
    const claims = account();
    if (mode === 'userinfo-other-sub') claims.sub = 'somebody-else';
    return send(res, 200, claims);
  }
  if (path === '/__test/mode' && req.method === 'POST') {
    const body = JSON.parse(await readBody(req));
    mode = body.mode;
    claimOverrides = body.claims ?? {};
    return send(res, 200, { mode });
  }
  if (path === '/__test/log') return send(res, 200, log);
  return send(res, 404, 'not found');
}

server.on('clientError', (error, socket) => {
  // Parse errors only (HPE_*): a client that merely hangs up is not an attempt.
  const code = String(error.code ?? '');
  if (code.startsWith('HPE_')) log.push({ endpoint: 'not-http', error: code, mode });
  socket.destroy();
});

server.on('request', (req, res) => {
  handle(req, res).catch((error) => {
    if (!res.headersSent) send(res, 500, `hostile provider failed: ${error.message}`);
    else res.end();
  });
});

// The harness holds our stdin open; when it goes away (even killed), so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

process.stdout.write(`GATEHOUSE_OP_READY ${JSON.stringify({ port, issuer })}\n`);
