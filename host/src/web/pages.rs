//! The HTML pages Gatehouse serves, as small functions over escaped values. No
//! decisions are made here; handlers decide, pages render.
//!
//! Every page satisfies the Content-Security-Policy of `headers`: its only inline style is
//! [`STYLE`] and its only inline script [`AUTO_SUBMIT`], both allowed by hash, and a page
//! whose form leaves this origin sets its own policy naming where the form goes.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse},
};
use gatehouse_plugin_api::{LoginStep, StepMethod};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

/// The one stylesheet, inline in every page (the CSP allows it by its hash).
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}form{margin:1rem 0}label{display:block;margin:.6rem 0 .2rem}\
input[type=text],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}\
button,.button{display:block;width:100%;padding:.6rem;margin:.5rem 0;font-size:1rem;cursor:pointer;text-align:center;box-sizing:border-box}\
.notice{background:#fff4e5;border:1px solid #f0b35b;padding:.6rem;border-radius:4px}\
.error{background:#fdecea;border:1px solid #e57373;padding:.6rem;border-radius:4px}";

pub(super) fn layout(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head>\
<body>{body}</body></html>",
        text(title)
    ))
}

/// One SSO button on the login page.
pub struct Button<'a> {
    pub label: &'a str,
    pub href: String,
}

/// The domain's login page.
pub struct LoginPage<'a> {
    pub domain: &'a str,
    pub show_form: bool,
    pub buttons: Vec<Button<'a>>,
    pub csrf: &'a str,
    /// Where the password form posts.
    pub form_action: &'a str,
    pub return_to: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
}

pub fn login_page(page: &LoginPage<'_>) -> Html<String> {
    let mut body = format!(
        "<h1>Sign in</h1><p>to <strong>{}</strong></p>",
        text(page.domain)
    );
    if let Some(notice) = page.notice {
        body.push_str(&format!(
            "<p class=\"notice\" role=\"status\">{}</p>",
            text(notice)
        ));
    }
    if let Some(error) = page.error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            text(error)
        ));
    }
    for button in &page.buttons {
        body.push_str(&format!(
            "<a class=\"button sso\" href=\"{}\">{}</a>",
            attr(&button.href),
            text(button.label)
        ));
    }
    if page.show_form {
        body.push_str(&format!(
            "<form method=\"post\" action=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"return_to\" value=\"{}\">\
<label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" autocomplete=\"username\" required>\
<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>",
            attr(page.form_action),
            attr(page.csrf),
            attr(page.return_to),
            attr(page.username)
        ));
    }
    layout("Sign in", &body)
}

/// The password page (`/me/password`) as one request renders it.
pub struct PasswordPage<'a> {
    pub username: &'a str,
    pub csrf: &'a str,
    pub return_to: &'a str,
    /// Why the account has no password here to change; the form is not shown then.
    pub unavailable: Option<&'a str>,
    /// The account must change its password before anything else.
    pub required: bool,
    pub error: Option<&'a str>,
    /// The fewest characters a new password may have, said on the page.
    pub min_chars: usize,
}

pub fn password_page(page: &PasswordPage<'_>) -> Html<String> {
    let mut body = format!(
        "<h1>Change your password</h1><p>for <strong>{}</strong></p>",
        text(page.username)
    );
    if let Some(why) = page.unavailable {
        body.push_str(&format!(
            "<p class=\"notice\" role=\"status\">{}</p><a class=\"button\" href=\"/\">Back</a>",
            text(why)
        ));
        return layout("Change your password", &body);
    }
    if page.required {
        body.push_str(
            "<p class=\"notice\" role=\"status\">Your password was set for you (or reset by an administrator). \
             Please choose your own before going on.</p>",
        );
    }
    if let Some(error) = page.error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            text(error)
        ));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/me/password\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"return_to\" value=\"{}\">\
<input type=\"hidden\" name=\"username\" value=\"{}\" autocomplete=\"username\">\
<label for=\"current_password\">Current password</label><input type=\"password\" id=\"current_password\" name=\"current_password\" autocomplete=\"current-password\" required>\
<label for=\"new_password\">New password (at least {} characters)</label><input type=\"password\" id=\"new_password\" name=\"new_password\" autocomplete=\"new-password\" minlength=\"{}\" required>\
<label for=\"confirm_password\">New password again</label><input type=\"password\" id=\"confirm_password\" name=\"confirm_password\" autocomplete=\"new-password\" minlength=\"{}\" required>\
<button type=\"submit\">Change password</button></form>",
        attr(page.csrf),
        attr(page.return_to),
        attr(page.username),
        page.min_chars,
        page.min_chars,
        page.min_chars,
    ));
    if !page.required {
        body.push_str("<a class=\"button\" href=\"/\">Cancel</a>");
    }
    layout("Change your password", &body)
}

/// The page a signed-in user lands on when there is nowhere else to go.
///
/// Its sign-out form posts here, but the answer may redirect to the IdP's end-session
/// endpoint or a configured landing page, and browsers check redirects after a form
/// submission against `form-action` too; those targets are only known at sign-out, so this
/// page allows https targets besides its own origin.
pub fn home_page(display_name: &str, csrf: &str) -> impl IntoResponse + use<> {
    let page = layout(
        "Signed in",
        &format!(
            "<h1>You are signed in</h1><p>as <strong>{}</strong>.</p>\
<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<button type=\"submit\">Sign out</button></form>\
<a class=\"button\" href=\"/me/password\">Change password</a>",
            text(display_name),
            attr(csrf)
        ),
    );
    with_policy(
        &super::headers::content_security_policy(None, "'self' https:"),
        page,
    )
}

