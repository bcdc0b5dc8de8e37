// A real SAML 2.0 identity provider for Gatehouse's integration tests: the npm `samlify`
// library (pinned in package-lock.json) behind a few HTTP endpoints on 127.0.0.1, started
// by tests/src/saml.rs.
//
//   node samlify-idp.mjs CONFIG.json
//   CONFIG: { "port": 0, "key": "<PEM path>", "cert": "<PEM path>",
//             "sp_metadata": "<path of the SP's metadata XML, optional>",
//             "users": { "alice@example.test": { "givenName": "Alice", ... } } }
//
// Endpoints:
//   GET  /metadata          the IdP's metadata (signing certificate, SSO and SLO, redirect binding)
//   GET  /sso?SAMLRequest=…&RelayState=…[&as=<email>]
//                           HTTP-Redirect AuthnRequest in; an auto-submitting HTML form out
//                           (HTTP-POST binding) to the SP's ACS with SAMLResponse and RelayState
//   GET  /slo?SAMLRequest=… the SP's LogoutRequest: answered with a signed LogoutResponse by a
//                           302 to the SP's SLO (redirect binding)
//   GET  /slo?SAMLResponse=…  the SP's LogoutResponse to our IdP-initiated LogoutRequest
//   POST /__test/sp-metadata  body: the SP's metadata XML
//   POST /__test/users      body: JSON { email: { attribute: value | [values] |
//                           { "friendly_name": …, "values": [...] } } } (replaces the users)
//   POST /__test/config     body: JSON overrides for the next responses (see `defaults`)
//   POST /__test/logout     body: JSON { "as": email, "session_index": … }: an IdP-initiated,
//                           signed LogoutRequest; answers { "url": … } (the SP's SLO URL)
//   GET  /__test/log        JSON: every message received and sent, in order
// When ready it prints one line: GATEHOUSE_SAML_IDP_READY {"port":…,"entity_id":"…"}.
// It exits when its stdin closes.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { once } from 'node:events';

import * as samlify from 'samlify';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const privateKey = fs.readFileSync(config.key, 'utf8');
const signingCert = fs.readFileSync(config.cert, 'utf8');

// samlify refuses to run without an XML schema validator; the SP under test is what
// validates, the peer only has to produce well-formed messages.
samlify.setSchemaValidator({ validate: () => Promise.resolve('skipped') });

const server = http.createServer();
server.listen(config.port ?? 0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address();
const base = `http://127.0.0.1:${port}`;
const entityId = `${base}/metadata`;

let spMetadata = config.sp_metadata ? fs.readFileSync(config.sp_metadata, 'utf8') : null;
let users = config.users ?? {};
const log = [];

const SIG = {
  'rsa-sha256': 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  'rsa-sha1': 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
};

// The content of the next responses; the tests change it with POST /__test/config.
// Times are seconds relative to now; null means "as samlify/the SP would have it".
const defaults = {
  sign_alg: 'rsa-sha256',     // rsa-sha256 | rsa-sha1 (samlify picks the matching digest)
  sign_assertion: true,
  sign_response: false,
  audience: null,             // default: the SP's entity id
  recipient: null,            // default: the SP's ACS
  destination: null,          // default: the SP's ACS
  issuer: null,               // default: our entity id
  in_response_to: null,       // default: the AuthnRequest's ID
  not_before: -5,
  not_on_or_after: 300,
  session_index: null,        // default: a fresh one
  status: 'urn:oasis:names:tc:SAML:2.0:status:Success',
};
let overrides = { ...defaults };

function escapeXml(value) {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}

function newId() {
  return `_${crypto.randomBytes(20).toString('hex')}`;
}

function isoIn(seconds) {
  return new Date(Date.now() + seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function identityProvider(signAlg) {
  return samlify.IdentityProvider({
    entityID: entityId,
    signingCert,
    privateKey,
    requestSignatureAlgorithm: SIG[signAlg] ?? SIG['rsa-sha256'],
    nameIDFormat: ['urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'],
    singleSignOnService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${base}/sso` },
    ],
    singleLogoutService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${base}/slo` },
    ],
    wantAuthnRequestsSigned: false,
    // A custom response template (samlify's default leaves out the AuthnStatement, and
    // ignores a template without `attributes`).
    loginResponseTemplate: { context: '{Response}', attributes: [] },
  });
}

function serviceProvider(options = {}) {
  if (!spMetadata) throw new Error('no SP metadata: POST it to /__test/sp-metadata first');
  return samlify.ServiceProvider({
    metadata: spMetadata,
    // Our logout messages to the SP are signed.
    wantLogoutRequestSigned: true,
    wantLogoutResponseSigned: true,
    ...options,
  });
}

function attributeStatement(attributes) {
  const items = Object.entries(attributes).map(([name, value]) => {
    let friendly = null;
    let values = value;
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      friendly = value.friendly_name ?? null;
      values = value.values;
    }
    if (!Array.isArray(values)) values = [values];
    const friendlyAttr = friendly ? ` FriendlyName="${escapeXml(friendly)}"` : '';
    const format = name.startsWith('urn:')
      ? 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri'
      : 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic';
    const valuesXml = values
      .map((v) => `<saml:AttributeValue xsi:type="xs:string">${escapeXml(v)}</saml:AttributeValue>`)
      .join('');
    return `<saml:Attribute Name="${escapeXml(name)}"${friendlyAttr} NameFormat="${format}">${valuesXml}</saml:Attribute>`;
  });
  return items.length ? `<saml:AttributeStatement>${items.join('')}</saml:AttributeStatement>` : '';
}

