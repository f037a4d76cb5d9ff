//! The auditor: verifies the export `clinic` wrote, offline, under the
//! log key and witness key `clinic` published beside it, and prints the
//! disclosure report.
//!
//! `cargo run --release --example auditor [DIR]` (default
//! `target/medledger-clinic`; run the `clinic` example first).

use std::error::Error as StdError;
use std::path::PathBuf;

use medledger::audit::auditor::{run, AuditorArgs};

fn main() -> Result<(), Box<dyn StdError>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/medledger-clinic".into()),
    );
    let export = dir.join("export.json");
    let args_file = dir.join("auditor-args.txt");
    let published = std::fs::read_to_string(&args_file).map_err(|e| {
        format!(
            "cannot read {} ({e}); run `cargo run --release --example clinic` first",
            args_file.display()
        )
    })?;
    let mut args = vec![export.display().to_string()];
    args.extend(published.split_whitespace().map(str::to_owned));
    let args = AuditorArgs::parse(&args)?;
    println!("Verifying {} under", export.display());
    println!("  log key  {}", args.log_key);
    for w in &args.witnesses {
        println!("  witness  {w}");
    }
    let report = run(&args)?;
    println!(
        "Every event's inclusion, every checkpoint's signature and cosignature, and the \
         patient's chain verified (complete: {}).\n",
        report.complete
    );
    print!("{}", report.to_text());
    Ok(())
}
