//! The online check of plugin API 1.3 (`gatehouse check --online`) for a SAML IdP: its
//! metadata fetched from `idp_metadata_url` through the host's HTTP (egress policy, time
//! limits, size caps) and checked by `idp_metadata` exactly as a sign-in would, or the inline
//! metadata as start-up parsed it; then each signing certificate's expiry, warned 30 days
//! ahead and once past. Nothing is stored: a sign-in still fetches its own copy.

use gatehouse_plugin_api::{Host, OnlineFinding, OnlineReport};
use openssl::{asn1::Asn1Time, nid::Nid, x509::X509};

use crate::{idp_metadata::IdpConfig, source::Source};

/// How long before a signing certificate's end the check starts warning.
const EXPIRY_WARNING_DAYS: i32 = 30;

pub fn check(host: &Host<'_>, source: &Source) -> OnlineReport {
    let mut report = OnlineReport::new();
    let setting = if source.url().is_some() {
        "idp_metadata_url"
    } else {
        "idp_metadata"
    };
    let idp = match source.current(host) {
        Ok(idp) => idp,
        Err(error) => {
            let url = source.url().unwrap_or_default();
            report.push(
                OnlineFinding::error(format!(
                    "the IdP metadata could not be used: {}",
                    error.message()
                ))
                .with_help(format!(
                    "`idp_metadata_url` must be the address of the IdP's SAML metadata, reachable \
                     from this host ({url}); or paste the metadata as `idp_metadata`"
                ))
                .with_setting(setting),
            );
            return report;
        }
    };
    report.checked(match source.url() {
        Some(url) => format!(
            "metadata at {url} (entity {}, {} signing certificate(s))",
            idp.entity_id,
            idp.signing_certs.len()
        ),
        None => format!(
            "inline metadata (entity {}, {} signing certificate(s))",
            idp.entity_id,
            idp.signing_certs.len()
        ),
    });
    for finding in certificate_expiry(&idp, host.now_unix_seconds()) {
        report.push(finding.with_setting(setting));
    }
    report
}

/// A warning for each signing certificate that has expired or expires within
/// [`EXPIRY_WARNING_DAYS`] of `now` (Unix seconds).
fn certificate_expiry(idp: &IdpConfig, now: i64) -> Vec<OnlineFinding> {
    let Ok(now_time) = Asn1Time::from_unix(now) else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    for der in &idp.signing_certs {
        // Each one parsed when the metadata was checked.
        let Ok(cert) = X509::from_der(der) else {
            continue;
        };
        let Ok(left) = now_time.diff(cert.not_after()) else {
            continue;
        };
        let subject = cert
            .subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .next()
            .and_then(|entry| entry.data().to_string().ok())
            .map_or_else(
                || "without a common name".to_owned(),
                |cn| format!("`{cn}`"),
            );
        let ends = cert.not_after().to_string();
        let expired = left.days < 0 || (left.days == 0 && left.secs <= 0);
        let help = "when the IdP rolls over to its next certificate, Gatehouse needs its new \
                    metadata: export it again into `idp_metadata`, or use `idp_metadata_url`, \
                    which the `refresh_metadata` task fetches daily";
        if expired {
            findings.push(
                OnlineFinding::warning(format!(
                    "the IdP's signing certificate {subject} expired on {ends}"
                ))
                .with_help(help),
            );
        } else if left.days < EXPIRY_WARNING_DAYS {
            findings.push(
                OnlineFinding::warning(format!(
                    "the IdP's signing certificate {subject} expires on {ends}, in {} day(s)",
                    left.days
                ))
                .with_help(help),
            );
        }
    }
    findings
}
