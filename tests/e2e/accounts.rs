//! Cross-account and ECR-source copies, credential helpers and logins, end to end.
