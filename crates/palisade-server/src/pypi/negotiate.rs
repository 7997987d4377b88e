//! Content negotiation for the simple API (PEP 691): `Accept` with q-values, PyPI's `format`
//! query parameter, and `406` when nothing we serve is acceptable.

pub const JSON_V1: &str = "application/vnd.pypi.simple.v1+json";
pub const JSON_LATEST: &str = "application/vnd.pypi.simple.latest+json";
pub const HTML_V1: &str = "application/vnd.pypi.simple.v1+html";
pub const HTML_LATEST: &str = "application/vnd.pypi.simple.latest+html";
pub const TEXT_HTML: &str = "text/html";

/// What to send, with the Content-Type to send it under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    /// HTML under the given media type (`text/html` or the versioned one).
    Html(&'static str),
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON_V1,
            Format::Html(TEXT_HTML) => "text/html; charset=utf-8",
            Format::Html(t) => t,
        }
    }
}

/// Our offers, richest first: the order breaks ties between equal q-values, so `text/html`
/// comes last, as the spec recommends, except that a bare `*/*` gets HTML for old clients.
const OFFERS: &[(&str, Format)] = &[
    (JSON_V1, Format::Json),
    (JSON_LATEST, Format::Json),
    (HTML_V1, Format::Html(HTML_V1)),
    (HTML_LATEST, Format::Html(HTML_V1)),
    (TEXT_HTML, Format::Html(TEXT_HTML)),
];

/// Chooses a format from the `format` query parameter (which wins) or the `Accept` header.
/// `None` means 406.
pub fn choose(accept: Option<&str>, format_param: Option<&str>) -> Option<Format> {
    if let Some(f) = format_param {
        let f = f.trim().to_ascii_lowercase();
        return OFFERS.iter().find(|(t, _)| *t == f).map(|(_, fmt)| *fmt);
    }
    let accept = accept.map(str::trim).filter(|a| !a.is_empty()).unwrap_or("*/*");
    let ranges: Vec<(String, f32)> = accept.split(',').filter_map(parse_range).collect();
    let mut best: Option<(f32, u8, usize, Format)> = None;
    for (rank, (offer, fmt)) in OFFERS.iter().enumerate() {
        // The most specific range that matches this offer decides its quality.
        let mut matched: Option<(u8, f32)> = None;
        for (range, q) in &ranges {
            let specificity = if range == offer {
                3
            } else if range.ends_with("/*") && offer.starts_with(&range[..range.len() - 1]) {
                2
            } else if range == "*/*" {
                1
            } else {
                continue;
            };
            if matched.is_none_or(|(s, _)| specificity > s) {
                matched = Some((specificity, *q));
            }
        }
        let Some((specificity, q)) = matched else { continue };
        if q <= 0.0 {
            continue;
        }
        // Wildcard-only matches prefer HTML: that is what a client that names nothing expects.
        let rank = if specificity == 1 { OFFERS.len() - rank } else { rank };
        let better = match best {
            None => true,
            Some((bq, bs, br, _)) => q > bq || (q == bq && (specificity > bs || (specificity == bs && rank < br))),
        };
        if better {
            best = Some((q, specificity, rank, *fmt));
        }
    }
    best.map(|(_, _, _, f)| f)
}

fn parse_range(part: &str) -> Option<(String, f32)> {
    let mut pieces = part.split(';');
    let media = pieces.next()?.trim().to_ascii_lowercase();
    if media.is_empty() {
        return None;
    }
    let mut q = 1.0f32;
    for p in pieces {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("q")
        {
            q = v.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.0);
        }
    }
    Some((media, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(accept: Option<&str>, expected: Option<Format>) {
        assert_eq!(choose(accept, None), expected, "Accept: {accept:?}");
    }

    #[test]
    fn negotiation() {
        check(None, Some(Format::Html(TEXT_HTML)));
        check(Some("*/*"), Some(Format::Html(TEXT_HTML)));
        check(Some("text/html"), Some(Format::Html(TEXT_HTML)));
        check(Some(JSON_V1), Some(Format::Json));
        check(Some(JSON_LATEST), Some(Format::Json));
        check(Some(HTML_V1), Some(Format::Html(HTML_V1)));
        // pip's header
        check(
            Some("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"),
            Some(Format::Json),
        );
        // uv's header
        check(Some("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"), Some(Format::Json));
        check(Some("text/html, application/vnd.pypi.simple.v1+json;q=0.5"), Some(Format::Html(TEXT_HTML)));
        check(Some("application/*"), Some(Format::Json));
        check(Some("application/json"), None);
        check(Some("application/vnd.pypi.simple.v2+json"), None);
        check(Some("text/html;q=0, */*;q=0"), None);
        check(Some("text/*"), Some(Format::Html(TEXT_HTML)));
        // Only text/html is refused: a wildcard still prefers HTML, in its versioned form.
        check(Some("*/*;q=0.1, text/html;q=0"), Some(Format::Html(HTML_V1)));
    }

    #[test]
    fn format_parameter_wins() {
        assert_eq!(choose(Some("text/html"), Some(JSON_V1)), Some(Format::Json));
        assert_eq!(choose(Some(JSON_V1), Some("text/html")), Some(Format::Html(TEXT_HTML)));
        assert_eq!(choose(None, Some("application/json")), None);
    }
}
