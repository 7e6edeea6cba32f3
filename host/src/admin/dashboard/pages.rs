//! The dashboard's pages: HTML built here with escaped text, no template engine (the
//! pages are a frame, a navigation bar, a tenant picker and empty tables the script
//! fills; a template crate would add a build step for a few hundred bytes of markup).

use super::super::Admin;
use super::super::auth::Scope;
use super::session::Session;
use crate::openai::{ResponseBody, full};
use http::{HeaderValue, Response, StatusCode, header};
use std::fmt::Write;

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// A page of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Page {
    /// Traffic, errors, latency, spend; circuit states.
    Overview,
    /// Which targets each policy chooses, fallbacks by cause, route reasons.
    Routing,
    /// A tenant's versions, binding, history and candidate, with the actions.
    Policies,
    /// Spend by tenant, key, model and day.
    Usage,
    /// A tenant's recent decisions.
    Decisions,
    /// A replay report's cost–quality chart.
    Replay,
}

impl Page {
    const ALL: [(Page, &'static str, &'static str); 6] = [
        (Page::Overview, "overview", "Overview"),
        (Page::Routing, "routing", "Routing"),
        (Page::Policies, "policies", "Policies"),
        (Page::Usage, "usage", "Usage"),
        (Page::Decisions, "decisions", "Decisions"),
        (Page::Replay, "replay", "Replay"),
    ];

    fn slug(self) -> &'static str {
        Page::ALL
            .iter()
            .find(|(p, _, _)| *p == self)
            .map_or("overview", |(_, s, _)| s)
    }

    fn path(self) -> String {
        match self {
            Page::Overview => "/dashboard".to_owned(),
            other => format!("/dashboard/{}", other.slug()),
        }
    }

    fn per_tenant(self) -> bool {
        matches!(self, Page::Policies | Page::Decisions | Page::Routing)
    }
}

/// An embedded asset.
pub fn asset(kind: &str) -> Response<ResponseBody> {
    let (body, content_type) = match kind {
        "css" => (CSS, "text/css; charset=utf-8"),
        _ => (JS, "text/javascript; charset=utf-8"),
    };
    let mut response = Response::new(full(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The sign-in form, with `notice` above it.
pub fn sign_in(status: StatusCode, notice: Option<&str>) -> Response<ResponseBody> {
    let mut body = head("Sign in", "sign-in", "", "");
    body += "<main class=\"narrow\"><h1>Signalbox</h1>";
    if let Some(n) = notice {
        let _ = write!(body, "<p class=\"notice\" id=\"notice\">{}</p>", escape(n));
    }
    body += "<form method=\"post\" action=\"/dashboard/sign-in\" id=\"sign-in\">\
             <label>Admin token (an operator token, or your team's deploy token)\
             <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" required></label>\
             <button type=\"submit\">Sign in</button></form></main></body></html>";
    html(status, body)
}

/// A page for a signed-in session.
pub fn page(
    admin: &Admin,
    page: Page,
    session: &Session,
    query: Option<&str>,
) -> Response<ResponseBody> {
    let mut tenants: Vec<&str> = admin
        .gateway
        .tenants
        .keys()
        .map(|t| &**t)
        .filter(|t| session.scope.allows(t))
        .collect();
    tenants.sort_unstable();
    let asked = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "tenant")
            .map(|(_, v)| v.into_owned())
    });
    let tenant = match asked {
        Some(t) if !session.scope.allows(&t) => {
            return message(
                StatusCode::FORBIDDEN,
                "This session may not see that tenant.",
            );
        }
        Some(t) if !tenants.contains(&t.as_str()) => {
            return message(StatusCode::NOT_FOUND, "No such tenant.");
        }
        Some(t) => t,
        None => tenants.first().map(|t| (*t).to_owned()).unwrap_or_default(),
    };
    let title = Page::ALL
        .iter()
        .find(|(p, _, _)| *p == page)
        .map_or("", |(_, _, t)| t);
    let mut body = head(title, page.slug(), &session.csrf, &tenant);
    body += "<header><nav>";
    for (p, _, name) in Page::ALL {
        let current = if p == page { " class=\"current\"" } else { "" };
        let _ = write!(
            body,
            "<a href=\"{}\"{current} id=\"nav-{}\">{name}</a>",
            p.path(),
            p.slug()
        );
    }
    let who = match &session.scope {
        Scope::Operator => "operator".to_owned(),
        Scope::Tenant(t) => format!("tenant {}", escape(t)),
    };
    let _ = write!(
        body,
        "</nav><span class=\"scope\" id=\"scope\">{who}</span>\
         <form method=\"post\" action=\"/dashboard/sign-out\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" id=\"sign-out\">Sign out</button></form></header><main>",
        escape(&session.csrf)
    );
    if page.per_tenant() {
        body += "<p class=\"tenants\" id=\"tenants\">Tenant: ";
        for t in &tenants {
            let current = if *t == tenant {
                " class=\"current\""
            } else {
                ""
            };
            let link: String = form_urlencoded::byte_serialize(t.as_bytes()).collect();
            let _ = write!(
                body,
                "<a href=\"{}?tenant={link}\"{current} data-tenant=\"{t}\">{t}</a> ",
                page.path(),
                t = escape(t)
            );
        }
        body += "</p>";
    }
    body += match page {
        Page::Overview => OVERVIEW,
        Page::Routing => ROUTING,
        Page::Policies => POLICIES,
        Page::Usage => USAGE,
        Page::Decisions => DECISIONS,
        Page::Replay => REPLAY,
    };
    body += "</main></body></html>";
    html(StatusCode::OK, body)
}

