//! The prompt registry on SQLite and PostgreSQL, through the admin command
//! layer and the HTTP API: versions, labels, rollback, splits, bindings,
//! validation on save, rights, audit, stale edits, concurrent promotes,
//! cross-replica invalidation, files round-trip, dry-run tests.
//!
//! PostgreSQL tests need `SWITCHBOARD_TEST_POSTGRES_URL`; the README's test
//! command starts a throwaway server.

use std::time::{Duration, Instant};

use gateway::Origin;
use gateway::config::AdminConfig;
use gateway::domain::Selector;
use gateway::promptops::admin::{Actor, Admin, AdminError, Command};
use gateway::registry::{Registry, RegistryError, Scope};
use gateway::store::Store;
use prompts::{Arm, Library, Prompt};
use serde_json::json;
use testkit::standin::StandIn;
use testkit::{Harness, fresh_postgres, one_provider};

/// One database of each kind: (label, url, folder kept alive for SQLite).
async fn databases() -> Vec<(&'static str, String, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}/registry.db", dir.path().display());
    vec![
        ("sqlite", sqlite, dir),
        (
            "postgres",
            fresh_postgres().await,
            tempfile::tempdir().expect("temp dir"),
        ),
    ]
}

async fn open(url: &str, poll: Duration) -> Registry {
    let store = Store::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    Registry::open(store, &Library::builtin().expect("library"), poll)
        .await
        .expect("registry opens")
}

fn admin_over(registry: &Registry) -> Admin {
    Admin::new(
        registry.clone(),
        None,
        AdminConfig {
            admins: vec!["slack:UADMIN".into(), "slack:UADMIN2".into()],
            editors: vec!["slack:UEDITOR".into()],
            editor_roles: vec!["discord:role:42".into()],
            ..AdminConfig::default()
        },
    )
}

fn user(id: &str) -> Actor {
    Actor {
        id: id.into(),
        name: id.into(),
        ..Actor::default()
    }
}

async fn create(admin: &Admin, actor: &Actor, prompt: Prompt) -> gateway::promptops::admin::Output {
    admin
        .run(
            actor,
            Command::Create {
                prompt,
                message: "created".into(),
            },
        )
        .await
        .expect("create")
}

async fn edit(admin: &Admin, actor: &Actor, prompt: Prompt, base: i64) {
    admin
        .run(
            actor,
            Command::Edit {
                prompt,
                base,
                message: format!("edit of v{base}"),
            },
        )
        .await
        .expect("edit");
}

async fn promote(admin: &Admin, actor: &Actor, name: &str, version: i64, label: &str) {
    admin
        .run(
            actor,
            Command::Promote {
                name: name.into(),
                version,
                label: label.into(),
            },
        )
        .await
        .expect("promote");
}

fn support_prompt(system: &str) -> Prompt {
    Prompt::from_toml(
        "support.toml",
        &format!(
            "name = \"support\"\nmodel = \"default\"\n[variables]\nproduct = \"The product being supported.\"\n\
             [[messages]]\nrole = \"system\"\ntemplate = '''{system}'''\n[[messages]]\nrole = \"history\"\n\
             [[messages]]\nrole = \"user\"\ntemplate = \"{{{{ text }}}}\"\n"
        ),
    )
    .expect("test prompt parses")
}

async fn version_of(registry: &Registry, name: &str, label: &str, user: Option<&str>) -> i64 {
    let origin = Origin {
        platform: "slack".into(),
        user: user.map(|u| gateway::User::new("slack", u)),
        ..Origin::default()
    };
    registry
        .resolve(name, &Selector::Label(label.into()), &origin)
        .await
        .expect("resolves")
        .version()
}

