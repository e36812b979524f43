//! ECR's API quotas as the registry API meets them: each request of a push or a pull is an
//! ECR API action with a rate per account and region (a manifest PUT is a PutImage call, 10
//! a second by default), and every copy of a run shares them. Pure.
//!
//! The rates are AWS's published defaults (the ECR service quotas page); an account with
//! raised quotas is paced as if it had the defaults. Workers that split one list (`ecrcp sync
//! --shard K/N`) each take their share, so that together they stay inside the quota.

use reqwest::Method;

use crate::registry::hosts::{Paced, Rate};

/// Whether a registry request, by its method and path, is one ECR action.
type Matches = fn(&Method, &str) -> bool;

/// The registry API's requests, by the ECR action each is, and that action's default rate
/// a second per account and region.
const ACTIONS: &[(&str, u32, Matches)] = &[
    ("PutImage", 10, |method, path| {
        method == Method::PUT && path.contains("/manifests/")
    }),
    ("InitiateLayerUpload", 100, |method, path| {
        method == Method::POST && path.ends_with("/blobs/uploads/")
    }),
    ("UploadLayerPart", 500, |method, path| {
        method == Method::PATCH && path.contains("/blobs/uploads/")
    }),
    ("CompleteLayerUpload", 100, |method, path| {
        method == Method::PUT && path.contains("/blobs/uploads/")
    }),
    ("BatchCheckLayerAvailability", 1000, |method, path| {
        method == Method::HEAD && path.contains("/blobs/")
    }),
    ("GetDownloadUrlForLayer", 3000, |method, path| {
        method == Method::GET && path.contains("/blobs/") && !path.contains("/blobs/uploads/")
    }),
    ("BatchGetImage", 2000, |method, path| {
        (method == Method::GET || method == Method::HEAD) && path.contains("/manifests/")
    }),
];

/// Each action's pace for one of `workers` sharing the account's quotas: an even share of
/// the rate (one a second at the least), evenly spaced (no burst): AWS enforces a quota as a
/// token bucket whose burst then absorbs the jitter of ecrcp's timers.
pub fn actions(workers: u32) -> Vec<Paced> {
    let workers = workers.max(1);
    ACTIONS
        .iter()
        .map(|&(action, per_second, matches)| {
            let share = (per_second / workers).max(1);
            Paced {
                action,
                rate: Rate {
                    per_second: share,
                    burst: 1,
                },
                matches,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action_of(method: &Method, path: &str) -> Option<&'static str> {
        actions(1)
            .into_iter()
            .find(|paced| (paced.matches)(method, path))
            .map(|paced| paced.action)
    }

    #[test]
    fn each_registry_request_is_the_ecr_action_it_counts_against() {
        let cases = [
            (Method::PUT, "/v2/team/app/manifests/1", Some("PutImage")),
            (Method::PUT, "/v2/team/app/manifests/sha256:ab", Some("PutImage")),
            (
                Method::POST,
                "/v2/team/app/blobs/uploads/",
                Some("InitiateLayerUpload"),
            ),
            (
                Method::PATCH,
                "/v2/team/app/blobs/uploads/u1",
                Some("UploadLayerPart"),
            ),
            (
                Method::PUT,
                "/v2/team/app/blobs/uploads/u1",
                Some("CompleteLayerUpload"),
            ),
            (
                Method::HEAD,
                "/v2/team/app/blobs/sha256:ab",
                Some("BatchCheckLayerAvailability"),
            ),
            (
                Method::GET,
                "/v2/team/app/blobs/sha256:ab",
                Some("GetDownloadUrlForLayer"),
            ),
            (Method::GET, "/v2/team/app/manifests/1", Some("BatchGetImage")),
            (Method::HEAD, "/v2/team/app/manifests/1", Some("BatchGetImage")),
            (Method::GET, "/v2/", None),
            (Method::GET, "/v2/team/app/tags/list", None),
            (Method::DELETE, "/v2/team/app/blobs/uploads/u1", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(action_of(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn workers_that_share_an_account_split_its_rates() {
        let rate = |workers, action| {
            actions(workers)
                .into_iter()
                .find(|paced| paced.action == action)
                .unwrap()
                .rate
        };
        assert_eq!(
            rate(1, "PutImage"),
            Rate {
                per_second: 10,
                burst: 1
            }
        );
        assert_eq!(
            rate(3, "PutImage"),
            Rate {
                per_second: 3,
                burst: 1
            }
        );
        assert_eq!(
            rate(20, "PutImage"),
            Rate {
                per_second: 1,
                burst: 1
            }
        );
        assert_eq!(rate(4, "InitiateLayerUpload").per_second, 25);
        assert_eq!(rate(0, "CompleteLayerUpload").per_second, 100);
    }
}
