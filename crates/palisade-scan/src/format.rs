//! Report formats for people and tools: a readable text report, JSON (one object per file), and
//! SARIF 2.1.0 for code-scanning dashboards.

use serde_json::{Value, json};

use crate::{Report, Severity, Verdict};

pub fn text(path: &str, r: &Report) -> String {
    let mut out = format!("{path}: {} (score {:.1}", r.verdict.as_str().to_uppercase(), r.score);
    if let (Some(p), Some(v)) = (&r.project, &r.version) {
        out.push_str(&format!(", {p} {v}"));
    }
    out.push_str(")\n");
    for f in &r.findings {
        let loc = match (f.path.as_str(), f.line) {
            ("", _) => "(archive)".to_string(),
            (p, Some(l)) => format!("{p}:{l}"),
            (p, None) => p.to_string(),
        };
        out.push_str(&format!("  [{}] {}  {loc}\n      {}\n", f.severity.as_str(), f.rule, f.message));
        if !f.excerpt.is_empty() {
            out.push_str(&format!("      > {}\n", f.excerpt));
        }
    }
    out
}

pub fn json(path: &str, r: &Report) -> Value {
    json!({
        "path": path,
        "verdict": r.verdict,
        "score": r.score,
        "complete": r.complete,
        "project": r.project,
        "version": r.version,
        "duration_ms": (r.duration_ms * 1000.0).round() / 1000.0,
        "findings": r.findings.iter().map(|f| json!({
            "rule": f.rule,
            "severity": f.severity,
            "path": f.path,
            "line": f.line,
            "excerpt": f.excerpt,
            "message": f.message,
            "context": f.context,
            "weight": f.weight,
            "decisive": f.decisive,
        })).collect::<Vec<_>>(),
        "capabilities": r.capabilities,
    })
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        _ => "note",
    }
}

pub fn sarif(reports: &[(String, Report)]) -> Value {
    let mut rules: std::collections::BTreeMap<String, String> = Default::default();
    let mut results = Vec::new();
    for (path, r) in reports {
        for f in &r.findings {
            rules.entry(f.rule.clone()).or_insert_with(|| f.message.clone());
            let uri = if f.path.is_empty() { path.clone() } else { format!("{path}!/{}", f.path) };
            let mut loc = json!({ "physicalLocation": { "artifactLocation": { "uri": uri } } });
            if let Some(l) = f.line {
                loc["physicalLocation"]["region"] = json!({ "startLine": l, "snippet": { "text": f.excerpt } });
            }
            results.push(json!({
                "ruleId": f.rule,
                "level": level(f.severity),
                "message": { "text": f.message },
                "locations": [loc],
                "properties": { "severity": f.severity, "verdict": r.verdict, "score": r.score, "decisive": f.decisive },
            }));
        }
        if r.verdict != Verdict::Clean && r.findings.is_empty() {
            results.push(json!({ "ruleId": "scan-verdict", "level": "error", "message": { "text": format!("{} verdict", r.verdict.as_str()) }, "locations": [{ "physicalLocation": { "artifactLocation": { "uri": path } } }] }));
        }
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "palisade-scan",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.into_iter().map(|(id, d)| json!({ "id": id, "shortDescription": { "text": d } })).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}
