//! The operations on a [`Table`](crate::Table), one file per job. Each adds
//! methods to `Table` (and the builders they return); nothing below this
//! layer imports from here.

pub(crate) mod batch;
pub(crate) mod collection;
pub(crate) mod page;
pub(crate) mod provision;
pub(crate) mod query;
pub(crate) mod scan;
pub(crate) mod trace;
pub(crate) mod transact;
pub(crate) mod update;
pub(crate) mod write;
