// Drives Debian's headless chromium (through npm `playwright-core`, pinned in
// package-lock.json; no browser of its own is downloaded) through a real SAML sign-in
// against a real `gatehouse serve` and the samlify IdP on another site, for
// tests/tests/saml_browser.rs.
//
//   node browser.mjs CONFIG.json
//   CONFIG: { "chromium": "/usr/bin/chromium", "origin": "http://localhost:PORT",
//             "start": "/sso/corp/start?return_to=%2Fwelcome", "idp_origin": "http://127.0.0.1:PORT",
//             "profile": "<a fresh directory>" }
//
// 1. "sign_in": one browser profile opens the start URL; the host redirects to the IdP, whose
//    page auto-submits the response cross-site to the host's ACS, which sends the browser on
//    to its same-site finish step and then to return_to. Reports where it ended and /me.
// 2. "stolen": an attacker's browser starts a sign-in and keeps the IdP's form instead of
//    posting it (the response answers the attacker's own request); a victim's browser (no
//    binding for that request) is made to post it from a page on another site. Reports the
//    host's last answer and the victim's /me.
// Prints one line: GATEHOUSE_BROWSER_RESULT {…}.

import fs from 'node:fs';
import path from 'node:path';

import { chromium } from 'playwright-core';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const args = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const TIMEOUT = 60_000;

function escapeHtml(value) {
  return String(value).replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll('<', '&lt;');
}

async function me(context) {
  const response = await context.request.get(`${config.origin}/me`);
  return { status: response.status(), body: await response.text() };
}

// A browser profile of its own (the flags a real headless chromium runs with here).
async function profile(name) {
  return chromium.launchPersistentContext(path.join(config.profile, name), {
    executablePath: config.chromium,
    headless: true,
    args,
  });
}

async function signIn() {
  const context = await profile('user');
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const visited = [];
    page.on('request', (request) => {
      if (request.isNavigationRequest()) visited.push(`${request.method()} ${request.url().split('?')[0]}`);
    });
    await page.goto(`${config.origin}${config.start}`, { timeout: TIMEOUT });
    await page.waitForURL(
      (url) => url.origin === config.origin && !url.pathname.startsWith('/sso/'),
      { timeout: TIMEOUT },
    );
    return { final_url: page.url(), visited, me: await me(context) };
  } finally {
    await context.close();
  }
}

async function stolen() {
  // The attacker's own sign-in, stopped at the IdP's auto-submitting form.
  const attacker = await profile('attacker');
  let form;
  try {
    const page = attacker.pages()[0] ?? (await attacker.newPage());
    const captured = new Promise((resolve) => {
      page.route(`${config.origin}/sso/**/callback`, async (route) => {
        resolve({ url: route.request().url(), body: route.request().postData() ?? '' });
        await route.abort();
      });
    });
    page.goto(`${config.origin}${config.start}`, { timeout: TIMEOUT }).catch(() => {});
    form = await captured;
  } finally {
    await attacker.close();
  }
  const fields = new URLSearchParams(form.body);
  // The victim's browser posts it from a page on another site (the IdP's origin stands in).
  const victim = await profile('victim');
  try {
    const page = victim.pages()[0] ?? (await victim.newPage());
    let last = null;
    page.on('response', (response) => {
      if (response.request().isNavigationRequest()) last = { status: response.status(), url: response.url() };
    });
    await page.goto(`${config.idp_origin}/__test/log`, { timeout: TIMEOUT });
    const inputs = [...fields].map(
      ([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`,
    ).join('');
    await page.setContent(`<form method="post" action="${escapeHtml(form.url)}">${inputs}</form>`);
    await Promise.all([
      page.waitForURL((url) => url.origin === config.origin && url.pathname.includes('/finish'), { timeout: TIMEOUT }),
      page.evaluate(() => document.forms[0].submit()),
    ]);
    await page.waitForLoadState('load', { timeout: TIMEOUT });
    return {
      final_url: page.url(),
      last,
      body: (await page.content()).slice(0, 2000),
      me: await me(victim),
    };
  } finally {
    await victim.close();
  }
}

const result = { sign_in: await signIn(), stolen: await stolen() };
process.stdout.write(`GATEHOUSE_BROWSER_RESULT ${JSON.stringify(result)}\n`);