function responseXml({ responseId, assertionId, inResponseTo, acs, spEntityId, email, attributes, sessionIndex }) {
  const o = overrides;
  const now = isoIn(0);
  const irt = o.in_response_to ?? inResponseTo;
  const irtAttr = irt ? ` InResponseTo="${escapeXml(irt)}"` : '';
  const issuer = escapeXml(o.issuer ?? entityId);
  const destination = escapeXml(o.destination ?? acs);
  const recipient = escapeXml(o.recipient ?? acs);
  const audience = escapeXml(o.audience ?? spEntityId);
  const notBefore = isoIn(o.not_before);
  const notOnOrAfter = isoIn(o.not_on_or_after);
  return `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${responseId}" Version="2.0" IssueInstant="${now}" Destination="${destination}"${irtAttr}>`
    + `<saml:Issuer>${issuer}</saml:Issuer>`
    + `<samlp:Status><samlp:StatusCode Value="${escapeXml(o.status)}"/></samlp:Status>`
    + `<saml:Assertion xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="${assertionId}" Version="2.0" IssueInstant="${now}">`
    + `<saml:Issuer>${issuer}</saml:Issuer>`
    + `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">${escapeXml(email)}</saml:NameID>`
    + `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${notOnOrAfter}" Recipient="${recipient}"${irtAttr}/></saml:SubjectConfirmation></saml:Subject>`
    + `<saml:Conditions NotBefore="${notBefore}" NotOnOrAfter="${notOnOrAfter}"><saml:AudienceRestriction><saml:Audience>${audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>`
    + `<saml:AuthnStatement AuthnInstant="${now}" SessionIndex="${escapeXml(sessionIndex)}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`
    + attributeStatement(attributes)
    + '</saml:Assertion></samlp:Response>';
}

// The raw query, in the order the signature covers (saml-bindings §3.4.4.1).
function octetString(rawQuery, messageParam) {
  const parts = Object.fromEntries(rawQuery.split('&').map((p) => [p.split('=')[0], p]));
  return [messageParam, 'RelayState', 'SigAlg'].filter((k) => parts[k]).map((k) => parts[k]).join('&');
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { 'content-type': type, ...headers });
  res.end(body);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function handleSso(url, res) {
  const query = Object.fromEntries(url.searchParams);
  const sp = serviceProvider({ wantMessageSigned: overrides.sign_response });
  const idp = identityProvider(overrides.sign_alg);
  const parsed = await idp.parseLoginRequest(sp, 'redirect', {
    query,
    octetString: octetString(url.search.slice(1), 'SAMLRequest'),
  });
  const request = parsed.extract.request ?? {};
  const email = query.as ?? Object.keys(users)[0];
  if (!users[email]) {
    send(res, 403, 'text/plain', `no such user: ${email}`);
    return;
  }
  const acs = request.assertionConsumerServiceUrl
    ?? sp.entityMeta.getAssertionConsumerService('urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST');
  const sessionIndex = overrides.session_index ?? newId();
  const responseId = newId();
  const assertionId = newId();
  // samlify signs the assertion when the SP's metadata asks for it; the tests decide.
  sp.entityMeta.isWantAssertionsSigned = () => overrides.sign_assertion;
  const { context } = await idp.createLoginResponse(
    sp,
    parsed,
    'post',
    { email },
    () => ({
      id: responseId,
      context: responseXml({
        responseId,
        assertionId,
        inResponseTo: request.id,
        acs,
        spEntityId: sp.entityMeta.getEntityID(),
        email,
        attributes: users[email],
        sessionIndex,
      }),
    }),
  );
  log.push({
    kind: 'authn_request',
    id: request.id,
    issuer: parsed.extract.issuer,
    acs,
    relay_state: query.RelayState ?? null,
    signed: Boolean(query.Signature),
    as: email,
    response_id: responseId,
    assertion_id: assertionId,
    session_index: sessionIndex,
  });
  const relay = query.RelayState
    ? `<input type="hidden" name="RelayState" value="${escapeXml(query.RelayState)}"/>`
    : '';
  send(res, 200, 'text/html; charset=utf-8', `<!DOCTYPE html><html><body onload="document.forms[0].submit()">
<form method="post" action="${escapeXml(acs)}">
<input type="hidden" name="SAMLResponse" value="${context}"/>
${relay}
<noscript><button type="submit">Continue</button></noscript>
</form></body></html>`);
}