#[tokio::test]
async fn versions_labels_latest_and_rollback_on_both_backends() {
    for (db, url, _dir) in databases().await {
        let registry = open(&url, Duration::from_secs(30)).await;
        let admin = admin_over(&registry);
        let boss = user("slack:UADMIN");

        // Seeded from the library on first start.
        assert_eq!(
            version_of(&registry, "assistant", "production", None).await,
            1,
            "{db}"
        );

        let out = create(
            &admin,
            &boss,
            support_prompt("You support {{ product }}. Be brief."),
        )
        .await;
        assert!(out.summary.contains("created support v1"), "{db}: {out:?}");
        for (i, tone) in ["Be kind.", "Be precise."].iter().enumerate() {
            admin
                .run(
                    &boss,
                    Command::Edit {
                        prompt: support_prompt(&format!("You support {{{{ product }}}}. {tone}")),
                        base: i as i64 + 1,
                        message: format!("tone {i}"),
                    },
                )
                .await
                .expect("edit");
        }
        // `latest` follows the newest by itself; production is unset until promoted.
        assert_eq!(
            version_of(&registry, "support", "latest", None).await,
            3,
            "{db}"
        );
        let err = registry
            .resolve(
                "support",
                &Selector::Label("production".into()),
                &Origin::default(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::UnknownLabel { .. }),
            "{db}: {err}"
        );

        for v in [1, 2, 3] {
            promote(&admin, &boss, "support", v, "production").await;
        }
        assert_eq!(
            version_of(&registry, "support", "production", None).await,
            3,
            "{db}"
        );
        let out = admin
            .run(
                &boss,
                Command::Rollback {
                    name: "support".into(),
                    label: "production".into(),
                    to: None,
                },
            )
            .await
            .expect("rollback");
        assert!(
            out.summary.contains("rolled back to v2 (was v3)"),
            "{db}: {out:?}"
        );
        assert_eq!(
            version_of(&registry, "support", "production", None).await,
            2,
            "{db}"
        );
        // History is never rewritten: all three versions remain.
        assert_eq!(registry.versions("support").await.unwrap().len(), 3, "{db}");

        // Show and diff.
        let out = admin
            .run(
                &boss,
                Command::Show {
                    name: "support".into(),
                    version: None,
                },
            )
            .await
            .expect("show");
        let text = out.to_text();
        assert!(
            text.contains("support v2") && text.contains("Be kind."),
            "{db}: {text}"
        );
        let out = admin
            .run(
                &boss,
                Command::Diff {
                    name: "support".into(),
                    from: Selector::Version(2),
                    to: Selector::Version(3),
                },
            )
            .await
            .expect("diff");
        let text = out.to_text();
        assert!(
            text.contains(
                "-You support {{ product }}. Be kind.\n+You support {{ product }}. Be precise.\n"
            ),
            "{db}: {text}"
        );

        // The audit has who, what, before and after.
        let history = registry.history(Some("support"), 100).await.unwrap();
        let rollback = history
            .iter()
            .find(|a| a.action == "rollback")
            .expect("rollback audited");
        assert_eq!(rollback.actor, "slack:UADMIN");
        assert_eq!(rollback.target, "support@production");
        assert!(
            rollback
                .before
                .as_deref()
                .unwrap()
                .contains("\"version\":3"),
            "{db}"
        );
        assert!(
            rollback.after.as_deref().unwrap().contains("\"version\":2"),
            "{db}"
        );
        assert_eq!(
            history
                .iter()
                .filter(|a| a.action == "edit" && a.outcome == "ok")
                .count(),
            2,
            "{db}"
        );
        registry.close();
    }
}

#[tokio::test]
async fn invalid_versions_are_refused_with_what_to_fix_and_nothing_is_stored() {
    for (db, url, _dir) in databases().await {
        let registry = open(&url, Duration::from_secs(30)).await;
        let admin = admin_over(&registry);
        let boss = user("slack:UADMIN");
        let cases = [
            ("{{ product }\nline two", "line 1, column"),
            (
                "Hello\n{{ prodcut }}",
                "line 2: unknown variable `prodcut`; declared variables are: product",
            ),
            (
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                "fuel",
            ),
            (
                "{% for i in range(30000) %}{{ \"0123456789\" }}{% endfor %}",
                "more than 262144 bytes",
            ),
            (
                "{% include \"nowhere\" %}",
                "`nowhere`, which does not exist",
            ),
            ("{% include \"support\" %}", "loop: support → support"),
        ];
        for (template, expected) in cases {
            let err = admin
                .run(
                    &boss,
                    Command::Create {
                        prompt: support_prompt(template),
                        message: "bad".into(),
                    },
                )
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{db}: `{template}` gave: {err}");
            assert!(
                err.contains("was not saved") || err.contains("not saved"),
                "{db}: {err}"
            );
        }
        let err = registry.versions("support").await.unwrap_err();
        assert!(
            matches!(err, RegistryError::UnknownPrompt { .. }),
            "{db}: nothing stored"
        );
        assert!(
            registry
                .history(Some("support"), 100)
                .await
                .unwrap()
                .is_empty(),
            "{db}: no audit of a change that did not happen"
        );

        // Including another registry prompt by name works.
        create(
            &admin,
            &boss,
            support_prompt("{% include \"assistant\" %}\nAlso: {{ product }}"),
        )
        .await;
        registry.close();
    }
}

