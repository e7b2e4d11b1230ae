//! The schema: each backend's migrations (`migrations/sqlite`,
//! `migrations/postgres`, the same schema in each dialect), applied in
//! order at start, and their tests, which write rows the way an earlier
//! schema did and read them back after migrating.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::{Backend, Store, StoreError};

/// The migrations of each backend: (version, description, SQL).
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "prompts",
        include_str!("../../../migrations/sqlite/0002_prompts.sql"),
    ),
    (
        3,
        "cache_limits",
        include_str!("../../../migrations/sqlite/0003_cache_limits.sql"),
    ),
    (
        4,
        "feedback_history",
        include_str!("../../../migrations/sqlite/0004_feedback_history.sql"),
    ),
    (
        5,
        "eval_runs",
        include_str!("../../../migrations/sqlite/0005_eval_runs.sql"),
    ),
    (
        6,
        "dashboard",
        include_str!("../../../migrations/sqlite/0006_dashboard.sql"),
    ),
    (
        7,
        "private_conversations",
        include_str!("../../../migrations/sqlite/0007_private_conversations.sql"),
    ),
    (
        8,
        "inline_messages",
        include_str!("../../../migrations/sqlite/0008_inline_messages.sql"),
    ),
    (
        9,
        "user_name",
        include_str!("../../../migrations/sqlite/0009_user_name.sql"),
    ),
    (
        10,
        "one_user_form",
        include_str!("../../../migrations/sqlite/0010_one_user_form.sql"),
    ),
    (
        11,
        "knowledge",
        include_str!("../../../migrations/sqlite/0011_knowledge.sql"),
    ),
    (
        12,
        "knowledge_changes",
        include_str!("../../../migrations/sqlite/0012_knowledge_changes.sql"),
    ),
    (
        13,
        "tool_calls",
        include_str!("../../../migrations/sqlite/0013_tool_calls.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "prompts",
        include_str!("../../../migrations/postgres/0002_prompts.sql"),
    ),
    (
        3,
        "cache_limits",
        include_str!("../../../migrations/postgres/0003_cache_limits.sql"),
    ),
    (
        4,
        "feedback_history",
        include_str!("../../../migrations/postgres/0004_feedback_history.sql"),
    ),
    (
        5,
        "eval_runs",
        include_str!("../../../migrations/postgres/0005_eval_runs.sql"),
    ),
    (
        6,
        "dashboard",
        include_str!("../../../migrations/postgres/0006_dashboard.sql"),
    ),
    (
        7,
        "private_conversations",
        include_str!("../../../migrations/postgres/0007_private_conversations.sql"),
    ),
    (
        8,
        "inline_messages",
        include_str!("../../../migrations/postgres/0008_inline_messages.sql"),
    ),
    (
        9,
        "user_name",
        include_str!("../../../migrations/postgres/0009_user_name.sql"),
    ),
    (
        10,
        "one_user_form",
        include_str!("../../../migrations/postgres/0010_one_user_form.sql"),
    ),
    (
        11,
        "knowledge",
        include_str!("../../../migrations/postgres/0011_knowledge.sql"),
    ),
    (
        12,
        "knowledge_changes",
        include_str!("../../../migrations/postgres/0012_knowledge_changes.sql"),
    ),
    (
        13,
        "tool_calls",
        include_str!("../../../migrations/postgres/0013_tool_calls.sql"),
    ),
];