const OVERVIEW: &str = "<h1>Overview</h1><p class=\"hint\">Counts since the gateway started; rates over the last poll (every 3 s).</p>\
<h2>Traffic by tenant and target</h2><table id=\"traffic\"><thead><tr><th>Tenant</th><th>Target</th><th>Requests</th><th>4xx</th><th>5xx</th><th>Error rate</th><th>Req/s</th><th>Spend ($)</th><th>Spend/hour ($)</th></tr></thead><tbody></tbody></table>\
<h2>Request rate</h2><svg id=\"rate-chart\" class=\"chart\" viewBox=\"0 0 600 120\" role=\"img\" aria-label=\"requests per second\"></svg>\
<h2>Targets</h2><table id=\"targets\"><thead><tr><th>Target</th><th>Circuit</th><th>In flight</th><th>p50</th><th>p99</th><th>TTFT p50</th><th>TTFT p99</th></tr></thead><tbody></tbody></table>\
<h2>Refused by a limit</h2><table id=\"rejections\"><thead><tr><th>Tenant</th><th>Reason</th><th>Requests</th></tr></thead><tbody></tbody></table>";

const ROUTING: &str = "<h1>Routing</h1><p class=\"hint\">Counts over the window chosen below; reasons among the tenant's newest decisions.</p>\
<form id=\"routing-form\"><label>Window <select id=\"routing-window\"><option value=\"start\">since the gateway started</option><option value=\"page\">since this page opened</option></select></label></form>\
<h2>First choices by policy version</h2><table id=\"choices\"><thead><tr><th>Policy</th><th>Target</th><th>Decisions</th><th>Share</th></tr></thead><tbody></tbody></table>\
<h2>Fallbacks by cause</h2><table id=\"fallbacks\"><thead><tr><th>Target given up on</th><th>Cause</th><th>Fallbacks</th></tr></thead><tbody></tbody></table>\
<h2>Route reasons</h2><table id=\"reasons\"><thead><tr><th>Reason</th><th>Decisions</th></tr></thead><tbody></tbody></table>";

