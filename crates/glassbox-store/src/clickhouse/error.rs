//! From the `clickhouse` crate's errors to [`StoreError`], keeping the cause.
//!
//! Unavailable (retry, then spool): the network, timeouts, an HTTP error that is not a
//! ClickHouse exception (a proxy's 502/503, ...), and the ClickHouse exceptions that say "not
//! now" (too many parts or queries, memory limit, replica read-only, Keeper trouble, ...).
//! Rejected (retrying won't help): every other ClickHouse exception (bad SQL, unknown table,
//! authentication), and a row that does not match the table's schema.

use std::time::Duration;

use crate::backend::StoreError;

/// What was being done, for the error's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Ping,
    Migrate,
    InsertSpans,
    InsertUsage,
    ListTraces,
    TraceSpans,
    TraceUsage,
    UsageBy,
    Latency,
    SaveRun,
    GetRun,
    ListRuns,
    RequestStats,
    InsertKey,
    ListKeys,
    UsageByKey,
    InsertEvals,
    ReadEvals,
}

impl Operation {
    fn describe(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Migrate => "migration",
            Self::InsertSpans => "insert into spans",
            Self::InsertUsage => "insert into usage",
            Self::ListTraces => "traces list query",
            Self::TraceSpans => "trace spans query",
            Self::TraceUsage => "trace usage query",
            Self::UsageBy => "usage query",
            Self::Latency => "latency query",
            Self::SaveRun => "workflow run insert",
            Self::GetRun => "workflow run query",
            Self::ListRuns => "workflow runs list query",
            Self::RequestStats => "request stats query",
            Self::InsertKey => "insert into api_keys",
            Self::ListKeys => "api keys query",
            Self::UsageByKey => "usage by key query",
            Self::InsertEvals => "insert of eval results",
            Self::ReadEvals => "eval results query",
        }
    }
}

/// A failed ClickHouse request, with what it was for.
#[derive(Debug, thiserror::Error)]
#[error("ClickHouse {} failed", .operation.describe())]
pub(crate) struct ClickHouseFailure {
    operation: Operation,
    #[source]
    source: clickhouse::error::Error,
}

/// A request that outlived `request_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("ClickHouse {} timed out after {after:?}", .operation.describe())]
pub(crate) struct ClickHouseTimeout {
    operation: Operation,
    after: Duration,
}

/// ClickHouse error codes that describe a passing condition of the server, not the request.
const TRANSIENT_CODES: &[u32] = &[
    3,   // UNEXPECTED_END_OF_FILE (connection cut mid-request)
    159, // TIMEOUT_EXCEEDED
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    203, // NO_FREE_CONNECTION
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY (replica lost Keeper)
    252, // TOO_MANY_PARTS
    279, // ALL_CONNECTION_TRIES_FAILED
    285, // TOO_FEW_LIVE_REPLICAS
    319, // UNKNOWN_STATUS_OF_INSERT
    425, // SYSTEM_ERROR
    439, // CANNOT_SCHEDULE_TASK
    999, // KEEPER_EXCEPTION
];

pub(crate) fn timed_out(operation: Operation, after: Duration) -> StoreError {
    StoreError::Unavailable { source: Box::new(ClickHouseTimeout { operation, after }) }
}

pub(crate) fn from_clickhouse(operation: Operation, error: clickhouse::error::Error) -> StoreError {
    use clickhouse::error::Error;
    let retryable = match &error {
        Error::Network(_) | Error::TimedOut => true,
        Error::BadResponse(message) => match exception_code(message) {
            Some(code) => TRANSIENT_CODES.contains(&code),
            // Not a ClickHouse exception: a proxy or load balancer answered.
            None => true,
        },
        // A body cut short by the connection, or an I/O failure in the transport.
        Error::Other(source) => source.is::<std::io::Error>(),
        _ => false,
    };
    if retryable {
        return StoreError::Unavailable { source: Box::new(ClickHouseFailure { operation, source: error }) };
    }
    let message = format!("ClickHouse {}: {error}", operation.describe());
    StoreError::Rejected { message, source: Some(Box::new(ClickHouseFailure { operation, source: error })) }
}

/// `Code: 60. DB::Exception: ...` -> 60.
pub(crate) fn exception_code(message: &str) -> Option<u32> {
    let rest = message.trim_start().strip_prefix("Code:")?.trim_start();
    let digits: &str = &rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())];
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exception_codes() {
        assert_eq!(exception_code("Code: 60. DB::Exception: Table x does not exist. (UNKNOWN_TABLE)"), Some(60));
        assert_eq!(exception_code("Code: 252"), Some(252));
        assert_eq!(exception_code("502 Bad Gateway"), None);
        assert_eq!(exception_code("Code: x"), None);
    }

    #[test]
    fn classifies_errors() {
        use clickhouse::error::Error;
        let unknown_table = Error::BadResponse("Code: 60. DB::Exception: nope. (UNKNOWN_TABLE)".into());
        assert!(matches!(from_clickhouse(Operation::Ping, unknown_table), StoreError::Rejected { .. }));
        let too_many_parts = Error::BadResponse("Code: 252. DB::Exception: Too many parts".into());
        assert!(from_clickhouse(Operation::Ping, too_many_parts).is_retryable());
        let proxy = Error::BadResponse("503 Service Unavailable".into());
        assert!(from_clickhouse(Operation::Ping, proxy).is_retryable());
        assert!(from_clickhouse(Operation::Ping, Error::TimedOut).is_retryable());
        let mismatch = Error::SchemaMismatch("column x".into());
        assert!(!from_clickhouse(Operation::Ping, mismatch).is_retryable());
    }
}
