//! `tracer tracepoint`.
use anyhow::Result;

use crate::cli::TracepointArgs;

pub async fn run(_a: TracepointArgs) -> Result<i32> {
    anyhow::bail!("tracer tracepoint is not implemented yet")
}
