//! ID-token verification against its floor and its peer, side by side in one run:
//! (a) the relying party's whole `verify_id_token` of an RS256 token with the provider
//! data warm in the instance (JOSE header, allow-list, key selection, signature, every
//! claim check), (b) a bare aws-lc-rs RSA-2048 PKCS#1 v1.5 SHA-256 verify of the same
//! signature with a pre-parsed key, and (c) `jose` on Node (`jwtVerify` with an imported
//! key, issuer/audience/time checks) on the same token, then the ratios a/b and a/c.
//! Each runs on one thread for about two seconds in all, in alternating 200 ms slices
//! (a, b, c, a, b, c, ...), so all three see the same load on a shared machine. Node
//! and the npm `jose` package come from `scripts/test-peers`; without them (c) is
//! skipped and says so. Run: `cargo bench -p gatehouse-oidc-core --bench verify`.

use std::{
    hint::black_box,
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
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
const SLICE: Duration = Duration::from_millis(200);

/// Operations done and time spent, summed over slices.
#[derive(Default)]
struct Tally {
    done: u64,
    time: Duration,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.done as f64 / self.time.as_secs_f64()
    }

    /// Runs `op` for one slice.
    fn slice(&mut self, op: &mut dyn FnMut()) {
        let start = Instant::now();
        loop {
            for _ in 0..50 {
                op();
            }
            self.done += 50;
            let elapsed = start.elapsed();
            if elapsed >= SLICE {
                self.time += elapsed;
                return;
            }
        }
    }
}

/// The Node side: imports the key once, warms up, says `ready`, then for each line on
/// stdin verifies for one slice and prints `{count} {seconds}`.
const NODE_SCRIPT: &str = r#"
import { importJWK, jwtVerify } from 'jose';
import { createInterface } from 'node:readline';
const [token, jwk, issuer, audience, now] = process.argv.slice(1);
const key = await importJWK(JSON.parse(jwk), 'RS256');
const options = { issuer, audience, algorithms: ['RS256'], currentDate: new Date(Number(now) * 1000) };
for (let i = 0; i < 2000; i++) await jwtVerify(token, key, options);
console.log('ready');
for await (const _ of createInterface({ input: process.stdin })) {
  const start = process.hrtime.bigint();
  let done = 0, elapsed = 0;
  do {
    for (let i = 0; i < 50; i++) await jwtVerify(token, key, options);
    done += 50;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  } while (elapsed < 0.2);
  console.log(`${done} ${elapsed}`);
}
"#;

/// `jose` on Node, driven one slice at a time.
struct NodeJose {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl NodeJose {
    fn start(token: &str, jwk: &str, now: i64) -> Result<Self, String> {
        let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/oidc-provider");
        if !peer.join("node_modules/jose").is_dir() {
            return Err(format!(
                "no npm jose under {} (run scripts/test-peers)",
                peer.display()
            ));
        }
        let mut child = Command::new("node")
            .current_dir(&peer)
            .args(["--input-type=module", "-e", NODE_SCRIPT, "--"])
            .args([token, jwk, ISSUER, CLIENT_ID, &now.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|error| format!("could not start node: {error}"))?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("node has no pipes".into());
        };
        let mut node = Self {
            child,
            input,
            output: BufReader::new(output),
        };
        match node.line()?.as_str() {
            "ready" => Ok(node),
            other => Err(format!("node said {other:?} instead of ready")),
        }
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.output.read_line(&mut line) {
            Ok(0) => Err("node exited (see its error above)".into()),
            Ok(_) => Ok(line.trim().to_owned()),
            Err(error) => Err(format!("reading from node: {error}")),
        }
    }

    fn slice(&mut self, tally: &mut Tally) -> Result<(), String> {
        writeln!(self.input, "run").map_err(|error| format!("writing to node: {error}"))?;
        let line = self.line()?;
        let parsed = line
            .split_once(' ')
            .and_then(|(done, secs)| Some((done.parse::<u64>().ok()?, secs.parse::<f64>().ok()?)));
        let Some((done, secs)) = parsed else {
            return Err(format!("node printed {line:?}"));
        };
        tally.done += done;
        tally.time += Duration::from_secs_f64(secs);
        Ok(())
    }
}

impl Drop for NodeJose {
    fn drop(&mut self) {
        // Our own child: closing stdin ends its loop; kill it in case it is stuck.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let mut node = NodeJose::start(&token, &jwk.to_string(), h.now());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (mut a, mut b, mut c) = (Tally::default(), Tally::default(), Tally::default());
    let (mut verify_id_token, mut bare_verify) = (verify_id_token, bare_verify);
    for _ in 0..200 {
        verify_id_token();
        bare_verify();
    }
    while a.time < RUN_FOR || b.time < RUN_FOR {
        a.slice(&mut verify_id_token);
        b.slice(&mut bare_verify);
        if let Ok(running) = &mut node
            && let Err(why) = running.slice(&mut c)
        {
            node = Err(why);
        }
    }
    let (a, b) = (a.rate(), b.rate());
    let c = node.map(|_| c.rate());

    println!(
        "ID-token verification, RS256 (RSA-2048), one thread each, ~2 s per rate \
         (interleaved; load average at start: {})",
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
