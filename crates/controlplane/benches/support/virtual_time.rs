//! What every virtual-time benchmark's `main` does: run its simulation on tokio's paused clock
//! (hours of simulated AWS in seconds), and turn its outcome into the exit code.

use std::future::Future;
use std::process::ExitCode;

/// Runs `simulation` on a current-thread runtime whose clock starts paused; `name` prefixes
/// its error, printed on stderr.
pub fn run_paused(name: &str, simulation: impl Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(simulation) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
