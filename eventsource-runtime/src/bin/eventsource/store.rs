//! Opening the store `--store` names (`operate::OpenedStore`), without creating or migrating
//! anything (but `migrate`).

use eventsource_runtime::operate::OpenedStore;

use crate::args::StoreArgs;
use crate::exit::CliError;

/// The store `--store` (else `EVENTSOURCE_STORE`, else `DATABASE_URL`) names.
fn target_of(args: &StoreArgs) -> Result<String, CliError> {
    args.store
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .filter(|target| !target.trim().is_empty())
        .ok_or_else(|| {
            CliError::Usage(
                "no store: give --store postgres://... or sqlite:..., or set \
                 EVENTSOURCE_STORE or DATABASE_URL"
                    .to_owned(),
            )
        })
}

/// The store the command works on.
pub async fn open(args: &StoreArgs) -> Result<OpenedStore, CliError> {
    Ok(OpenedStore::open(&target_of(args)?, &args.schema).await?)
}

/// Another service's store, named by `--also-store`: an error says which one (its password
/// hidden).
pub async fn open_also(target: &str, schema: &str) -> Result<OpenedStore, CliError> {
    let subject = format!(
        "--also-store {}",
        eventsource_runtime::telemetry::secrets::redact_url(target)
    );
    OpenedStore::open(target, schema)
        .await
        .map_err(|error| CliError::from(error).about(&subject))
}
