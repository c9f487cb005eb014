//! Queries and scans as streams and as pages with cursors, against
//! DynamoDB Local.

mod common;

use futures::{StreamExt, TryStreamExt};
use singletable::{Error, Item, KeyParts, Table};

#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
#[item(index(name = "byage", pk = "ORG#{org}", sk = "AGE#{age:03}#{id}"))]
struct User {
    org: String,
    id: String,
    age: u32,
}

/// Shares the users' partitions, so a page of users must skip notes.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(entity = "Note", pk = "ORG#{org}", sk = "USER#{id}#NOTE")]
struct Note {
    org: String,
    id: String,
}

fn user(org: &str, i: u32) -> User {
    User { org: org.into(), id: format!("u{i:03}"), age: (i * 7) % 50 }
}

fn org(name: &str) -> KeyParts {
    KeyParts::new().set("org", name)
}

/// 50 users in `acme` (each followed by a note in key order), 5 in `other`.
async fn filled_table(prefix: &str) -> (Table, Vec<User>) {
    let table = common::new_table(prefix, vec![User::DESIGN.clone(), Note::DESIGN.clone()]).await;
    let users: Vec<User> = (0..50).map(|i| user("acme", i)).collect();
    let notes: Vec<Note> = (0..50).filter(|i| i % 3 != 0).map(|i| Note { org: "acme".into(), id: format!("u{i:03}") }).collect();
    let others: Vec<User> = (0..5).map(|i| user("other", i)).collect();
    table.batch_write().put_all(&users).put_all(&notes).put_all(&others).send().await.unwrap();
    (table, users)
}

