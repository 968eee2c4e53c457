//! The `redelivery` area.

use crate::{AreaReport, Mode};

/// Runs the area.
pub async fn run(mode: Mode) -> anyhow::Result<AreaReport> {
    let _ = mode;
    Ok(AreaReport::new("redelivery"))
}