/// `page` with its own Content-Security-Policy, which the default layer leaves alone.
fn with_policy(policy: &str, page: Html<String>) -> impl IntoResponse + use<> {
    // Policies are built from constants and URL origins, which hold no control characters.
    let value = HeaderValue::from_str(policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; sandbox"));
    ([(header::CONTENT_SECURITY_POLICY, value)], page)
}

/// The default landing page after signing out.
pub fn logged_out_page() -> Html<String> {
    layout(
        "Signed out",
        "<h1>You have signed out</h1><p>You can close this window.</p><a class=\"button\" href=\"/login\">Sign in again</a>",
    )
}

/// An error, in one plain sentence, with a way back.
pub fn error_page(status: StatusCode, message: &str) -> Html<String> {
    layout(
        "Sign-in problem",
        &format!(
            "<h1>{}</h1><p class=\"error\" role=\"alert\">{}</p><a class=\"button\" href=\"/login\">Back to sign in</a>",
            text(status.canonical_reason().unwrap_or("Error")),
            text(message)
        ),
    )
}

/// The script that submits the POST form page's form (the CSP allows it by its hash).
/// Without scripts the page's button does the same.
pub const AUTO_SUBMIT: &str = "document.getElementById('sso').submit()";

/// The CSP source a form posting to `url` needs: its origin, or nothing at all for a URL
/// that has no origin a policy can name.
fn form_target(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => {
            parsed.origin().ascii_serialization()
        }
        Ok(_) => String::from("'none'"),
        // A relative URL is on this origin.
        Err(_) => String::from("'self'"),
    }
}

/// An auto-submitting form that POSTs to an IdP (SAML POST binding and the like), with a
/// policy whose `form-action` is the IdP's origin.
pub fn post_form_page(step: &LoginStep) -> impl IntoResponse + use<> {
    debug_assert_eq!(step.method, StepMethod::PostForm);
    let fields: String = step
        .form
        .iter()
        .map(|f| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                attr(&f.name),
                attr(&f.value)
            )
        })
        .collect();
    let page = layout(
        "Signing in",
        &format!(
            "<form id=\"sso\" method=\"post\" action=\"{}\">{fields}<p>Continuing to your identity provider…</p>\
<button type=\"submit\">Continue</button></form><script>{AUTO_SUBMIT}</script>",
            attr(&step.url)
        ),
    );
    let policy =
        super::headers::content_security_policy(Some(AUTO_SUBMIT), &form_target(&step.url));
    with_policy(&policy, page)
}

/// The result of an admin's test sign-in: a summary and the whole result as JSON, which
/// scripts (and tests) read from the `test-result` element.
pub fn test_sign_in_page(idp: &str, summary: &str, result: &serde_json::Value) -> Html<String> {
    let pretty = serde_json::to_string_pretty(result).unwrap_or_default();
    // Inside <script>, only `<` can end the element early; JSON allows it escaped.
    let embedded = pretty.replace('<', "\\u003c");
    layout(
        "Test sign-in",
        &format!(
            "<h1>Test sign-in with {}</h1><p class=\"notice\" role=\"status\">{}. Nothing was saved.</p>\
<pre>{}</pre><script type=\"application/json\" id=\"test-result\">{embedded}</script>\
<a class=\"button\" href=\"/\">Done</a>",
            text(idp),
            text(summary),
            text(&pretty)
        ),
    )
}

#[cfg(test)]
mod tests {
    use axum::http::header;
    use gatehouse_plugin_api::{LoginStep, Pair};

    use super::*;

    fn policy_of(response: &axum::response::Response) -> String {
        response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ASCII policy")
            .to_owned()
    }

    async fn body_of(response: axum::response::Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    /// The text between the first `open` and the next `close` in `body`.
    fn between<'a>(body: &'a str, open: &str, close: &str) -> &'a str {
        let start = body.find(open).expect(open) + open.len();
        let end = body[start..].find(close).expect(close) + start;
        &body[start..end]
    }

    #[tokio::test]
    async fn the_post_form_page_allows_exactly_its_script_style_and_target() {
        let step = LoginStep::post_form(
            "https://idp.example:8443/saml/sso?x=1",
            vec![Pair {
                name: "SAMLRequest".into(),
                value: "PHNhbWw+".into(),
            }],
        );
        let response = post_form_page(&step).into_response();
        let policy = policy_of(&response);
        let body = body_of(response).await;
        let script = between(&body, "<script>", "</script>");
        let style = between(&body, "<style>", "</style>");
        assert!(
            policy.contains(&format!(
                "script-src {}",
                crate::web::headers::csp_hash(script)
            )),
            "{policy}"
        );
        assert!(
            policy.contains(&format!(
                "style-src {}",
                crate::web::headers::csp_hash(style)
            )),
            "{policy}"
        );
        assert!(
            policy.contains("form-action https://idp.example:8443;"),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(
            body.contains("<button type=\"submit\">"),
            "works without script"
        );
    }

    #[test]
    fn form_targets_are_origins() {
        assert_eq!(
            form_target("https://idp.example/a?b"),
            "https://idp.example"
        );
        assert_eq!(
            form_target("http://127.0.0.1:9000/x"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(form_target("/sso/x/callback"), "'self'");
        assert_eq!(form_target("javascript:alert(1)"), "'none'");
    }
}
