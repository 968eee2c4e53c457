//! Every log line of the run, captured in memory in production's JSON format, at `debug` and
//! above, so that the `privacy` area can scan what every flow wrote. Nothing is printed.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The captured log: a shared buffer of JSON lines.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl Captured {
    /// Installs a JSON subscriber (the same format as `clinicflow::telemetry`) writing into
    /// a new buffer, at `debug` for clinicflow's own crates and `info` for the rest. Only the
    /// first call in a process installs; later ones get a buffer nothing writes to.
    pub fn install() -> Self {
        let captured = Self::default();
        let filter = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("clinicflow", LevelFilter::DEBUG)
            .with_target("clinicflow_local", LevelFilter::DEBUG);
        let format = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .with_ansi(false)
            .with_writer(captured.clone());
        let _ = tracing_subscriber::registry().with(format).with(filter).try_init();
        captured
    }

    /// Every line captured so far.
    pub fn lines(&self) -> Vec<String> {
        let buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buf).lines().map(str::to_owned).collect()
    }
}

/// One event's writer: appends to the shared buffer.
#[derive(Debug)]
pub struct Line {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl Write for Line {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line { buf: self.buf.clone() }
    }
}
