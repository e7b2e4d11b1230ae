//! End-to-end tests of the adapter against a stand-in Slack Web API.