#[tokio::test]
async fn only_admins_move_protected_labels_bind_and_split_and_refusals_are_audited() {
    for (db, url, _dir) in databases().await {
        let registry = open(&url, Duration::from_secs(30)).await;
        let admin = admin_over(&registry);
        let boss = user("slack:UADMIN");
        create(&admin, &boss, support_prompt("v1 {{ product }}")).await;
        edit(&admin, &boss, support_prompt("v2 {{ product }}"), 1).await;
        promote(&admin, &boss, "support", 1, "production").await;

        let nobody = user("slack:UNOBODY");
        let editor = user("slack:UEDITOR");
        let role_editor = Actor {
            id: "discord:7".into(),
            roles: vec!["discord:role:42".into()],
            ..Actor::default()
        };
        let attempts = [
            (
                &nobody,
                Command::Promote {
                    name: "support".into(),
                    version: 2,
                    label: "production".into(),
                },
            ),
            (
                &nobody,
                Command::Rollback {
                    name: "support".into(),
                    label: "production".into(),
                    to: Some(2),
                },
            ),
            (
                &nobody,
                Command::Bind {
                    scope: Scope::Global,
                    target: Some(("support".into(), "production".into())),
                },
            ),
            (
                &nobody,
                Command::Split {
                    name: "support".into(),
                    label: "production".into(),
                    arms: vec![
                        Arm {
                            version: 1,
                            weight: 50,
                        },
                        Arm {
                            version: 2,
                            weight: 50,
                        },
                    ],
                },
            ),
            (
                &editor,
                Command::Promote {
                    name: "support".into(),
                    version: 2,
                    label: "production".into(),
                },
            ),
            (
                &editor,
                Command::Bind {
                    scope: Scope::Global,
                    target: Some(("support".into(), "production".into())),
                },
            ),
            (
                &role_editor,
                Command::Split {
                    name: "support".into(),
                    label: "staging".into(),
                    arms: vec![Arm {
                        version: 2,
                        weight: 1,
                    }],
                },
            ),
        ];
        let refused = attempts.len();
        for (actor, command) in attempts {
            let name = command.name();
            let err = admin.run(actor, command).await.unwrap_err();
            assert!(
                matches!(err, AdminError::Forbidden { .. }),
                "{db}: {name}: {err}"
            );
            assert!(err.to_string().contains("admin"), "{db}: {err}");
        }
        // Nothing changed.
        assert_eq!(
            version_of(&registry, "support", "production", Some("U1")).await,
            1,
            "{db}"
        );
        assert!(registry.bindings().is_empty(), "{db}");
        // Every refusal is in the audit log, with who and why.
        let history = registry.history(None, 100).await.unwrap();
        let refusals: Vec<_> = history.iter().filter(|a| a.outcome == "refused").collect();
        assert_eq!(refusals.len(), refused, "{db}: {history:?}");
        assert!(
            refusals
                .iter()
                .any(|a| a.actor == "slack:UNOBODY" && a.action == "bind")
        );

        // An editor may move an unprotected label; a role editor may save a
        // version; a platform admin may move production.
        promote(&admin, &editor, "support", 2, "staging").await;
        edit(&admin, &role_editor, support_prompt("v3 {{ product }}"), 2).await;
        let workspace_admin = Actor {
            id: "slack:UOWNER".into(),
            platform_admin: true,
            workspace: Some("slack/T1".into()),
            ..Actor::default()
        };
        promote(&admin, &workspace_admin, "support", 3, "production").await;
        assert_eq!(
            version_of(&registry, "support", "production", None).await,
            3,
            "{db}"
        );
        // Reads need at least an editor.
        let err = admin.run(&nobody, Command::List).await.unwrap_err();
        assert!(matches!(err, AdminError::Forbidden { .. }), "{db}");
        registry.close();
    }
}

/// A prompt named `name`, for the scoping tests.
fn named_prompt(name: &str, system: &str) -> Prompt {
    let toml = support_prompt(system)
        .to_toml()
        .replace("name = \"support\"", &format!("name = \"{name}\""));
    Prompt::from_toml(&format!("{name}.toml"), &toml).expect("test prompt parses")
}

