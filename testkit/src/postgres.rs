//! Stands in for a deployment's own PostgreSQL database: a fresh, empty
//! database (PostgreSQL's wire protocol, through the store's own driver) on
//! the throwaway server that ops/test.sh starts and names in
//! `SWITCHBOARD_TEST_POSTGRES_URL`. Each call creates a new database, so
//! tests running at once never share tables; the server, and every
//! database on it, is removed when the test run ends.

/// A fresh, empty PostgreSQL database on the test server.
pub async fn fresh_postgres() -> String {
    let admin = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL").expect(
        "SWITCHBOARD_TEST_POSTGRES_URL is not set: run the tests with ops/test.sh, which starts a throwaway PostgreSQL",
    );
    let name = format!("sb_{}", uuid::Uuid::now_v7().simple());
    let store = gateway::store::Store::connect(&admin)
        .await
        .expect("connect to the test PostgreSQL");
    store
        .execute_admin(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    store.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}
