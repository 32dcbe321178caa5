//! `eventsource migrate` (the store's schema, as its owner) and `eventsource grants ROLE`
//! (the SQL granting the runtime role what it needs, PostgreSQL).

use crate::args::{GrantsArgs, StoreArgs};
use crate::exit::CliError;
use crate::output;
use eventsource_runtime::operate::OpenedStore;

pub async fn migrate(store: &OpenedStore) -> Result<(), CliError> {
    store
        .migrate()
        .await
        .map_err(CliError::store("cannot migrate the schema"))?;
    // Said alike whether it created every table or found them all there.
    output::text("migrations applied: the schema is up to date\n")
}

/// A PostgreSQL identifier, quoted.
#[cfg(feature = "postgres")]
fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

#[cfg(feature = "postgres")]
pub fn grants(store: &StoreArgs, args: &GrantsArgs) -> Result<(), CliError> {
    let role = args.role.as_str();
    if role.is_empty() || role.len() > 63 || role.contains('\0') {
        return Err(CliError::Usage(format!(
            "invalid role `{}`: 1 to 63 characters, no NUL",
            role.escape_debug()
        )));
    }
    let sql = eventsource_runtime::postgres::RUNTIME_GRANTS
        .replace("__schema__", &quoted(&store.schema))
        .replace("__role__", &quoted(role));
    output::text(&sql)
}

#[cfg(not(feature = "postgres"))]
pub fn grants(_: &StoreArgs, _: &GrantsArgs) -> Result<(), CliError> {
    Err(CliError::Usage(
        "grants are PostgreSQL's: install eventsource with --features cli,postgres".to_owned(),
    ))
}
