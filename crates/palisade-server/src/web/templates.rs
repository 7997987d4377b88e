//! The page templates, compiled into the binary and parsed once. HTML autoescaping is on for
//! every template (they all end in `.html`): a value is markup only when it is built with
//! `Value::from_safe_string`, which only sanitized descriptions are.

use std::sync::OnceLock;

use minijinja::{Environment, Value};
use serde::Serialize;

use crate::AppState;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("home.html", include_str!("../../templates/home.html")),
    ("search.html", include_str!("../../templates/search.html")),
    ("project.html", include_str!("../../templates/project.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("register.html", include_str!("../../templates/register.html")),
    ("message.html", include_str!("../../templates/message.html")),
    ("reauth.html", include_str!("../../templates/reauth.html")),
    ("admin.html", include_str!("../../templates/admin.html")),
    ("scan_report.html", include_str!("../../templates/scan_report.html")),
    ("report.html", include_str!("../../templates/report.html")),
    ("reset_password.html", include_str!("../../templates/reset_password.html")),
    ("second_factor.html", include_str!("../../templates/second_factor.html")),
    ("account.html", include_str!("../../templates/account.html")),
    ("projects.html", include_str!("../../templates/projects.html")),
    ("manage_project.html", include_str!("../../templates/manage_project.html")),
];

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, source) in TEMPLATES {
            // The templates are part of the binary: a syntax error is caught by the tests.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a built-in template does not parse");
            }
        }
        env
    })
}

/// Renders template `name` with `ctx`.
pub fn render(name: &str, ctx: Value) -> Result<String, minijinja::Error> {
    environment().get_template(name)?.render(ctx)
}

/// Any serializable value as a template value.
pub fn ser<T: Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// What every page's layout shows.
#[derive(Serialize)]
pub struct Site {
    pub name: &'static str,
    pub version: &'static str,
    /// The base of absolute URLs (commands the pages show).
    pub base: String,
    /// Changes with the stylesheet, so browsers may cache it for good.
    pub asset_version: &'static str,
    pub notices: Vec<String>,
    pub security_txt: bool,
}

pub fn site(state: &AppState) -> Site {
    Site {
        name: "Palisade",
        version: env!("CARGO_PKG_VERSION"),
        base: state.base_url(),
        asset_version: super::assets::version(),
        notices: state.config.web.notices.clone(),
        security_txt: state.config.security_txt.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes() {
        let env = environment();
        for (name, _) in TEMPLATES {
            env.get_template(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let site = minijinja::context! { name => "Palisade", notices => ser(vec!["<b>n</b>"]) };
        let page = render("error.html", minijinja::context! { site, heading => "<script>x</script>", message => "a & b" }).unwrap();
        assert!(page.contains("&lt;script&gt;x&lt;") && !page.contains("<script>x"), "{page}");
        assert!(page.contains("&lt;b&gt;n&lt;") && page.contains("a &amp; b"), "{page}");
    }
}
