use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The database refused or failed a query.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),

    /// The database was written by a newer Skydeck whose schema this binary
    /// does not know; running on it could corrupt data.
    #[error(
        "the database at {location} has schema version {found}, newer than the \
         newest this Skydeck knows ({known}); upgrade Skydeck, or point it at \
         another database"
    )]
    SchemaTooNew {
        location: String,
        found: i64,
        known: i64,
    },

    /// A connection string we cannot use.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgresql://USER@HOST/DB")]
    UnsupportedUrl(String),

    /// A row holds a value this binary cannot read (hand-edited or corrupt).
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

impl StoreError {
    /// True when the database is temporarily out of reach (pool exhausted or
    /// closed): the caller should retry later rather than give up.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            )
        )
    }
}
