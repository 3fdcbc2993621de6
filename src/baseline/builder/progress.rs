//! Progress bars of the offline tools (`baseline build`, `replay`): on
//! stderr, drawn only when stderr is a terminal, so scripts and CI logs
//! see nothing.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Inputs smaller than this finish before a bar would be worth drawing.
const MIN_BYTES: u64 = 8 << 20;

/// A bar over `total` bytes (a spinner when the size is unknown, as for
/// standard input); hidden for small inputs and when stderr is not a
/// terminal.
pub fn bytes_bar(total: Option<u64>, message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() || total.is_some_and(|t| t < MIN_BYTES) {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style(
                "{msg:>9} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(style("{msg:>9} {spinner} {bytes} ({bytes_per_sec})")),
    };
    bar.with_message(message)
}

/// A bar over `total` items (events), hidden when stderr is not a
/// terminal or `total` is small.
pub fn count_bar(total: u64, message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() || total < 100_000 {
        return ProgressBar::hidden();
    }
    ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        .with_style(style(
            "{msg:>9} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta})",
        ))
        .with_message(message)
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants; a bad one falls back to the default
    // style rather than failing the command.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}