#[tokio::test]
async fn a_platform_admins_rights_reach_only_their_own_workspace() {
    for (db, url, _dir) in databases().await {
        let registry = open(&url, Duration::from_secs(30)).await;
        let admin = admin_over(&registry);
        let boss = user("slack:UADMIN");
        // `support` answers in another server; `ours` is bound nowhere yet.
        create(&admin, &boss, support_prompt("v1 {{ product }}")).await;
        edit(&admin, &boss, support_prompt("v2 {{ product }}"), 1).await;
        promote(&admin, &boss, "support", 1, "production").await;
        let elsewhere = Scope::parse("discord/G2/C7").unwrap();
        admin
            .run(
                &boss,
                Command::Bind {
                    scope: elsewhere.clone(),
                    target: Some(("support".into(), "production".into())),
                },
            )
            .await
            .expect("an admin binds anywhere");
        create(&admin, &boss, named_prompt("ours", "ours v1 {{ product }}")).await;
        edit(
            &admin,
            &boss,
            named_prompt("ours", "ours v2 {{ product }}"),
            1,
        )
        .await;

        // A guild owner, as the Discord adapter reports them.
        let owner = Actor {
            id: "discord:OWNER".into(),
            name: "owner".into(),
            platform_admin: true,
            workspace: Some("discord/G1".into()),
            ..Actor::default()
        };
        let bind = |scope: &str, name: &str| Command::Bind {
            scope: Scope::parse(scope).unwrap(),
            target: Some((name.into(), "production".into())),
        };
        let bindings_before = registry.bindings();
        let refused = [
            (bind("global", "ours"), "outside your workspace"),
            (bind("discord/G2", "ours"), "outside your workspace"),
            // A prefix of the id is another server.
            (bind("discord/G10/C1", "ours"), "outside your workspace"),
            (bind("slack/G1/C1", "ours"), "outside your workspace"),
            (
                Command::Bind {
                    scope: elsewhere.clone(),
                    target: None,
                },
                "outside your workspace",
            ),
            (
                Command::Promote {
                    name: "support".into(),
                    version: 2,
                    label: "production".into(),
                },
                "`support` is shared: `discord/G2/C7` answers with support@production",
            ),
            (
                Command::Split {
                    name: "support".into(),
                    label: "canary".into(),
                    arms: vec![Arm {
                        version: 2,
                        weight: 1,
                    }],
                },
                "is shared",
            ),
            (
                Command::Edit {
                    prompt: support_prompt("v3 {{ product }}"),
                    base: 2,
                    message: "mine".into(),
                },
                "is shared",
            ),
            (
                Command::Promote {
                    name: "assistant".into(),
                    version: 1,
                    label: "staging".into(),
                },
                "default prompt",
            ),
        ];
        let count = refused.len();
        for (command, why) in refused {
            let name = command.name();
            let err = admin.run(&owner, command).await.unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, AdminError::Forbidden { .. }),
                "{db}: {name}: {text}"
            );
            assert!(text.contains(why), "{db}: {name}: {text}");
            assert!(
                text.contains("reach only `discord/G1`") && text.contains("admin.admins"),
                "{db}: the refusal says how far the rights reach and who can help: {text}"
            );
        }
        assert_eq!(registry.bindings(), bindings_before, "{db}: nothing moved");
        assert_eq!(
            version_of(&registry, "support", "production", None).await,
            1,
            "{db}"
        );
        assert_eq!(registry.versions("support").await.unwrap().len(), 2, "{db}");
        let history = registry.history(None, 200).await.unwrap();
        let refusals: Vec<_> = history
            .iter()
            .filter(|a| a.outcome == "refused" && a.actor == "discord:OWNER")
            .collect();
        assert_eq!(refusals.len(), count, "{db}: every refusal is audited");
        assert!(
            refusals
                .iter()
                .any(|a| a.target == "binding:global" && a.action == "bind"),
            "{db}: {refusals:?}"
        );

        // Inside their own server they may do what an admin does, with prompts
        // only it uses: make one, promote it, bind their channels to it.
        create(
            &admin,
            &owner,
            named_prompt("guild-only", "g {{ product }}"),
        )
        .await;
        promote(&admin, &owner, "ours", 2, "production").await;
        for scope in ["discord/G1/C1", "discord/G1/C1/T9", "discord/G1"] {
            admin
                .run(&owner, bind(scope, "ours"))
                .await
                .unwrap_or_else(|e| panic!("{db}: {scope}: {e}"));
        }
        // Binding their own channel to a shared prompt is theirs to choose.
        admin
            .run(&owner, bind("discord/G1/C2", "support"))
            .await
            .expect("own channel, shared prompt");
        // Now that their server uses `ours`, they move its labels.
        promote(&admin, &owner, "ours", 1, "production").await;
        let origin = Origin {
            platform: "discord".into(),
            workspace: Some("G1".into()),
            channel: Some("C1".into()),
            ..Origin::default()
        };
        let resolved = registry.resolve_bound(&origin).await.unwrap();
        assert_eq!((resolved.name(), resolved.version()), ("ours", 1), "{db}");
        // Once another server binds `ours`, it is shared and out of reach.
        admin
            .run(&boss, bind("discord/G2/C8", "ours"))
            .await
            .unwrap();
        let err = admin
            .run(
                &owner,
                Command::Promote {
                    name: "ours".into(),
                    version: 2,
                    label: "production".into(),
                },
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("`ours` is shared"), "{db}: {err}");

        // A configured home workspace's admins reach everything.
        let home = Admin::new(
            registry.clone(),
            None,
            AdminConfig {
                home_workspaces: vec!["discord/G1".into()],
                ..AdminConfig::default()
            },
        );
        home.run(&owner, bind("global", "support"))
            .await
            .expect("a home workspace's owner binds global");
        // With platform admins off, the owner is nobody.
        let off = Admin::new(
            registry.clone(),
            None,
            AdminConfig {
                platform_admins: false,
                ..AdminConfig::default()
            },
        );
        let err = off
            .run(&owner, bind("discord/G1/C3", "ours"))
            .await
            .unwrap_err();
        assert!(matches!(err, AdminError::Forbidden { .. }), "{db}: {err}");
        registry.close();
    }
}