const POLICIES: &str = "<h1>Policies</h1><p id=\"action-result\" class=\"notice\" hidden></p>\
<h2>Active</h2><div id=\"active\"></div><button id=\"rollback\" type=\"button\">Roll back</button>\
<h2>Candidate</h2><div id=\"candidate\"></div><div class=\"actions\"><button id=\"promote\" type=\"button\">Promote</button> <button id=\"discard\" type=\"button\">Discard</button></div>\
<h2>Start a candidate</h2><form id=\"start-candidate\"><label>Version <select id=\"candidate-version\"></select></label> \
<label>Mode <select id=\"candidate-mode\"><option value=\"canary\">canary</option><option value=\"shadow\">shadow</option></select></label> \
<label>Percent <input id=\"candidate-percent\" type=\"number\" min=\"0\" max=\"100\" value=\"10\"></label> <button type=\"submit\" id=\"start\">Start</button></form>\
<h2>Versions</h2><table id=\"versions\"><thead><tr><th>Name</th><th>Version</th><th>Role</th><th>Calls</th><th>Errors</th><th>Quarantined</th><th></th></tr></thead><tbody></tbody></table>\
<h2>History (newest first)</h2><table id=\"history\"><thead><tr><th>Name</th><th>Version</th><th>Config</th></tr></thead><tbody></tbody></table>";

const USAGE: &str = "<h1>Usage and budgets</h1>\
<h2>Budgets (current UTC day and month)</h2><table id=\"budgets\"><thead><tr><th>Tenant</th><th>Window</th><th>Spent ($)</th><th>Limit ($)</th><th>Burn</th></tr></thead><tbody></tbody></table>\
<h2>Spend from the ledger</h2><form id=\"usage-form\"><label>Group by <select id=\"group-by\">\
<option value=\"day\">day</option><option value=\"target\">target</option><option value=\"model\">model</option><option value=\"key\">key</option></select></label></form>\
<svg id=\"usage-chart\" class=\"chart\" viewBox=\"0 0 600 160\" role=\"img\" aria-label=\"spend\"></svg>\
<table id=\"usage\"><thead><tr><th>Tenant</th><th>Group</th><th>Requests</th><th>Input tokens</th><th>Output tokens</th><th>Spend ($)</th></tr></thead><tbody></tbody></table>";

const DECISIONS: &str = "<h1>Decisions</h1><p class=\"hint\">The newest first; click one to see why it went where it went.</p>\
<table id=\"decisions\"><thead><tr><th>Time</th><th>Request</th><th>Model</th><th>Policy</th><th>Targets</th><th>Status</th></tr></thead><tbody></tbody></table>\
<section id=\"decision\" hidden><h2>Decision <span id=\"decision-id\"></span></h2><p>Route reason: <strong id=\"decision-reason\"></strong></p>\
<pre id=\"decision-detail\"></pre></section>";

const REPLAY: &str = "<h1>Replay</h1><p class=\"hint\">Open a report written by <code>signalbox replay --out</code>: it is read in this page and sent nowhere.</p>\
<input type=\"file\" id=\"replay-file\" accept=\"application/json,.json\">\
<svg id=\"replay-chart\" class=\"chart\" viewBox=\"0 0 600 300\" role=\"img\" aria-label=\"cost and quality\"></svg><table id=\"replay\"><tbody></tbody></table>";

/// A short page saying `text`.
fn message(status: StatusCode, text: &str) -> Response<ResponseBody> {
    let mut body = head("Dashboard", "message", "", "");
    let _ = write!(
        body,
        "<main class=\"narrow\"><p class=\"notice\" id=\"notice\">{}</p><p><a href=\"/dashboard\">Back to the overview</a></p></main></body></html>",
        escape(text)
    );
    html(status, body)
}

fn head(title: &str, page: &str, csrf: &str, tenant: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signalbox · {}</title>\
         <meta name=\"csrf-token\" content=\"{}\"><link rel=\"stylesheet\" href=\"/dashboard/assets/dashboard.css\">\
         <script src=\"/dashboard/assets/dashboard.js\" defer></script></head>\
         <body data-page=\"{page}\" data-tenant=\"{}\">",
        escape(title),
        escape(csrf),
        escape(tenant)
    )
}

fn html(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// Text made safe inside HTML text and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;"
        );
    }
}
