//! The design the golden tests render: three entities sharing
//! partitions, a sparse index, a zero-padded number, TTL and a stream.

use singletable::{StreamView, TableDesign};

#[derive(singletable::Item, Debug, Clone)]
#[item(entity = "User", pk = "ORG#{org_id}", sk = "USER#{user_id}")]
#[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
pub struct User {
    pub org_id: String,
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub admin: bool,
}

#[derive(singletable::Item, Debug, Clone)]
#[item(entity = "Project", pk = "ORG#{org_id}", sk = "PROJECT#{project_id}")]
pub struct Project {
    pub org_id: String,
    pub project_id: String,
    pub title: String,
    pub tags: std::collections::BTreeSet<String>,
}

#[derive(singletable::Item, Debug, Clone)]
#[item(entity = "Task", pk = "ORG#{org_id}", sk = "TASK#{project_id}#{number:06}")]
#[item(index(name = "gsi2", pk = "ASSIGNEE#{assignee}", sk = "TASK#{org_id}|{project_id}#{number:06}"))]
pub struct Task {
    pub org_id: String,
    pub project_id: String,
    pub number: u32,
    pub assignee: Option<String>,
    pub done: bool,
    pub expires_at: Option<i64>,
    pub notes: Vec<String>,
}

/// The fixture design.
pub fn design() -> TableDesign {
    TableDesign::new("app")
        .entity::<User>()
        .entity::<Project>()
        .entity::<Task>()
        .ttl("expires_at")
        .stream(StreamView::NewAndOldImages)
        .build()
        .expect("fixture design")
}

/// A design with one entity and no index, no settings.
pub fn small() -> TableDesign {
    TableDesign::new("tiny").entity::<Project>().build().expect("small design")
}
