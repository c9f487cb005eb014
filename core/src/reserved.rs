//! The names the toolkit itself uses in a user's table: the reserved
//! partition of its own items, and the one attribute it adds to
//! application items during an online migration. `singletable-migrate`
//! writes them; a [`MigratingTable`](crate::MigratingTable) reads them.
//!
//! | item (partition key [`RESERVED_PK`]) | sort key | what |
//! | --- | --- | --- |
//! | the recorded design | [`DESIGN_SK`] | the design the table was last migrated to, as JSON in [`DESIGN_ATTR`] |
//! | the online state | [`ONLINE_SK`] | the phase of an online migration in progress, in [`PHASE_ATTR`] |
//!
//! None of them carries the entity-type attribute nor an index key, so
//! entity queries and sparse indexes never see them.

use std::time::Duration;

/// The partition key value of every item the toolkit keeps in a table.
pub const RESERVED_PK: &str = "#SINGLETABLE";
/// Sort key of the recorded design.
pub const DESIGN_SK: &str = "#DESIGN";
/// Sort key of the state of an online migration in progress.
pub const ONLINE_SK: &str = "#ONLINE";
/// Attribute of the design item holding the design as JSON (a string).
pub const DESIGN_ATTR: &str = "design";
/// Attribute of the online state item holding its phase: `expand`,
/// `cutover` or `contract`.
pub const PHASE_ATTR: &str = "phase";

/// The write token: while an online migration moves an entity to new
/// keys, a [`MigratingTable`](crate::MigratingTable) writes both forms of
/// an item in one transaction and stamps both with a fresh value of this
/// attribute. The stream replay carries a change of the old form over to
/// the new form only if the new form still holds the token the change
/// started from, so it never overwrites a newer write. The contract
/// phase removes the attribute.
pub const WRITE_TOKEN_ATTR: &str = "_st_w";

/// How long a [`MigratingTable`](crate::MigratingTable) trusts the phase
/// it read from the table before reading it again. The online apply waits
/// [`PHASE_SETTLE`] after changing the phase before it relies on every
/// application instance having seen the change.
pub const PHASE_REFRESH: Duration = Duration::from_secs(1);

/// How long the online apply waits after changing the phase before it
/// relies on every application instance having seen it: the refresh
/// interval plus time for a write that started just before to land.
pub const PHASE_SETTLE: Duration = Duration::from_secs(3);
