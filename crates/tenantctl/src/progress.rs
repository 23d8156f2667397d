//! Progress on stderr while following something: indicatif's bar or spinner on a terminal;
//! anywhere else (CI, a pipe, a log file) plain lines, one per change, never one per poll, so
//! a log shows what happened and a followed run is never silent.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub enum Progress {
    Bar(ProgressBar),
    Lines {
        out: Box<dyn Write + Send>,
        last: Option<String>,
    },
}

impl Progress {
    /// A bar of `template` (indicatif's) if stderr is a terminal, else plain lines on stderr.
    pub fn on_stderr(template: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::lines(Box::new(std::io::stderr()));
        }
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Self::Bar(bar)
    }

    /// Plain lines to `out`.
    pub fn lines(out: Box<dyn Write + Send>) -> Self {
        Self::Lines { out, last: None }
    }

    /// The bar's position out of `length` (a line already carries its counts).
    pub fn set_position(&self, position: u64, length: u64) {
        if let Self::Bar(bar) = self {
            bar.set_length(length);
            bar.set_position(position);
        }
    }

    /// Shows `message`; as a line only when it differs from the last one.
    pub fn set_message(&mut self, message: String) {
        match self {
            Self::Bar(bar) => bar.set_message(message),
            Self::Lines { out, last } => {
                if last.as_deref() != Some(message.as_str()) {
                    // Progress is a courtesy: a closed stderr must not end the follow.
                    let _ = writeln!(out, "{message}");
                    let _ = out.flush();
                    *last = Some(message);
                }
            }
        }
    }

    pub fn finish(self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn off_a_terminal_each_change_is_one_line_and_a_repeat_none() {
        let out = Shared::default();
        let mut progress = Progress::lines(Box::new(out.clone()));
        for message in ["done 0 · state running", "done 0 · state running", "done 1"] {
            progress.set_position(1, 2);
            progress.set_message(message.to_owned());
        }
        progress.finish();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "done 0 · state running\ndone 1\n");
    }
}
