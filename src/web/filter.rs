//! The filters of a task list (`GET /api/tasks?status=&repo=&q=&limit=`): parsed strictly,
//! so a typo is a 400 naming it rather than a silently unfiltered list.

use actors::pipeline::phase::Status;
use actors::pipeline::repo::TaskSummary;

use super::error::ApiError;

/// Which tasks a list shows.
#[derive(Debug, Default, PartialEq)]
pub struct TaskFilter {
    pub status: Vec<Status>,
    pub repo: Option<String>,
    pub text: Option<String>,
    pub limit: Option<usize>,
}

impl TaskFilter {
    /// Reads `status` (comma-separated), `repo`, `q` (in the title, any case) and `limit`;
    /// anything else is an error naming it.
    pub fn parse(query: &[(String, String)]) -> Result<Self, ApiError> {
        let mut filter = TaskFilter::default();
        for (key, value) in query {
            match key.as_str() {
                "status" => {
                    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let status = Status::ALL.into_iter().find(|s| s.name() == name);
                        filter.status.push(status.ok_or_else(|| {
                            let known: Vec<&str> = Status::ALL.iter().map(|s| s.name()).collect();
                            ApiError::bad_request(format!(
                                "unknown status {name:?}; one of {}",
                                known.join(", ")
                            ))
                        })?);
                    }
                }
                "repo" => filter.repo = Some(value.clone()),
                "q" => filter.text = Some(value.to_lowercase()),
                "limit" => {
                    let limit = value.parse().ok().filter(|n| (1..=10_000).contains(n));
                    filter.limit = Some(limit.ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "limit {value:?} is not a whole number from 1 to 10000"
                        ))
                    })?);
                }
                // The auth token may come as a query parameter.
                "token" => {}
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown filter {other:?}; filters are status, repo, q and limit"
                    )));
                }
            }
        }
        Ok(filter)
    }

    pub fn keeps(&self, task: &TaskSummary) -> bool {
        (self.status.is_empty() || self.status.contains(&task.status))
            && self.repo.as_ref().is_none_or(|r| *r == task.repo)
            && self
                .text
                .as_ref()
                .is_none_or(|q| task.title.to_lowercase().contains(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<TaskFilter, ApiError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TaskFilter::parse(&pairs)
    }

    #[test]
    fn filters_parse_and_unknown_ones_are_named() {
        let f = parse(&[
            ("status", "failed,blocked"),
            ("repo", "app"),
            ("limit", "5"),
        ])
        .unwrap();
        assert_eq!(f.status, vec![Status::Failed, Status::Blocked]);
        assert_eq!((f.repo.as_deref(), f.limit), (Some("app"), Some(5)));
        let e = parse(&[("colour", "red")]).unwrap_err();
        assert!(e.message.contains("\"colour\""), "{}", e.message);
        let e = parse(&[("status", "sleeping")]).unwrap_err();
        assert!(e.message.contains("\"sleeping\"") && e.message.contains("backlog"));
        assert!(parse(&[("limit", "0")]).is_err());
        assert!(parse(&[("token", "x")]).is_ok());
    }
}
