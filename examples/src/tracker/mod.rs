//! A multi-tenant project tracker in one DynamoDB table.
//!
//! Six entities — [`Organization`](v1::Organization), [`User`](v1::User),
//! [`Invitation`](v1::Invitation) (expiring through time to live),
//! [`Project`](v1::Project) (versioned), [`Task`](v1::Task) and
//! [`Comment`](v1::Comment) — and the access patterns of
//! `examples/README.md`, each a function of [`v1`] (and of [`v2`]).
//!
//! The key design exists in two versions. [`v1`] keys an organization's
//! partitions `ORG#{org_id}`; [`v2`] prefixes every partition of a tenant
//! with `TENANT#{org_id}` (so that an IAM policy's `dynamodb:LeadingKeys`
//! can confine a tenant's credentials to its own items) and adds the index
//! `gsi3` for a new access pattern, tasks by due date. Both modules compile
//! the same `app.rs`: the access patterns do not change with the keys.
//! `singletable migrate` moves a live v1 table to v2; `scripts/demo.sh`
//! shows it.

pub mod v1;
pub mod v2;
pub mod migration;

/// What a new task holds; its number comes from the project.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewTask {
    pub title: String,
    pub assignee: Option<String>,
    pub due: Option<String>,
    pub estimate_hours: Option<f64>,
    pub labels: Vec<String>,
}

/// How much sample data [`v1::seed`] / [`v2::seed`] write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seed {
    /// Tasks in every project.
    pub tasks_per_project: u32,
    /// The time of the first comment, in milliseconds since the epoch.
    pub epoch_ms: u64,
}

impl Seed {
    /// The demo's data: about 900 items.
    pub const DEMO: Seed = Seed { tasks_per_project: 60, epoch_ms: 1_772_323_200_000 };
    /// Enough for every access pattern to have something to find.
    pub const SMALL: Seed = Seed { tasks_per_project: 12, epoch_ms: 1_772_323_200_000 };
}

/// A sample organization.
#[derive(Debug, Clone, Copy)]
pub struct OrgSeed {
    pub id: &'static str,
    pub name: &'static str,
    pub plan: &'static str,
    /// User ids; the first is the owner. A user id `x` has the e-mail
    /// `x@example.com`, so `ann` of acme and `ann` of globex are one person.
    pub users: &'static [&'static str],
    /// Invitees (ids, as users).
    pub invitations: &'static [&'static str],
    /// Project names; the project id is the name in lower case.
    pub projects: &'static [&'static str],
}

/// The sample organizations.
pub const ORGS: &[OrgSeed] = &[
    OrgSeed {
        id: "acme",
        name: "Acme Corp",
        plan: "team",
        users: &["ann", "bob", "cat", "dan"],
        invitations: &["gus", "ivy"],
        projects: &["Apollo", "Gemini", "Mercury", "Skylab", "Voyager"],
    },
    OrgSeed {
        id: "globex",
        name: "Globex",
        plan: "enterprise",
        users: &["eve", "ann", "joe"],
        invitations: &["kim"],
        projects: &["Atlas", "Titan"],
    },
    OrgSeed { id: "initech", name: "Initech", plan: "free", users: &["lou", "mia"], invitations: &[], projects: &["TPS"] },
];

/// Task statuses.
pub const STATUSES: [&str; 3] = ["todo", "doing", "done"];

const VERBS: [&str; 7] = ["Design", "Build", "Test", "Review", "Ship", "Document", "Measure"];
const NOUNS: [&str; 9] = ["the lander", "the login page", "the billing job", "the search index", "the API", "the docs", "the backups", "the dashboard", "the mobile app"];
const COMMENT_TEXT: [&str; 5] = ["On it.", "Blocked on review.", "Done, please check.", "Can we split this?", "Moved to next sprint."];

/// `ann` -> `Ann`.
pub fn display_name(id: &str) -> String {
    let mut c = id.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Sample task number `n` of a project whose organization has `users`:
/// every fifth task is unassigned, every other one is due on a day of
/// March or April 2026.
pub fn new_task(users: &[&str], n: u32) -> NewTask {
    let i = n as usize;
    let day = (n * 11) % 61; // 0..=60: March 1st to April 30th
    let (month, day) = if day < 31 { (3, day + 1) } else { (4, day - 30) };
    NewTask {
        title: format!("{} {}", VERBS[i % VERBS.len()], NOUNS[(i / VERBS.len()) % NOUNS.len()]),
        assignee: (n % 5 != 0).then(|| users[(i * 3 + i / 4) % users.len()].to_string()),
        due: (n % 2 == 0).then(|| format!("2026-{month:02}-{day:02}")),
        estimate_hours: Some(0.5 + f64::from(n % 8)),
        labels: vec![["backend", "frontend", "ops"][i % 3].to_string()],
    }
}

/// Comments on sample task `n`: two on every third task, one on other
/// multiples of five.
pub fn comments_on(n: u32) -> usize {
    if n % 3 == 0 {
        2
    } else if n % 5 == 0 {
        1
    } else {
        0
    }
}

/// What one access pattern returned ([`v1::read_patterns`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The pattern's number in `examples/README.md` (`P3`).
    pub id: &'static str,
    /// What it reads.
    pub pattern: String,
    /// A short account of the result, to print.
    pub line: String,
    /// The full result (`{:#?}` of the items), to compare runs.
    pub detail: String,
}

impl Summary {
    fn new(id: &'static str, pattern: &str, line: impl Into<String>, detail: String) -> Summary {
        Summary { id, pattern: pattern.into(), line: line.into(), detail }
    }
}
