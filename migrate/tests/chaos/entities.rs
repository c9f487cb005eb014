//! The `User` entity in the old application version (`v1`) and in the
//! three new versions the chaos scenarios migrate to, and [`UserForm`]:
//! what a writer needs of either version, so one writer loop plays both.

use singletable::{Item, Table, Update};

/// The old application version.
pub mod v1 {
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
        pub n: u64,
    }
}

/// Scenario (a): the table key moves (`ORG#` -> `TENANT#`); gsi1 stays.
pub mod key_move {
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "User", pk = "TENANT#{org}", sk = "USER#{id}")]
    #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
        pub n: u64,
    }
}

/// Scenario (b): the gsi1 template changes (`EMAIL#` -> `MAIL#`); the
/// table keys stay.
pub mod index_template {
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    #[item(index(name = "gsi1", pk = "MAIL#{email}", sk = "USER"))]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
        pub n: u64,
    }
}

/// Scenario (c): v1 plus a new index gsi2 keyed by name.
pub mod new_index {
    #[derive(singletable::Item, Debug, Clone, PartialEq)]
    #[item(entity = "User", pk = "ORG#{org}", sk = "USER#{id}")]
    #[item(index(name = "gsi1", pk = "EMAIL#{email}", sk = "USER"))]
    #[item(index(name = "gsi2", pk = "NAME#{name}", sk = "USER#{id}"))]
    pub struct User {
        pub org: String,
        pub id: String,
        pub email: String,
        pub name: String,
        pub n: u64,
    }
}

/// The mutable part of a user, what the ledger tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub email: String,
    pub name: String,
    pub n: u64,
}

/// One version of `User`, as a writer uses it.
pub trait UserForm: Item<Key = (String, String)> + Clone + Send + Sync + 'static {
    fn build(org: &str, id: &str, state: &UserState) -> Self;
    fn state(&self) -> UserState;
    /// `n += 1`, only if the item exists (the library's update is
    /// conditional on `attribute_exists(pk)`).
    fn increment<'t>(table: &'t Table, key: &(String, String)) -> Update<'t, Self>;
    fn set_name<'t>(table: &'t Table, key: &(String, String), name: &str) -> Update<'t, Self>;
    fn set_email<'t>(table: &'t Table, key: &(String, String), email: &str) -> Update<'t, Self>;
}

macro_rules! user_form {
    ($t:ty) => {
        impl UserForm for $t {
            fn build(org: &str, id: &str, s: &UserState) -> Self {
                Self { org: org.into(), id: id.into(), email: s.email.clone(), name: s.name.clone(), n: s.n }
            }
            fn state(&self) -> UserState {
                UserState { email: self.email.clone(), name: self.name.clone(), n: self.n }
            }
            fn increment<'t>(table: &'t Table, key: &(String, String)) -> Update<'t, Self> {
                table.update::<Self>(key).add(<$t>::fields().n, 1)
            }
            fn set_name<'t>(table: &'t Table, key: &(String, String), name: &str) -> Update<'t, Self> {
                table.update::<Self>(key).set(<$t>::fields().name, name.to_string())
            }
            fn set_email<'t>(table: &'t Table, key: &(String, String), email: &str) -> Update<'t, Self> {
                table.update::<Self>(key).set(<$t>::fields().email, email.to_string())
            }
        }
    };
}

user_form!(v1::User);
user_form!(key_move::User);
user_form!(index_template::User);
user_form!(new_index::User);