impl Store {
    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_through(i64::MAX).await
    }

    /// Applies the migrations up to and including `version`.
    pub(super) async fn migrate_through(&self, version: i64) -> Result<(), StoreError> {
        let list = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = list
            .iter()
            .filter(|(v, _, _)| *v <= version)
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::Audience;
    use crate::store::{Store, Table};

    /// A fresh database on the test PostgreSQL server.
    async fn fresh_postgres() -> String {
        let admin = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL").expect(
            "SWITCHBOARD_TEST_POSTGRES_URL is not set: run the tests with ops/test.sh, which starts a throwaway PostgreSQL",
        );
        let name = format!("sb_{}", uuid::Uuid::now_v7().simple());
        let server = Store::connect(&admin).await.unwrap();
        server
            .execute_admin(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        server.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        format!("{base}/{name}")
    }

    /// Stores two conversations the way schema 7 did (a row per message,
    /// inserted out of order), migrates, and reads them back.
    async fn conversations_survive_inlining(url: &str) {
        let store = Store::connect(url).await.unwrap();
        store.migrate_through(7).await.unwrap();
        for id in ["a", "b"] {
            sqlx::query(
                "INSERT INTO inferences (id, created_at, platform, alias, total_ms, provider_ms, \
                 streamed, status, attempts, attempt_log, params) \
                 VALUES ($1, 1, 'slack', 'default', 1.0, 1.0, 0, 'ok', 1, '[]', '{}')",
            )
            .bind(id)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        for (id, position, direction, role, content) in [
            ("a", 2, "output", "assistant", "Paris, \"of course\"."),
            ("a", 0, "input", "system", "Be brief."),
            ("a", 1, "input", "user", "Capital of France?\nThanks"),
            ("b", 0, "input", "user", "Hi"),
        ] {
            sqlx::query(
                "INSERT INTO inference_messages (inference_id, position, direction, role, content) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(position)
            .bind(direction)
            .bind(role)
            .bind(content)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        store.migrate().await.unwrap();
        let a = store.inference("a").await.unwrap().unwrap();
        let triple = |d: &str, r: &str, c: &str| (d.to_string(), r.to_string(), c.to_string());
        assert_eq!(
            a.messages,
            vec![
                triple("input", "system", "Be brief."),
                triple("input", "user", "Capital of France?\nThanks"),
                triple("output", "assistant", "Paris, \"of course\"."),
            ]
        );
        let b = store.inference("b").await.unwrap().unwrap();
        assert_eq!(b.messages, vec![triple("input", "user", "Hi")]);
        store.close().await;
    }

    #[tokio::test]
    async fn migration_8_keeps_every_stored_conversation_in_order() {
        let dir = tempfile::tempdir().unwrap();
        conversations_survive_inlining(&format!("sqlite://{}/db.sqlite", dir.path().display()))
            .await;
        conversations_survive_inlining(&fresh_postgres().await).await;
    }

    /// Stores answers and votes the way schema 9 did (bare user ids for the
    /// asker, the API, the console and implicit signals; `slack:` ids for
    /// Slack's buttons), migrates, and checks that the asker and their votes
    /// now name the same user: their own vote on their direct message is
    /// kept and replaces the old one, anyone else's is left out.
    async fn users_have_one_form_after_migrating(url: &str) {
        use crate::domain::{FeedbackRecord, User, now_ms};
        let store = Store::connect(url).await.unwrap();
        store.migrate_through(9).await.unwrap();
        let dm = uuid::Uuid::now_v7().to_string();
        let api = uuid::Uuid::now_v7().to_string();
        for (id, platform, user, private) in [(&dm, "slack", "UALICE", 1), (&api, "http", "bob", 0)]
        {
            sqlx::query(
                "INSERT INTO inferences (id, created_at, platform, user_id, private, alias, total_ms, \
                 provider_ms, streamed, status, attempts, attempt_log, params, messages) \
                 VALUES ($1, 1, $2, $3, $4, 'default', 1.0, 1.0, 0, 'ok', 1, '[]', '{}', '[]')",
            )
            .bind(id)
            .bind(platform)
            .bind(user)
            .bind(private)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        for (id, inference, user, source, score) in [
            ("f1", &dm, "slack:UALICE", "button", 0.0),
            ("f2", &dm, "UALICE", "implicit", 0.0),
            ("f3", &api, "bob", "api", 1.0),
        ] {
            let kind = if source == "implicit" {
                "asked_again"
            } else {
                "thumbs"
            };
            sqlx::query(
                "INSERT INTO feedback (id, inference_id, created_at, kind, score, user_id, source) \
                 VALUES ($1, $2, 1, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(inference)
            .bind(kind)
            .bind(score)
            .bind(user)
            .bind(source)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        store.migrate().await.unwrap();
        let alice = User::new("slack", "UALICE");
        assert_eq!(
            store.inference_audience(&dm).await.unwrap(),
            Some(Audience::Only(alice.clone()))
        );
        let users = |rows: Vec<(String, Option<f64>, String, Option<String>)>| {
            rows.into_iter().filter_map(|r| r.3).collect::<Vec<_>>()
        };
        assert_eq!(
            users(store.feedback_for(&dm).await.unwrap()),
            ["slack:UALICE", "slack:UALICE"]
        );
        assert_eq!(users(store.feedback_for(&api).await.unwrap()), ["http:bob"]);
        let vote = |user: User, score: f64| FeedbackRecord {
            id: uuid::Uuid::now_v7(),
            inference_id: uuid::Uuid::parse_str(&dm).unwrap(),
            created_at_ms: now_ms(),
            kind: "thumbs".into(),
            score: Some(score),
            comment: None,
            user: Some(user),
            source: "button".into(),
        };
        store
            .insert_feedback(&[
                vote(alice.clone(), 1.0),
                vote(User::new("slack", "UBOB"), 1.0),
            ])
            .await
            .unwrap();
        // Alice's new vote replaced her old one; Bob's was left out.
        assert_eq!(
            store.current_vote(&dm, &alice).await.unwrap(),
            Some(Some(1.0))
        );
        assert_eq!(store.count(Table::Feedback).await.unwrap(), 4);
        store.close().await;
    }

    #[tokio::test]
    async fn migration_10_gives_users_one_form_on_both_backends() {
        let dir = tempfile::tempdir().unwrap();
        users_have_one_form_after_migrating(&format!(
            "sqlite://{}/db.sqlite",
            dir.path().display()
        ))
        .await;
        users_have_one_form_after_migrating(&fresh_postgres().await).await;
    }
}
