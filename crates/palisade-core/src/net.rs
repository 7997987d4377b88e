//! What Palisade's outgoing HTTP clients (OSV feeds, the mirror's upstreams) share.

/// Redirects that stay on the origin first asked (a mirror's path layout), at most five; a
/// redirect to another origin is not followed, so a feed or an upstream cannot send Palisade
/// to a host its configuration does not name.
pub(crate) fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
        if attempt.previous().len() > 5 || !same { attempt.stop() } else { attempt.follow() }
    })
}
