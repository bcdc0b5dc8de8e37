//! `gatehouse explain --domain NAME`: what a domain's login page does and which rule decided,
//! in plain words, from a [`Resolved`] configuration. Text only; the CLI prints it.

use std::fmt::Write as _;

use gatehouse_config::{Behaviour, Severity};

use crate::{
    Resolved,
    decision::{self, Decision, Request},
    resolution::DomainPlan,
};

/// The explanation of `domain`, or `None` if no domain has that name.
pub fn explain(resolved: &Resolved, domain: &str) -> Option<String> {
    let plan = resolved.resolution.domain(domain)?;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_explanation(&mut out, resolved, plan);
    Some(out)
}

fn write_explanation(out: &mut String, resolved: &Resolved, plan: &DomainPlan) -> std::fmt::Result {
    writeln!(out, "domain `{}`", plan.name)?;
    writeln!(out, "  hosts:  {}", plan.hosts.join(", "))?;
    writeln!(
        out,
        "  branch: {} (users created here are placed in it)",
        plan.branch
    )?;
    writeln!(out)?;

    let (decision, rule) = decision::decide(plan, Request::default());
    writeln!(out, "An unauthenticated visitor to /login:")?;
    match decision {
        Decision::External { url } => writeln!(out, "  is sent to {url}")?,
        Decision::Redirect { idp } => writeln!(
            out,
            "  is sent straight to IdP `{}` ({})",
            idp.id,
            idp.protocol.as_deref().unwrap_or("?")
        )?,
        Decision::Page { form, buttons, .. } => {
            writeln!(
                out,
                "  sees the login page: {}",
                if form {
                    "the username and password form"
                } else {
                    "no password form (login_form = \"hidden\")"
                }
            )?;
            for button in buttons {
                writeln!(
                    out,
                    "  and a button \"{}\" for IdP `{}`",
                    button.label, button.idp_id
                )?;
            }
        }
    }
    writeln!(out, "  decided by {}", rule.describe())?;
    if !matches!(rule, crate::Rule::ForceExternalUrl) {
        let (nosso, _) = decision::decide(
            plan,
            Request {
                nosso: true,
                ..Request::default()
            },
        );
        if let Decision::Page { buttons, .. } = nosso {
            writeln!(
                out,
                "  with ?nosso=1: the password form{}",
                if buttons.is_empty() {
                    ""
                } else {
                    " and the buttons"
                }
            )?;
        }
    }
    if plan.redirect_idp().is_some() {
        writeln!(
            out,
            "  a browser sent to the IdP {} times within {} s without signing in gets the login page instead",
            crate::loop_breaker::LIMIT,
            crate::loop_breaker::WINDOW_SECONDS
        )?;
    }

    if !plan.idps.is_empty() {
        writeln!(out)?;
        writeln!(out, "IdPs:")?;
    }
    for idp in &plan.idps {
        let p = &idp.policy;
        let shown = match idp.behaviour {
            Behaviour::Button => "button",
            Behaviour::Redirect => "automatic redirect",
            Behaviour::Hidden => "hidden (admin test sign-in only)",
        };
        writeln!(
            out,
            "  `{}` ({}, plugin `{}`): {shown}",
            idp.id,
            idp.protocol.as_deref().unwrap_or("?"),
            idp.plugin
        )?;
        writeln!(
            out,
            "      matches `{}` against {}{}; {} users; {} existing users; {}",
            p.username_attribute,
            p.match_field,
            if p.case_insensitive {
                " (case-insensitive)"
            } else {
                ""
            },
            if p.create_users {
                "creates"
            } else {
                "does not create"
            },
            if p.update_existing {
                "updates"
            } else {
                "does not update"
            },
            if p.lock_fields {
                "locks what it provides"
            } else {
                "locks nothing"
            },
        )?;
        if !p.mapping.is_empty() {
            let mapping: Vec<String> = p
                .mapping
                .iter()
                .map(|(field, attribute)| format!("{field} ← {attribute}"))
                .collect();
            writeln!(out, "      maps {}", mapping.join(", "))?;
        }
    }

    let findings: Vec<_> = resolved
        .diagnostics
        .iter()
        .filter(|d| d.domain.as_deref() == Some(plan.name.as_str()))
        .collect();
    if !findings.is_empty() {
        writeln!(out)?;
        writeln!(out, "Findings (run `gatehouse check` for details):")?;
        for d in findings {
            let severity = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            writeln!(
                out,
                "  {severity}[{}] line {}: {}",
                d.code, d.location.line, d.message
            )?;
        }
    }
    Ok(())
}