async fn all_pages(table: &Table, page_size: usize, limit: Option<usize>) -> Vec<Vec<User>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = table.query::<User>().pk(org("acme")).page_size(page_size);
        if let Some(l) = limit {
            q = q.limit(l);
        }
        let page = q.page(cursor.as_deref()).await.unwrap();
        pages.push(page.items);
        cursor = page.cursor;
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "runaway paging");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_yields_every_item_a_request_at_a_time() {
    let (table, users) = filled_table("page_stream").await;
    let streamed: Vec<User> = table.query::<User>().pk(org("acme")).page_size(7).stream().try_collect().await.unwrap();
    assert_eq!(streamed, users);
    assert_eq!(table.query::<User>().pk(org("acme")).all().await.unwrap(), users);

    // A total limit stops the stream, whatever the page size.
    let first: Vec<User> = table.query::<User>().pk(org("acme")).page_size(7).limit(23).stream().try_collect().await.unwrap();
    assert_eq!(first, users[..23]);
    let reversed: Vec<User> = table.query::<User>().pk(org("acme")).reverse().limit(3).stream().try_collect().await.unwrap();
    assert_eq!(reversed, [users[49].clone(), users[48].clone(), users[47].clone()]);

    // Polled lazily: taking two items reads only the first request.
    let two: Vec<User> = table.query::<User>().pk(org("acme")).page_size(2).stream().take(2).try_collect().await.unwrap();
    assert_eq!(two, users[..2]);

    // The stream can move to another task.
    let spawned = tokio::spawn({
        let table = table.clone();
        async move { table.query::<User>().pk(org("acme")).page_size(9).stream().try_collect::<Vec<User>>().await }
    });
    assert_eq!(spawned.await.unwrap().unwrap(), users);

    // A bad query is the stream's only item.
    let mut bad = Box::pin(table.query::<User>().index("nope").pk(org("acme")).stream());
    assert!(matches!(bad.next().await, Some(Err(Error::InvalidArgument { argument: "index", .. }))));
    assert!(bad.next().await.is_none());
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_follow_cursors_to_the_end() {
    let (table, users) = filled_table("page_cursor").await;
    let pages = all_pages(&table, 10, None).await;
    assert_eq!(pages.concat(), users);
    // Every page is full (notes are skipped, not counted) but maybe the last.
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert!(sizes[..sizes.len() - 1].iter().all(|&n| n == 10), "{sizes:?}");

    // The limit holds across pages: 10, 10, 5 and no cursor after.
    let limited = all_pages(&table, 10, Some(25)).await;
    assert_eq!(limited.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(limited.concat(), users[..25]);

    // Without a page size a page is one request's worth (all, here).
    let page = table.query::<User>().pk(org("acme")).page(None).await.unwrap();
    assert_eq!((page.items.len(), page.cursor), (50, None));

    // A GSI query pages in index order; its cursor holds the index keys.
    let mut by_age = users.clone();
    by_age.sort_by(|a, b| (a.age, &a.id).cmp(&(b.age, &b.id)));
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = table.query::<User>().index("byage").pk(org("acme")).page_size(8).page(cursor.as_deref()).await.unwrap();
        got.extend(page.items);
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(got, by_age);
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_and_foreign_cursors_are_refused() {
    let (table, _) = filled_table("page_refuse").await;
    let query = || table.query::<User>().pk(org("acme")).page_size(5);
    let cursor = query().page(None).await.unwrap().cursor.expect("a second page");
    // The genuine cursor works.
    assert_eq!(query().page(Some(&cursor)).await.unwrap().items.len(), 5);

    let reason = |result: Result<singletable::Page<User>, Error>| match result {
        Err(Error::Cursor { table: t, reason }) => {
            assert_eq!(t, table.name());
            reason
        }
        other => panic!("expected a cursor error, got {other:?}"),
    };
    let r = reason(query().page(Some("not a cursor!")).await);
    assert!(r.contains("base64url"), "{r}");
    let r = reason(query().page(Some(&cursor[..(cursor.len() - 8) / 4 * 4])).await);
    assert!(r.contains("altered or truncated"), "{r}");
    let mut flipped = cursor.clone().into_bytes();
    let at = flipped.len() / 2;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    let r = reason(query().page(Some(std::str::from_utf8(&flipped).unwrap())).await);
    assert!(r.contains("altered"), "{r}");

    // Foreign: another partition, another order, a scan, an index query.
    for foreign in [
        table.query::<User>().pk(org("other")).page_size(5).page(Some(&cursor)).await,
        query().reverse().page(Some(&cursor)).await,
        table.query::<User>().index("byage").pk(org("acme")).page(Some(&cursor)).await,
    ] {
        let r = reason(foreign);
        assert!(r.contains("issued for another query"), "{r}");
    }
    let scan_cursor = table.scan::<User>().page_size(3).page(None).await.unwrap().cursor.unwrap();
    let r = reason(query().page(Some(&scan_cursor)).await);
    assert!(r.contains("issued for another query"), "{r}");
    let message = query().page(Some(&scan_cursor)).await.unwrap_err().to_string();
    assert!(message.starts_with(&format!("table `{}`: invalid cursor: ", table.name())), "{message}");
    singletable_tests::delete_table(table.client(), table.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scans_return_one_entity_by_stream_page_or_segment() {
    let (table, users) = filled_table("page_scan").await;
    let mut expected: Vec<User> = users.clone();
    expected.extend((0..5).map(|i| user("other", i)));
    expected.sort_by(|a, b| (&a.org, &a.id).cmp(&(&b.org, &b.id)));
    let sorted = |mut v: Vec<User>| {
        v.sort_by(|a, b| (&a.org, &a.id).cmp(&(&b.org, &b.id)));
        v
    };

    assert_eq!(sorted(table.scan::<User>().consistent(true).all().await.unwrap()), expected);
    assert_eq!(table.scan::<Note>().all().await.unwrap().len(), 33);

    // Pages of 12 users, never a note.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = table.scan::<User>().page_size(12).page(cursor.as_deref()).await.unwrap();
        assert!(page.items.len() <= 12);
        paged.extend(page.items);
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(sorted(paged), expected);

    // Parallel scan: the segments together hold every user once.
    let mut segments = Vec::new();
    for s in 0..3 {
        segments.extend(table.scan::<User>().segment(s, 3).page_size(9).stream().try_collect::<Vec<_>>().await.unwrap());
    }
    assert_eq!(sorted(segments), expected);
    assert_eq!(table.scan::<User>().limit(11).all().await.unwrap().len(), 11);
    assert!(matches!(table.scan::<User>().segment(3, 3).all().await, Err(Error::InvalidArgument { argument: "segment", .. })));
    singletable_tests::delete_table(table.client(), table.name()).await;
}
