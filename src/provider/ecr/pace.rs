//! ECR's API quotas as the registry API meets them: each request of a push or a pull is an
//! ECR API action with a rate per account and region (a manifest PUT is a PutImage call, 10
//! a second by default), and every copy of a run shares them. Pure.
//!
//! The rates are AWS's published defaults (the ECR service quotas page); an account with
//! raised quotas is paced as if it had the defaults. Workers that split one list (`ecrcp sync
//! --shard K/N`) each take their share, so that together they stay inside the quota.

use reqwest::Method;

use crate::provider::Pacing;
use crate::registry::hosts::{Paced, Rate};

/// Checks the quotas a config raises (`[sync] api_quotas`): each names an action ECR paces,
/// at 1 to 100,000 requests a second.
pub fn check_quotas(
    quotas: &std::collections::BTreeMap<String, i64>,
) -> Result<std::collections::BTreeMap<String, u32>, String> {
    let known: Vec<&str> = ACTIONS.iter().map(|(action, _, _)| *action).collect();
    quotas
        .iter()
        .map(|(action, rate)| {
            if !known.contains(&action.as_str()) {
                return Err(format!(
                    "api_quotas names '{action}', which is not an action ecrcp paces: {}",
                    known.join(", ")
                ));
            }
            u32::try_from(*rate)
                .ok()
                .filter(|rate| (1..=100_000).contains(rate))
                .map(|rate| (action.clone(), rate))
                .ok_or_else(|| {
                    format!("api_quotas: {action} = {rate} is out of range: 1 to 100000 requests a second")
                })
        })
        .collect()
}

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

/// Each action's pace for one of `pacing.workers` sharing the account's quotas (the default,
/// or the quota the user raised): an even share of the rate (one a second at the least),
/// evenly spaced (no burst): AWS enforces a quota as a token bucket whose burst then absorbs
/// the jitter of ecrcp's timers.
pub fn actions(pacing: &Pacing) -> Vec<Paced> {
    let workers = pacing.workers.max(1);
    ACTIONS
        .iter()
        .map(|&(action, default, matches)| {
            let per_second = pacing.quotas.get(action).copied().unwrap_or(default);
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
        actions(&Pacing::default())
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
    fn a_raised_quota_replaces_the_default_and_is_split_among_workers_too() {
        let raised = check_quotas(&[("PutImage".to_owned(), 40)].into_iter().collect()).unwrap();
        let rate = |workers| {
            actions(&Pacing {
                workers,
                quotas: raised.clone(),
            })
            .into_iter()
            .find(|paced| paced.action == "PutImage")
            .unwrap()
            .rate
            .per_second
        };
        assert_eq!((rate(1), rate(4)), (40, 10));
        for (action, rate, refused) in [
            (
                "PutImages",
                10,
                "not an action ecrcp paces: PutImage, InitiateLayerUpload",
            ),
            ("PutImage", 0, "PutImage = 0 is out of range"),
            ("PutImage", 100_001, "out of range: 1 to 100000"),
        ] {
            let error = check_quotas(&[(action.to_owned(), rate)].into_iter().collect()).unwrap_err();
            assert!(error.contains(refused), "{error}");
        }
    }

    #[test]
    fn workers_that_share_an_account_split_its_rates() {
        let rate = |workers, action| {
            actions(&Pacing {
                workers,
                ..Pacing::default()
            })
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
