//! `Table::transaction` and `Table::move_item` against DynamoDB Local:
//! all-or-nothing writes, cancellations mapped to the failing action and
//! its reason, DynamoDB's transaction rules checked before sending.

mod common;

use singletable::{CancelKind, Error, Item, KeyParts, Table, MAX_TRANSACTION_ACTIONS};

use common::scan;

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Account", pk = "ACCOUNT#{id}", sk = "ACCOUNT")]
struct Account {
    id: String,
    balance: i64,
    #[item(version)]
    version: u64,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Transfer", pk = "ACCOUNT#{from}", sk = "TRANSFER#{id}")]
struct Transfer {
    from: String,
    id: String,
    to: String,
    amount: i64,
}

/// The sort key holds the user's name: renaming is a move.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Member", pk = "TEAM#{team}", sk = "MEMBER#{name}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "MEMBER"))]
struct Member {
    team: String,
    name: String,
    email: String,
    #[item(version)]
    version: u32,
}

async fn new_table(prefix: &str) -> Table {
    common::new_table(prefix, vec![Account::DESIGN.clone(), Transfer::DESIGN.clone(), Member::DESIGN.clone()]).await
}

async fn drop_table(table: &Table) {
    singletable_tests::delete_table(table.client(), table.name()).await;
}

fn account(id: &str, balance: i64) -> Account {
    Account { id: id.into(), balance, version: 0 }
}

fn acct(id: &str) -> (String,) {
    (id.to_string(),)
}

async fn balance(table: &Table, id: &str) -> Option<(i64, u64)> {
    table.get::<Account>(&acct(id)).await.unwrap().map(|a| (a.balance, a.version))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transfer_happens_whole() {
    let table = new_table("tx_ok").await;
    table.put(&account("alice", 100)).await.unwrap();
    table.put(&account("bob", 0)).await.unwrap();
    let a = Account::fields();
    let t = Transfer { from: "alice".into(), id: "t1".into(), to: "bob".into(), amount: 30 };
    let tx = table
        .transaction()
        .update(table.update::<Account>(&acct("alice")).subtract(a.balance, 30).condition(a.balance.ge(30)))
        .update(table.update::<Account>(&acct("bob")).add(a.balance, 30))
        .create(&t)
        .put(&account("carol", 5))
        .put_if(&Account { balance: 1, ..account("erin", 0) }, a.balance.not_exists());
    assert_eq!(tx.len(), 5);
    tx.send().await.unwrap();
    assert_eq!(balance(&table, "alice").await, Some((70, 2)));
    assert_eq!(balance(&table, "bob").await, Some((30, 2)));
    assert_eq!(balance(&table, "carol").await, Some((5, 1)));
    assert_eq!(balance(&table, "erin").await, Some((1, 1)));
    // A put_if whose condition fails cancels the whole transaction.
    let err = table
        .transaction()
        .update(table.update::<Account>(&acct("bob")).add(a.balance, 1))
        .put_if(&Account { balance: 2, version: 1, ..account("erin", 0) }, a.balance.gt(5i64))
        .send()
        .await
        .unwrap_err();
    let Error::TransactionCanceled { reasons, .. } = &err else { panic!("{err:?}") };
    assert_eq!((reasons[0].action, reasons[0].operation), (1, "Put"));
    assert!(matches!(reasons[0].kind, CancelKind::ConditionFailed { .. }), "{reasons:?}");
    assert_eq!(balance(&table, "bob").await, Some((30, 2)));
    assert_eq!(table.get::<Transfer>(&("alice".into(), "t1".into())).await.unwrap(), Some(t));

    // Deletes and condition checks.
    let tf = Transfer::fields();
    table
        .transaction()
        .check::<Account>(&acct("bob"), a.balance.eq(30i64))
        .delete::<Transfer>(&("alice".into(), "t1".into()))
        .delete_if::<Account>(&acct("carol"), a.balance.lt(10i64))
        .delete::<Transfer>(&("alice".into(), "never-existed".into()))
        .send()
        .await
        .unwrap();
    assert!(table.get::<Transfer>(&("alice".into(), "t1".into())).await.unwrap().is_none());
    assert_eq!(balance(&table, "carol").await, None);
    let _ = tf;
    // Nothing to do sends nothing.
    table.transaction().send().await.unwrap();
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_transaction_names_the_failing_action_and_writes_nothing() {
    let table = new_table("tx_cancel").await;
    table.put(&account("alice", 10)).await.unwrap();
    table.put(&account("bob", 0)).await.unwrap();
    let before = scan(table.client(), table.name(), None).await;
    let a = Account::fields();
    let err = table
        .transaction()
        .put(&account("carol", 1))
        .update(table.update::<Account>(&acct("bob")).add(a.balance, 50))
        .create(&Transfer { from: "alice".into(), id: "t2".into(), to: "bob".into(), amount: 50 })
        .update(table.update::<Account>(&acct("alice")).subtract(a.balance, 50).condition(a.balance.ge(50)))
        .send()
        .await
        .unwrap_err();
    match &err {
        Error::TransactionCanceled { reasons, .. } => {
            assert_eq!(reasons.len(), 1, "{reasons:?}");
            let r = &reasons[0];
            assert_eq!((r.action, r.operation, r.entity.as_str()), (3, "Update", "Account"));
            assert_eq!((r.pk.as_str(), r.sk.as_str()), ("ACCOUNT#alice", "ACCOUNT"));
            assert_eq!(r.code, "ConditionalCheckFailed");
            assert_eq!(r.kind, CancelKind::ConditionFailed { reason: "the condition did not hold".into() });
        }
        other => panic!("expected TransactionCanceled, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("action 3 (Update Account (ACCOUNT#alice, ACCOUNT)): condition failed"), "{text}");
    assert_eq!(scan(table.client(), table.name(), None).await, before, "nothing was written");

    // Several failures at once: a stale version, a missing item, an
    // existing key; each with its own kind.
    let stale = Account { balance: 1, ..table.get::<Account>(&acct("alice")).await.unwrap().unwrap() };
    table.put(&stale).await.unwrap(); // now at version 2; `stale` says 1
    table.put(&account("dave", 0)).await.unwrap();
    let before = scan(table.client(), table.name(), None).await;
    let err = table
        .transaction()
        .put(&stale)
        .update(table.update::<Account>(&acct("nobody")).add(a.balance, 1))
        .create(&account("bob", 0))
        .update(table.update::<Account>(&acct("dave")).set(a.balance, 7i64).if_version(9))
        .send()
        .await
        .unwrap_err();
    let Error::TransactionCanceled { reasons, .. } = &err else { panic!("{err:?}") };
    let kinds: Vec<(usize, CancelKind)> = reasons.iter().map(|r| (r.action, r.kind.clone())).collect();
    assert_eq!(
        kinds,
        [
            (0, CancelKind::VersionConflict { expected: 1, found: Some(2) }),
            (1, CancelKind::NotFound),
            (2, CancelKind::AlreadyExists),
            (3, CancelKind::VersionConflict { expected: 9, found: Some(1) }),
        ]
    );
    assert_eq!(scan(table.client(), table.name(), None).await, before, "nothing was written");
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_rules_are_checked_before_sending() {
    let table = new_table("tx_rules").await;
    let a = Account::fields();

    let mut tx = table.transaction();
    for i in 0..=MAX_TRANSACTION_ACTIONS {
        tx = tx.put(&account(&format!("a{i}"), 1));
    }
    let err = tx.send().await.unwrap_err();
    assert!(matches!(err, Error::TooManyActions { count: 101, max: 100, .. }), "{err:?}");

    let err = table
        .transaction()
        .put(&account("a", 1))
        .put(&account("b", 1))
        .update(table.update::<Account>(&acct("a")).add(a.balance, 1))
        .send()
        .await
        .unwrap_err();
    match &err {
        Error::DuplicateAction { entity, pk, first, second, .. } => {
            assert_eq!((entity.as_str(), pk.as_str(), *first, *second), ("Account", "ACCOUNT#a", 0, 2));
        }
        other => panic!("expected DuplicateAction, got {other:?}"),
    }
    // An action that cannot be built is reported as it would be alone.
    let err = table
        .transaction()
        .put(&account("a", 1))
        .update(table.update::<Account>(&acct("a")).set(a.balance, 1i64).set(a.balance, 2i64))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidUpdate { .. }), "{err:?}");
    let err = table.transaction().put(&account("", 1)).send().await.unwrap_err();
    assert!(matches!(err, Error::EmptyKey { .. }), "{err:?}");
    assert!(scan(table.client(), table.name(), None).await.is_empty(), "nothing was written");
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_token_applies_a_transaction_once() {
    let table = new_table("tx_token").await;
    table.put(&account("alice", 0)).await.unwrap();
    let a = Account::fields();
    // Tokens live for 10 minutes across the whole endpoint: one per run.
    let name = table.name();
    let token = format!("d-{}", &name[name.len() - 30..]);
    let deposit = || {
        table
            .transaction()
            .update(table.update::<Account>(&acct("alice")).add(a.balance, 10))
            .idempotency_token(&token)
    };
    deposit().send().await.unwrap();
    deposit().send().await.unwrap();
    assert_eq!(balance(&table, "alice").await, Some((10, 2)));
    // DynamoDB takes 1 to 36 characters: refused before sending.
    let err = deposit().idempotency_token("x".repeat(37)).send().await.unwrap_err();
    assert!(matches!(err, Error::InvalidToken { len: 37, .. }), "{err:?}");
    let err = deposit().idempotency_token("").send().await.unwrap_err();
    assert!(matches!(err, Error::InvalidToken { len: 0, .. }), "{err:?}");
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn move_item_changes_a_table_key_field_atomically() {
    let table = new_table("tx_move").await;
    let mut ann = Member { team: "red".into(), name: "ann".into(), email: "ann@x.test".into(), version: 0 };
    table.save(&mut ann).await.unwrap();
    table.put(&Member { team: "red".into(), name: "bob".into(), email: "bob@x.test".into(), version: 0 }).await.unwrap();

    let renamed = Member { name: "anne".into(), ..ann.clone() };
    table.move_item::<Member>(&("red".into(), "ann".into()), &renamed).await.unwrap();
    assert!(table.get::<Member>(&("red".into(), "ann".into())).await.unwrap().is_none());
    let stored = table.get::<Member>(&("red".into(), "anne".into())).await.unwrap().unwrap();
    assert_eq!(stored, Member { version: 2, ..renamed.clone() });
    let by_email = table.query::<Member>().index("gsi1").pk(KeyParts::new().set("email", "ann@x.test")).all().await.unwrap();
    assert_eq!(by_email, vec![stored.clone()]);

    let before = scan(table.client(), table.name(), None).await;
    // Onto an existing key: refused at the create (action 1).
    let onto_bob = Member { name: "bob".into(), ..stored.clone() };
    let err = table.move_item::<Member>(&("red".into(), "anne".into()), &onto_bob).await.unwrap_err();
    let Error::TransactionCanceled { reasons, .. } = &err else { panic!("{err:?}") };
    assert_eq!(reasons.iter().map(|r| (r.action, r.kind.clone())).collect::<Vec<_>>(), [(1, CancelKind::AlreadyExists)]);
    // From a missing key; from a stale version.
    let err = table.move_item::<Member>(&("red".into(), "zed".into()), &Member { name: "zoe".into(), ..stored.clone() }).await.unwrap_err();
    let Error::TransactionCanceled { reasons, .. } = &err else { panic!("{err:?}") };
    assert_eq!(reasons[0].kind, CancelKind::NotFound);
    let stale = Member { name: "annie".into(), version: 1, ..stored.clone() };
    let err = table.move_item::<Member>(&("red".into(), "anne".into()), &stale).await.unwrap_err();
    let Error::TransactionCanceled { reasons, .. } = &err else { panic!("{err:?}") };
    assert_eq!(reasons[0].kind, CancelKind::VersionConflict { expected: 1, found: Some(2) });
    // Not a move.
    let err = table.move_item::<Member>(&("red".into(), "anne".into()), &stored).await.unwrap_err();
    assert!(matches!(err, Error::InvalidUpdate { .. }), "{err:?}");
    assert_eq!(scan(table.client(), table.name(), None).await, before, "nothing was written");
    drop_table(&table).await;
}
