//! "Report malware" in the browser: `/project/<name>/report/`, for signed-in users. The form
//! files the same report as PyPI's observations API (`POST /danger-api/projects/<name>/
//! observations`), through the same core operation: reports from trusted reporters hold the
//! project's files at once, others wait in the administrators' review queue.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use palisade_core::sharing::reports::{Quarantined, Report};

use super::account::{FormData, field, render, to_login};
use super::session::Visitor;
use super::templates::{self, ser};
use super::{error_page, from_api_error};
use crate::AppState;

async fn form_page(state: &AppState, visitor: &Visitor, name: &str, status: StatusCode, error: Option<&str>) -> Response {
    let normalized = palisade_dist::normalize(name);
    let here = format!("/project/{normalized}/report/");
    let Some((_, user)) = visitor.user(state).await else { return to_login(&here) };
    match state.db.project(&normalized).await {
        Ok(Some(_)) => {}
        Ok(None) => return error_page(state, StatusCode::NOT_FOUND, &format!("There is no project named {normalized:?}.")),
        Err(e) => return from_api_error(state, crate::http::error::internal(e)),
    }
    let ctx = minijinja::context! {
        site => ser(templates::site(state)),
        user => user.name,
        csrf => visitor.csrf_token(),
        project => normalized,
        error,
    };
    render(state, status, "report.html", ctx)
}

pub async fn report_page(State(state): State<AppState>, visitor: Visitor, Path(name): Path<String>) -> Response {
    form_page(&state, &visitor, &name, StatusCode::OK, None).await
}

pub async fn report(State(state): State<AppState>, visitor: Visitor, Path(name): Path<String>, Form(form): Form<FormData>) -> Response {
    let Some((p, user)) = visitor.user(&state).await else {
        return to_login(&format!("/project/{}/report/", palisade_dist::normalize(&name)));
    };
    if let Err(e) = visitor.check_form(form.get("csrf").map(String::as_str)) {
        return form_page(&state, &visitor, &name, e.status, Some(&e.message)).await;
    }
    let optional = |k: &str| Some(field(&form, k).trim().to_string()).filter(|v| !v.is_empty());
    let report = Report {
        kind: field(&form, "kind").to_string(),
        summary: field(&form, "summary").trim().to_string(),
        inspector_url: optional("inspector_url"),
        version: optional("version"),
    };
    match state.report_project(&p, &visitor.client, &name, report).await {
        Ok(outcome) => {
            let held = match outcome {
                Quarantined::No => "The administrators will review it.".to_string(),
                Quarantined::Project => "As you are a trusted reporter, the project is held until an administrator decides.".to_string(),
                Quarantined::Release(files) => {
                    format!("As you are a trusted reporter, {} file(s) are held until an administrator decides.", files.len())
                }
            };
            let ctx = minijinja::context! {
                site => ser(templates::site(&state)),
                user => user.name,
                csrf => visitor.csrf_token(),
                heading => "Thank you",
                message => format!("Your report on {} is filed. {held}", palisade_dist::normalize(&name)),
                link => minijinja::context! { href => format!("/project/{}/", palisade_dist::normalize(&name)), text => "Back to the project" },
            };
            render(&state, StatusCode::ACCEPTED, "message.html", ctx)
        }
        Err(e) => {
            let e = crate::http::error::ApiError::from(e);
            form_page(&state, &visitor, &name, e.status, Some(&e.message)).await
        }
    }
}