async function handleSlo(url, res) {
  const query = Object.fromEntries(url.searchParams);
  const sp = serviceProvider();
  const idp = samlify.IdentityProvider({
    ...identityProvider(overrides.sign_alg).entitySetting,
    wantLogoutRequestSigned: Boolean(query.Signature),
    wantLogoutResponseSigned: Boolean(query.Signature),
  });
  if (query.SAMLRequest) {
    const parsed = await idp.parseLogoutRequest(sp, 'redirect', {
      query,
      octetString: octetString(url.search.slice(1), 'SAMLRequest'),
    });
    const request = parsed.extract.request ?? {};
    const { context: location } = idp.createLogoutResponse(sp, parsed, 'redirect', query.RelayState ?? '');
    log.push({
      kind: 'logout_request',
      id: request.id,
      issuer: parsed.extract.issuer,
      name_id: parsed.extract.nameID ?? null,
      session_index: parsed.extract.sessionIndex ?? null,
      signed: Boolean(query.Signature),
      sig_alg: query.SigAlg ?? null,
      relay_state: query.RelayState ?? null,
    });
    send(res, 302, 'text/plain', '', { location });
    return;
  }
  if (query.SAMLResponse) {
    const parsed = await idp.parseLogoutResponse(sp, 'redirect', {
      query,
      octetString: octetString(url.search.slice(1), 'SAMLResponse'),
    });
    const status = /StatusCode[^>]*Value="([^"]+)"/.exec(parsed.samlContent)?.[1] ?? null;
    log.push({
      kind: 'logout_response',
      in_response_to: parsed.extract.response?.inResponseTo ?? null,
      issuer: parsed.extract.issuer,
      status,
      signed: Boolean(query.Signature),
      sig_alg: query.SigAlg ?? null,
    });
    send(res, 200, 'text/html; charset=utf-8', '<!DOCTYPE html><p>Signed out.</p>');
    return;
  }
  send(res, 400, 'text/plain', 'no SAML message');
}

async function handleIdpLogout(body, res) {
  const { as: email, session_index: sessionIndex } = JSON.parse(body);
  const sp = serviceProvider();
  const idp = identityProvider(overrides.sign_alg);
  const { id, context } = idp.createLogoutRequest(sp, 'redirect', {
    logoutNameID: email,
    sessionIndex,
  });
  log.push({ kind: 'idp_logout_request', id, name_id: email, session_index: sessionIndex ?? null });
  send(res, 200, 'application/json', JSON.stringify({ id, url: context }));
}

async function route(req, res) {
  const url = new URL(req.url, base);
  if (req.method === 'GET' && url.pathname === '/metadata') {
    send(res, 200, 'application/samlmetadata+xml', identityProvider('rsa-sha256').getMetadata());
  } else if (req.method === 'GET' && url.pathname === '/sso') {
    await handleSso(url, res);
  } else if (req.method === 'GET' && url.pathname === '/slo') {
    await handleSlo(url, res);
  } else if (req.method === 'POST' && url.pathname === '/__test/sp-metadata') {
    spMetadata = await readBody(req);
    serviceProvider();
    send(res, 204, 'text/plain', '');
  } else if (req.method === 'POST' && url.pathname === '/__test/users') {
    users = JSON.parse(await readBody(req));
    send(res, 204, 'text/plain', '');
  } else if (req.method === 'POST' && url.pathname === '/__test/config') {
    overrides = { ...defaults, ...JSON.parse(await readBody(req)) };
    send(res, 204, 'text/plain', '');
  } else if (req.method === 'POST' && url.pathname === '/__test/logout') {
    await handleIdpLogout(await readBody(req), res);
  } else if (req.method === 'GET' && url.pathname === '/__test/log') {
    send(res, 200, 'application/json', JSON.stringify(log));
  } else {
    send(res, 404, 'text/plain', 'not found');
  }
}

server.on('request', (req, res) => {
  route(req, res).catch((error) => {
    const message = `${error?.name ?? 'Error'}: ${error?.message ?? error}`;
    log.push({ kind: 'error', path: req.url.split('?')[0], message });
    process.stderr.write(`${req.method} ${req.url.split('?')[0]}: ${message}\n`);
    if (!res.headersSent) send(res, 400, 'text/plain', `refused: ${message}`);
    else res.end();
  });
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

process.stdout.write(`GATEHOUSE_SAML_IDP_READY ${JSON.stringify({ port, entity_id: entityId })}\n`);
