//! ID-token verification against its floor and its peer, side by side in one run:
//! (a) the relying party's whole `verify_id_token` of an RS256 token with the provider
//! data warm in the instance (JOSE header, allow-list, key selection, signature, every
//! claim check), (b) a bare aws-lc-rs RSA-2048 PKCS#1 v1.5 SHA-256 verify of the same
//! signature with a pre-parsed key, and (c) `jose` on Node (`jwtVerify` with an imported
//! key, issuer/audience/time checks) on the same token, then the ratios a/b and a/c.
//! Each rate is one thread looping for about two seconds (a and b in alternating
//! slices, so both see the same load). Node and the npm `jose`
//! package come from `scripts/test-peers`; without them (c) is skipped and says so.
//! Run: `cargo bench -p gatehouse-oidc-core --bench verify`.

use std::{
    hint::black_box,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse_oidc_core::{
    RelyingParty, RpConfig, StandardProfile,
    testing::{CLIENT_ID, CLIENT_SECRET, Harness, Signer},
};
use gatehouse_plugin_api::Secret;

const ISSUER: &str = "https://idp.test";
const RUN_FOR: Duration = Duration::from_secs(2);

/// Rates (operations per second) of `a` and `b`, measured in alternating slices of
/// 200 ms until each has run `RUN_FOR`, so both see the same load on a shared machine.
fn interleaved_rates(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    for _ in 0..200 {
        a();
        b();
    }
    let slice = Duration::from_millis(200);
    let (mut a_done, mut a_time) = (0u64, Duration::ZERO);
    let (mut b_done, mut b_time) = (0u64, Duration::ZERO);
    let run = |op: &mut dyn FnMut(), done: &mut u64, time: &mut Duration| {
        let start = Instant::now();
        loop {
            for _ in 0..50 {
                op();
            }
            *done += 50;
            if start.elapsed() >= slice {
                *time += start.elapsed();
                return;
            }
        }
    };
    while a_time < RUN_FOR || b_time < RUN_FOR {
        run(&mut a, &mut a_done, &mut a_time);
        run(&mut b, &mut b_done, &mut b_time);
    }
    (
        a_done as f64 / a_time.as_secs_f64(),
        b_done as f64 / b_time.as_secs_f64(),
    )
}

/// The Node side: imports the key once, then awaits `jwtVerify` in a loop.
const NODE_SCRIPT: &str = r#"
import { importJWK, jwtVerify } from 'jose';
const [token, jwk, issuer, audience, now] = process.argv.slice(1);
const key = await importJWK(JSON.parse(jwk), 'RS256');
const options = { issuer, audience, algorithms: ['RS256'], currentDate: new Date(Number(now) * 1000) };
for (let i = 0; i < 500; i++) await jwtVerify(token, key, options);
const start = process.hrtime.bigint();
let done = 0, elapsed = 0;
do {
  for (let i = 0; i < 100; i++) await jwtVerify(token, key, options);
  done += 100;
  elapsed = Number(process.hrtime.bigint() - start) / 1e9;
} while (elapsed < 2);
console.log(done / elapsed);
"#;

fn node_jose(token: &str, jwk: &str, now: i64) -> Result<f64, String> {
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/oidc-provider");
    if !peer.join("node_modules/jose").is_dir() {
        return Err(format!(
            "no npm jose under {} (run scripts/test-peers)",
            peer.display()
        ));
    }
    let output = Command::new("node")
        .current_dir(&peer)
        .args(["--input-type=module", "-e", NODE_SCRIPT, "--"])
        .args([token, jwk, ISSUER, CLIENT_ID, &now.to_string()])
        .output()
        .map_err(|error| format!("could not start node: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "node failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|error| format!("node printed no rate: {error}"))
}

fn main() {
    let mut config = RpConfig::new(ISSUER.into(), "issuer", CLIENT_ID.into());
    config.client_secret = Some(Secret::new(CLIENT_SECRET));
    let idp = RelyingParty::new(config, StandardProfile).expect("valid config");
    let h = Harness::new(idp, ISSUER, None);
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
    // Warm the instance: the first verification reads the shared copy and parses it.
    h.fake
        .call(|host| h.idp.verify_id_token(host, &token, &login.nonce))
        .expect("the token verifies");

    let verify_id_token = || {
        h.fake
            .call(|host| h.idp.verify_id_token(host, black_box(&token), &login.nonce))
            .expect("verifies");
    };

    let jwk = h.provider.jwks()["keys"][0].clone();
    let component = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().expect("RSA JWK member"))
            .expect("base64url")
    };
    let key = RsaPublicKeyComponents {
        n: component("n"),
        e: component("e"),
    }
    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
    .expect("RSA key");
    let (signing_input, signature) = token.rsplit_once('.').expect("a JWS");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("signature");
    let bare_verify = || {
        key.verify_sig(black_box(signing_input.as_bytes()), &signature)
            .expect("verifies");
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (a, b) = interleaved_rates(verify_id_token, bare_verify);

    let c = node_jose(&token, &jwk.to_string(), h.now());

    println!(
        "ID-token verification, RS256 (RSA-2048), one thread each, ~2 s per rate \
         (a and b interleaved; load average at start: {})",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("  (a) gatehouse verify_id_token, warm cache    {a:>10.0} /s");
    println!("  (b) bare aws-lc-rs RSA-2048 PKCS#1 verify    {b:>10.0} /s");
    match &c {
        Ok(c) => println!("  (c) jose on Node (jwtVerify, imported key)  {c:>10.0} /s"),
        Err(why) => println!("  (c) jose on Node: skipped: {why}"),
    }
    println!("  a/b = {:.2}   (goal >= 0.5)", a / b);
    if let Ok(c) = c {
        println!("  a/c = {:.2}   (goal >= 3)", a / c);
    }
}