#[tokio::test]
async fn stale_edits_are_refused_with_the_diff_and_concurrent_promotes_lose_nothing() {
    for (db, url, _dir) in databases().await {
        let registry = open(&url, Duration::from_secs(30)).await;
        let admin = admin_over(&registry);
        let boss = user("slack:UADMIN");
        let boss2 = user("slack:UADMIN2");
        create(&admin, &boss, support_prompt("Base {{ product }}")).await;
        edit(&admin, &boss, support_prompt("Alice's {{ product }}"), 1).await;
        // Bob started from v1 too; his save is refused with the difference.
        let err = admin
            .run(
                &boss2,
                Command::Edit {
                    prompt: support_prompt("Bob's {{ product }}"),
                    base: 1,
                    message: "b".into(),
                },
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("starts from v1, but v2 was saved since"),
            "{db}: {err}"
        );
        assert!(
            err.contains("-Alice's {{ product }}\n+Bob's {{ product }}"),
            "{db}: {err}"
        );
        assert_eq!(registry.versions("support").await.unwrap().len(), 2, "{db}");

        // Two admins promote at once, many times over.
        for round in 0..5 {
            let a = admin.run(
                &boss,
                Command::Promote {
                    name: "support".into(),
                    version: 1,
                    label: "production".into(),
                },
            );
            let b = admin.run(
                &boss2,
                Command::Promote {
                    name: "support".into(),
                    version: 2,
                    label: "production".into(),
                },
            );
            let (a, b) = tokio::join!(a, b);
            a.expect("first promote");
            b.expect("second promote");
            let history = registry.history(Some("support"), 1000).await.unwrap();
            let moves: Vec<_> = history
                .iter()
                .filter(|h| h.action == "promote" && h.target == "support@production")
                .collect();
            assert_eq!(moves.len(), 2 * (round + 1), "{db}: both audited");
            // No lost update: each move's `before` is the previous one's `after`.
            for pair in moves.windows(2) {
                assert_eq!(pair[0].before, pair[1].after, "{db}: {pair:?}");
            }
            let final_version = version_of(&registry, "support", "production", None).await;
            assert!(
                moves[0]
                    .after
                    .as_deref()
                    .unwrap()
                    .contains(&format!("\"version\":{final_version}"))
            );
        }
        registry.close();
    }
}

