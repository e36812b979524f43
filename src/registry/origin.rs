//! Whose a URL is: the registry's own origin (its scheme, host and port), where its
//! credentials may go, or another one, where they never do (an upload session handed out on
//! a storage host, a redirect to a CDN). Docker keys what it knows of a registry's login the
//! same way. Pure.

use reqwest::Url;

use super::base_url;

/// The origin ecrcp speaks to the registry `api_host` at (`https://HOST[:PORT]`, plain HTTP
/// for loopback registries).
pub fn registry_origin(api_host: &str) -> Option<Url> {
    Url::parse(&base_url(api_host)).ok()
}

/// Whether `url` is on the origin of `registry`: the same scheme, host and port.
pub fn same_origin(registry: &Url, url: &Url) -> bool {
    registry.scheme() == url.scheme()
        && registry.host_str() == url.host_str()
        && registry.port_or_known_default() == url.port_or_known_default()
}

/// Where an upload session the registry `registry` handed out (`location`, resolved) is
/// finished: there, but never over plain HTTP from an HTTPS registry. On the registry's own
/// host an `http://` location is what a registry behind a TLS-terminating proxy writes, so it
/// goes to the registry's own HTTPS origin; on another host it is refused (`Err`).
pub fn upload_target(registry: &Url, location: Url) -> Result<Url, Url> {
    let downgrade = registry.scheme() == "https" && location.scheme() == "http";
    if !downgrade {
        return Ok(location);
    }
    let own_host = registry.host_str() == location.host_str()
        && (location.port().is_none() || location.port() == registry.port_or_known_default());
    if !own_host {
        return Err(location);
    }
    let mut upgraded = location.clone();
    let upgrade = upgraded
        .set_scheme("https")
        .and_then(|()| upgraded.set_port(registry.port()));
    match upgrade {
        Ok(()) => Ok(upgraded),
        Err(()) => Err(location),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_registry_s_own_scheme_host_and_port_are_its_origin() {
        let registry = registry_origin("r.example").unwrap();
        let cases = [
            ("https://r.example/v2/a/blobs/uploads/1?_state=x", true),
            ("https://r.example:443/v2/", true),
            ("https://R.EXAMPLE/v2/", true),
            ("http://r.example/v2/", false),
            ("https://r.example:8443/v2/", false),
            ("https://storage.example/v2/", false),
            ("https://r.example.evil/v2/", false),
        ];
        for (url, own) in cases {
            assert_eq!(same_origin(&registry, &Url::parse(url).unwrap()), own, "{url}");
        }
        let local = registry_origin("localhost:5000").unwrap();
        assert!(same_origin(
            &local,
            &Url::parse("http://localhost:5000/v2/").unwrap()
        ));
        assert!(!same_origin(
            &local,
            &Url::parse("http://localhost:5001/v2/").unwrap()
        ));
    }

    #[test]
    fn an_upload_location_never_goes_from_https_to_plain_http() {
        type Case<'a> = (&'a str, &'a str, Result<&'a str, ()>);
        let cases: [Case; 8] = [
            (
                "r.example",
                "https://r.example/u/1?_state=s",
                Ok("https://r.example/u/1?_state=s"),
            ),
            (
                "r.example",
                "https://storage.example/u/1",
                Ok("https://storage.example/u/1"),
            ),
            // Behind TLS offload the registry believes it is on plain HTTP.
            (
                "r.example",
                "http://r.example/u/1?_state=s",
                Ok("https://r.example/u/1?_state=s"),
            ),
            (
                "r.example",
                "http://r.example:443/u/1",
                Ok("https://r.example/u/1"),
            ),
            (
                "r.example:8443",
                "http://r.example/u/1",
                Ok("https://r.example:8443/u/1"),
            ),
            ("r.example", "http://r.example:8080/u/1", Err(())),
            ("r.example", "http://storage.example/u/1", Err(())),
            // A registry spoken to over plain HTTP has nothing to lose.
            (
                "localhost:5000",
                "http://storage.example/u/1",
                Ok("http://storage.example/u/1"),
            ),
        ];
        for (registry, location, expected) in cases {
            let registry = registry_origin(registry).unwrap();
            let target = upload_target(&registry, Url::parse(location).unwrap());
            assert_eq!(
                target.as_ref().map(Url::as_str).map_err(|_| ()),
                expected,
                "{location}"
            );
        }
    }
}
