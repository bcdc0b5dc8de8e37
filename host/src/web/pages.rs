//! The HTML pages Gatehouse serves, as small functions over escaped values. No
//! decisions are made here; handlers decide, pages render.

use axum::{http::StatusCode, response::Html};
use gatehouse_plugin_api::{LoginStep, StepMethod};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}form{margin:1rem 0}label{display:block;margin:.6rem 0 .2rem}\
input[type=text],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}\
button,.button{display:block;width:100%;padding:.6rem;margin:.5rem 0;font-size:1rem;cursor:pointer;text-align:center;box-sizing:border-box}\
.notice{background:#fff4e5;border:1px solid #f0b35b;padding:.6rem;border-radius:4px}\
.error{background:#fdecea;border:1px solid #e57373;padding:.6rem;border-radius:4px}";

fn layout(title: &str, body: &str) -> Html<String> {
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

/// The page a signed-in user lands on when there is nowhere else to go.
pub fn home_page(display_name: &str, csrf: &str) -> Html<String> {
    layout(
        "Signed in",
        &format!(
            "<h1>You are signed in</h1><p>as <strong>{}</strong>.</p>\
<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<button type=\"submit\">Sign out</button></form>",
            text(display_name),
            attr(csrf)
        ),
    )
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

/// An auto-submitting form that POSTs to an IdP (SAML POST binding and the like).
pub fn post_form_page(step: &LoginStep) -> Html<String> {
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
    layout(
        "Signing in",
        &format!(
            "<form id=\"sso\" method=\"post\" action=\"{}\">{fields}<p>Continuing to your identity provider…</p>\
<button type=\"submit\">Continue</button></form><script>document.getElementById('sso').submit()</script>",
            attr(&step.url)
        ),
    )
}

/// The result of an admin's test sign-in: a summary and the whole result as JSON, which
/// scripts (and tests) read from the `test-result` element.
pub fn test_login_page(idp: &str, summary: &str, result: &serde_json::Value) -> Html<String> {
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