#[tokio::test]
async fn bindings_resolve_thread_then_channel_then_workspace_then_global() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(
        &format!("sqlite://{}/r.db", dir.path().display()),
        Duration::from_secs(30),
    )
    .await;
    let admin = admin_over(&registry);
    let boss = user("slack:UADMIN");
    for (name, text) in [
        ("support", "support"),
        ("sales", "sales"),
        ("triage", "triage"),
        ("global", "global"),
    ] {
        let mut p = support_prompt(&format!("{text} {{{{ product }}}}"));
        p.name = name.into();
        create(&admin, &boss, p).await;
        admin
            .run(
                &boss,
                Command::Promote {
                    name: name.into(),
                    version: 1,
                    label: "production".into(),
                },
            )
            .await
            .unwrap();
    }
    let origin = |channel: Option<&str>, thread: Option<&str>, workspace: Option<&str>| Origin {
        platform: "slack".into(),
        workspace: workspace.map(str::to_string),
        channel: channel.map(str::to_string),
        thread: thread.map(str::to_string),
        user: Some(gateway::User::new("slack", "U1")),
        private: false,
        label: None,
    };
    let bound = |o: Origin| {
        let r = registry.clone();
        async move { r.resolve_bound(&o).await.unwrap().name().to_string() }
    };
    // Nothing bound: the default prompt.
    assert_eq!(
        bound(origin(Some("C1"), None, Some("T1"))).await,
        "assistant"
    );
    let bind = |scope: &str, name: &str| Command::Bind {
        scope: Scope::parse(scope).unwrap(),
        target: Some((name.into(), "production".into())),
    };
    admin.run(&boss, bind("global", "global")).await.unwrap();
    admin.run(&boss, bind("slack/T1", "sales")).await.unwrap();
    admin
        .run(&boss, bind("slack/T1/C1", "support"))
        .await
        .unwrap();
    admin
        .run(&boss, bind("slack/T1/C1/1700.01", "triage"))
        .await
        .unwrap();
    assert_eq!(
        bound(origin(Some("C1"), Some("1700.01"), Some("T1"))).await,
        "triage"
    );
    // Another thread in C1 inherits the channel's binding.
    assert_eq!(
        bound(origin(Some("C1"), Some("1800.02"), Some("T1"))).await,
        "support"
    );
    assert_eq!(bound(origin(Some("C2"), None, Some("T1"))).await, "sales");
    assert_eq!(bound(origin(Some("C9"), None, Some("T2"))).await, "global");
    // Unbinding the channel falls back to the workspace.
    admin
        .run(
            &boss,
            Command::Bind {
                scope: Scope::parse("slack/T1/C1").unwrap(),
                target: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        bound(origin(Some("C1"), Some("1800.02"), Some("T1"))).await,
        "sales"
    );
    // A binding to a label the prompt lacks is refused.
    let err = admin
        .run(
            &boss,
            Command::Bind {
                scope: Scope::Global,
                target: Some(("support".into(), "canary".into())),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no label `canary`"), "{err}");
    assert!(Scope::parse("slack//C1").is_err());
    registry.close();
}

#[tokio::test]
async fn a_promote_reaches_other_replicas_within_a_second() {
    // PostgreSQL: NOTIFY does it (the poll is set too slow to matter).
    // SQLite: two processes on one file see it through the generation check.
    for (db, url, _dir) in databases().await {
        let poll = if db == "postgres" {
            Duration::from_secs(60)
        } else {
            Duration::from_millis(200)
        };
        let a = open(&url, poll).await;
        let b = open(&url, poll).await;
        let admin = admin_over(&a);
        let boss = user("slack:UADMIN");
        create(&admin, &boss, support_prompt("one {{ product }}")).await;
        edit(&admin, &boss, support_prompt("two {{ product }}"), 1).await;
        for (version, label) in [(1, "production"), (2, "production"), (1, "production")] {
            admin
                .run(
                    &boss,
                    Command::Promote {
                        name: "support".into(),
                        version,
                        label: label.into(),
                    },
                )
                .await
                .unwrap();
            // The replica that made the change sees it at once.
            assert_eq!(version_of(&a, "support", "production", None).await, version);
            let started = Instant::now();
            loop {
                let seen = b
                    .resolve(
                        "support",
                        &Selector::Label("production".into()),
                        &Origin::default(),
                    )
                    .await
                    .map(|r| r.version())
                    .ok();
                if seen == Some(version) {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "{db}: replica b still serves {seen:?} a second after the promote to v{version}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // A removed label stops being served too.
        a.set_label(
            "slack:UADMIN",
            "unlabel",
            "support",
            "production",
            None,
            None,
        )
        .await
        .unwrap();
        let started = Instant::now();
        while b
            .resolve(
                "support",
                &Selector::Label("production".into()),
                &Origin::default(),
            )
            .await
            .is_ok()
        {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{db}: removed label still served"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.close();
        b.close();
    }
}

#[tokio::test]
async fn export_then_import_round_trips_exactly() {
    for (db, url, dir) in databases().await {
        let registry = open(&url, Duration::from_secs(30)).await;
        let admin = admin_over(&registry);
        let boss = user("slack:UADMIN");
        let mut p = support_prompt("x");
        p.messages[0].template = "Multi-line\n  indented \"quoted\" '''{{ product }}\\n".into();
        p.description = "Support answers".into();
        p.params.temperature = Some(0.3);
        p.params.stop = vec!["\n\nUser:".into()];
        create(&admin, &boss, p).await;
        promote(&admin, &boss, "support", 1, "production").await;

        let first = dir.path().join("first");
        registry.export(&first, "production").await.unwrap();
        let files: Vec<_> = std::fs::read_dir(&first)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        // support, and the library's assistant, summarize and ask_about.
        assert_eq!(files.len(), 4, "{db}: one file per prompt: {files:?}");

        // Importing what was exported changes nothing.
        let done = registry.import("cli:test", &first, None).await.unwrap();
        assert!(
            done.iter().all(|(_, _, changed)| !changed),
            "{db}: {done:?}"
        );
        assert_eq!(registry.versions("support").await.unwrap().len(), 1);

        // Into an empty registry, then out again: the same bytes.
        let other_dir = tempfile::tempdir().unwrap();
        let other = open(
            &format!("sqlite://{}/other.db", other_dir.path().display()),
            Duration::from_secs(30),
        )
        .await;
        other
            .import("cli:test", &first, Some("production"))
            .await
            .unwrap();
        let second = dir.path().join("second");
        other.export(&second, "production").await.unwrap();
        for name in ["support.toml", "assistant.toml"] {
            assert_eq!(
                std::fs::read(first.join(name)).unwrap(),
                std::fs::read(second.join(name)).unwrap(),
                "{db}: {name} differs after a round trip"
            );
        }

        // A changed file becomes a new version; a broken one stops the whole import.
        let text = std::fs::read_to_string(first.join("support.toml")).unwrap();
        std::fs::write(
            first.join("support.toml"),
            text.replace("Multi-line", "Two lines"),
        )
        .unwrap();
        std::fs::write(
            first.join("zzz.toml"),
            "name = \"zzz\"\n[[messages]]\nrole = \"system\"\ntemplate = \"{{ oops }}\"\n",
        )
        .unwrap();
        let err = registry
            .import("cli:test", &first, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nothing was imported") && err.contains("`oops`"),
            "{db}: {err}"
        );
        assert_eq!(registry.versions("support").await.unwrap().len(), 1, "{db}");
        std::fs::remove_file(first.join("zzz.toml")).unwrap();
        let done = registry
            .import("cli:test", &first, Some("production"))
            .await
            .unwrap();
        assert!(
            done.contains(&("support".to_string(), 2, true)),
            "{db}: {done:?}"
        );
        assert_eq!(
            version_of(&registry, "support", "production", None).await,
            2
        );
        registry.close();
        other.close();
    }
}

fn prompt_config(url: &str) -> String {
    one_provider(url)
}

#[tokio::test]
async fn the_api_answers_prompt_models_with_the_version_the_label_resolves_to() {
    let provider = StandIn::start().await;
    let h = Harness::start(&prompt_config(&provider.url), &[]).await;
    let admin = h.gateway.admin.clone();
    let boss = Actor::cli("test");
    create(
        &admin,
        &boss,
        support_prompt("Version one for {{ product }}."),
    )
    .await;
    edit(
        &admin,
        &boss,
        support_prompt("Version two for {{ product }}."),
        1,
    )
    .await;
    promote(&admin, &boss, "support", 1, "production").await;
    promote(&admin, &boss, "support", 2, "staging").await;

    let ask = |model: &str, text: &str| json!({"model": model, "messages": [{"role": "user", "content": text}], "variables": {"product": "Switchboard"}, "user": "U1"});
    let cases = [
        ("prompt:support", 1, "Version one for Switchboard."),
        ("prompt:support@staging", 2, "Version two"),
        ("prompt:support@1", 1, "Version one"),
        ("prompt:support@latest", 2, "Version two"),
    ];
    for (model, version, system) in cases {
        let answer = h.chat(ask(model, "hi")).await;
        assert_eq!(answer.status, 200, "{model}: {}", answer.body);
        let row = h.row(&answer.inference_id()).await;
        assert_eq!(
            (row.prompt_name.as_deref(), row.prompt_version),
            (Some("support"), Some(version)),
            "{model}"
        );
        let sent = provider.received().last().unwrap().body.clone();
        assert!(
            sent["messages"][0]["content"]
                .as_str()
                .unwrap()
                .starts_with(system),
            "{model}: {sent}"
        );
    }
    // Promote, and the next request uses the new version.
    promote(&admin, &boss, "support", 2, "production").await;
    let answer = h.chat(ask("prompt:support", "hi")).await;
    let row = h.row(&answer.inference_id()).await;
    assert_eq!(row.prompt_version, Some(2));
    assert_eq!(row.prompt_label.as_deref(), Some("production"));

    // User text with template syntax reaches the model literally.
    let literal = "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %} {{ product }}";
    let answer = h.chat(ask("prompt:support", literal)).await;
    assert_eq!(answer.status, 200);
    let sent = provider.received().last().unwrap().body.clone();
    assert_eq!(
        sent["messages"].as_array().unwrap().last().unwrap()["content"],
        literal
    );

    // Unknown prompts, labels and versions are 404s that say what exists.
    for (model, says) in [
        ("prompt:nope", "unknown prompt `nope`"),
        ("prompt:support@canary", "no label `canary`"),
        ("prompt:support@9", "no version 9"),
    ] {
        let answer = h.chat(ask(model, "hi")).await;
        assert_eq!(answer.status, 404, "{model}");
        assert!(answer.body.contains(says), "{model}: {}", answer.body);
    }
}

#[tokio::test]
async fn a_split_is_sticky_per_user_and_the_version_used_is_recorded() {
    let provider = StandIn::start().await;
    let h = Harness::start(&prompt_config(&provider.url), &[]).await;
    let admin = h.gateway.admin.clone();
    let boss = Actor::cli("test");
    create(&admin, &boss, support_prompt("A {{ product }}")).await;
    edit(&admin, &boss, support_prompt("B {{ product }}"), 1).await;
    admin
        .run(
            &boss,
            Command::Split {
                name: "support".into(),
                label: "production".into(),
                arms: vec![
                    Arm {
                        version: 1,
                        weight: 50,
                    },
                    Arm {
                        version: 2,
                        weight: 50,
                    },
                ],
            },
        )
        .await
        .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for u in 0..40 {
        for _ in 0..2 {
            let answer = h
                .chat(json!({"model": "prompt:support", "messages": [{"role": "user", "content": "hi"}], "user": format!("U{u}")}))
                .await;
            let row = h.row(&answer.inference_id()).await;
            let v = row.prompt_version.unwrap();
            let sent = provider.received().last().unwrap().body.clone();
            let system = sent["messages"][0]["content"].as_str().unwrap().to_string();
            assert_eq!(
                system.starts_with('A'),
                v == 1,
                "the recorded version is the one rendered"
            );
            let first = *seen.entry(u).or_insert(v);
            assert_eq!(first, v, "user U{u} switched versions");
        }
    }
    let ones = seen.values().filter(|v| **v == 1).count();
    assert!(
        ones > 5 && ones < 35,
        "both arms get traffic: {ones}/40 on v1"
    );
}

#[tokio::test]
async fn a_label_moved_in_flight_leaves_the_request_on_one_version() {
    let provider = StandIn::start().await;
    let h = Harness::start(&prompt_config(&provider.url), &[]).await;
    let admin = h.gateway.admin.clone();
    let boss = Actor::cli("test");
    let mut p = support_prompt("Old system {% include \"assistant\" %}");
    create(&admin, &boss, p.clone()).await;
    p.messages[0].template = "New system {% include \"assistant\" %}".into();
    edit(&admin, &boss, p, 1).await;
    promote(&admin, &boss, "support", 1, "production").await;

    let request = gateway::domain::Request::new(
        Origin {
            platform: "http".into(),
            ..Origin::default()
        },
        gateway::domain::Input::Prompt {
            name: "support".into(),
            selector: None,
            messages: vec![gateway::ChatMessage::new(gateway::Role::User, "hello")],
        },
    );
    let mut reply = h.gateway.pipeline.start(request).await.unwrap();
    // The label moves while the answer is being produced.
    promote(&admin, &boss, "support", 2, "production").await;
    let mut done = None;
    while let Some(event) = reply.next_event().await {
        if let gateway::domain::ReplyEvent::Done(s) = event {
            done = Some(s);
        }
    }
    let summary = done.expect("answered");
    assert_eq!(summary.prompt, Some(("support".into(), 1)));
    let sent = provider.received().last().unwrap().body.clone();
    assert!(
        sent["messages"][0]["content"]
            .as_str()
            .unwrap()
            .starts_with("Old system"),
        "{sent}"
    );
    // The next request uses the new version.
    let answer = h
        .chat(json!({"model": "prompt:support", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(h.row(&answer.inference_id()).await.prompt_version, Some(2));
}

#[tokio::test]
async fn a_test_command_answers_and_is_recorded_as_a_test_not_as_traffic() {
    let provider = StandIn::start().await;
    let h = Harness::start(&prompt_config(&provider.url), &[]).await;
    let admin = h.gateway.admin.clone();
    let boss = Actor::cli("test");
    create(&admin, &boss, support_prompt("Draft {{ product }}")).await;
    let out = admin
        .run(
            &boss,
            Command::Test {
                name: "support".into(),
                version: None,
                text: "Does it work?".into(),
            },
        )
        .await
        .expect("test runs");
    assert!(out.summary.contains("test of support v1"), "{out:?}");
    assert!(
        out.to_text().contains("Hello from the stand-in."),
        "{out:?}"
    );
    let id = out
        .summary
        .split("inference ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let row = h.row(&id).await;
    assert_eq!(row.purpose, "test");
    assert_eq!(row.platform, "test");
    assert_eq!(row.prompt_version, Some(1));
    // Testing needs an editor too.
    let err = admin
        .run(
            &user("slack:UNOBODY"),
            Command::Test {
                name: "support".into(),
                version: None,
                text: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::Forbidden { .. }));
}
