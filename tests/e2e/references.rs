//! Destinations, ECR repository names and docker's reference rules, end to end.
