//! A release's description as the project page shows it. Markdown (`text/markdown`) is rendered
//! with pulldown-cmark and the result always goes through ammonia's sanitizer: raw HTML in a
//! description is allowed only as far as ammonia's allow-list (no script, no event handlers, no
//! `javascript:` links, no styles or forms). reStructuredText (PyPI's default when no content
//! type is given) has no safe renderer here, so it is shown like plain text: escaped, as it is.

use pulldown_cmark::{Options, Parser, html};

/// How a description is shown.
pub enum Rendered {
    /// Sanitized HTML, safe to insert as markup.
    Html(String),
    /// Text to show preformatted (escaped by the template).
    Text(String),
}

/// `content_type` is the `Description-Content-Type` field (PEP 566), possibly with parameters.
pub fn render(description: &str, content_type: Option<&str>) -> Rendered {
    let media = content_type.and_then(|c| c.split(';').next()).map(|m| m.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("text/markdown") => Rendered::Html(markdown(description)),
        _ => Rendered::Text(description.to_string()),
    }
}

fn markdown(source: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS | Options::ENABLE_FOOTNOTES;
    let mut unsafe_html = String::with_capacity(source.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(source, options));
    let clean = ammonia::Builder::default()
        .link_rel(Some("nofollow noopener noreferrer"))
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        // A relative address would point into this site, where it means nothing; an in-page
        // anchor (a table of contents, a footnote) stays.
        .url_relative(ammonia::UrlRelative::Custom(Box::new(in_page_only)))
        .clean(&unsafe_html)
        .to_string();
    with_image_alts(&clean)
}

/// Keeps a relative URL only when it is an anchor on the page itself.
fn in_page_only(url: &str) -> Option<std::borrow::Cow<'_, str>> {
    url.starts_with('#').then_some(std::borrow::Cow::Borrowed(url))
}

/// Gives every image without alternative text an empty one (decorative, to screen readers).
/// `html` is ammonia's output, serialized by html5ever: every attribute value is in double
/// quotes, with `"` itself escaped, so attributes can be read one by one.
fn with_image_alts(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 16);
    let mut rest = html;
    while let Some(at) = rest.find("<img") {
        let (before, tag) = rest.split_at(at + 4);
        out.push_str(before);
        let mut i = 0;
        let bytes = tag.as_bytes();
        let mut has_alt = false;
        loop {
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            if i >= bytes.len() || bytes[i] == b'>' || bytes[i] == b'/' {
                break;
            }
            let name_start = i;
            while i < bytes.len() && !matches!(bytes[i], b'=' | b' ' | b'>') {
                i += 1;
            }
            has_alt |= &tag[name_start..i] == "alt";
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
                if i < bytes.len() && bytes[i] == b'"' {
                    i += 1 + tag[i + 1..].find('"').map_or(tag.len() - i - 1, |end| end + 1);
                }
            }
        }
        if !has_alt {
            out.push_str(" alt=\"\"");
        }
        out.push_str(&tag[..i.min(tag.len())]);
        rest = &tag[i.min(tag.len())..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html_of(s: &str) -> String {
        match render(s, Some("text/markdown; charset=UTF-8; variant=GFM")) {
            Rendered::Html(h) => h,
            Rendered::Text(_) => panic!("markdown expected"),
        }
    }

    #[test]
    fn markdown_is_rendered_and_sanitized() {
        let h = html_of(
            "# Title\n\n*x* [ok](https://example.org) [bad](javascript:alert(1))\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n<a href=\"#\" onclick=\"alert(1)\">c</a>",
        );
        assert!(h.contains("<h1>Title</h1>") && h.contains("<em>x</em>"), "{h}");
        assert!(h.contains("href=\"https://example.org\"") && h.contains("rel=\"nofollow noopener noreferrer\""), "{h}");
        for bad in ["<script", "javascript:", "onerror", "onclick"] {
            assert!(!h.to_ascii_lowercase().contains(bad), "{bad} survived: {h}");
        }
    }

    #[test]
    fn images_always_have_alternative_text() {
        let h = html_of(
            "![badge](https://example.org/b.svg)\n\n<img src=\"https://example.org/logo.png\" width=\"10\">\n\n<img src=x>\n\n<img title=\"a > b\" src=\"https://example.org/x.png\">",
        );
        assert!(h.contains("alt=\"badge\""), "{h}");
        assert_eq!(h.matches("<img").count(), 4, "{h}");
        assert_eq!(h.matches(" alt=").count(), 4, "{h}");
        assert!(!h.contains("src=\"x\""), "a relative address is dropped: {h}");
        assert_eq!(with_image_alts("<p><img alt=\"a\" src=\"s\"></p>"), "<p><img alt=\"a\" src=\"s\"></p>");
        assert_eq!(with_image_alts("<img src=\"s\">x<img>"), "<img alt=\"\" src=\"s\">x<img alt=\"\">");
        // Markup inside an attribute value stays inside it: the serializer escapes it.
        let h =
            html_of("<a title=\"<img x>\" href=\"https://example.org\">t</a> <img title='a\"><script>' src=\"https://example.org/i.png\">");
        assert!(!h.contains("<script") && !h.contains("<img x"), "{h}");
        assert_eq!(h.matches("<img").count(), 1, "{h}");
        // Anchors on the page survive; other relative links do not.
        let h = html_of("[Install](#install) [rel](docs/x.md)\n\n## Install");
        assert!(h.contains("href=\"#install\"") && !h.contains("docs/x.md"), "{h}");
    }

    #[test]
    fn other_types_are_text() {
        for ct in [None, Some("text/x-rst"), Some("text/plain"), Some("text/html")] {
            assert!(matches!(render("<script>", ct), Rendered::Text(t) if t == "<script>"), "{ct:?}");
        }
    }
}
