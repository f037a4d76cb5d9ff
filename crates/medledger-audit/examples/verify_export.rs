//! The auditor's tool: verifies an export file offline and prints the
//! disclosure report; exits with status 1 naming the first bad item.
//!
//! ```text
//! cargo run -p medledger-audit --example verify_export -- EXPORT.json \
//!     --log-key VKEY [--origin ORIGIN] [--hash blake3] [--witness VKEY]... [--quorum K]
//!     [--strict] [--patient HEX] [--allow-uncommitted-tail]
//! ```
//!
//! A patient export must prove the patient's committed head (its last
//! checkpoint issued with a heads entry), so that no newer event of the
//! patient can have been withheld; `--allow-uncommitted-tail` accepts one
//! without, and the report then says the tail is not committed.
//! `--strict` refuses signature lines from keys outside the policy.
//!
//! With `--demo DIR` it instead writes a sample export and the command line
//! that verifies it into DIR (for trying the tool).

use std::process::ExitCode;

use medledger_audit::auditor::{self, AuditorArgs};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, dir] = args.as_slice() {
        if flag == "--demo" {
            return match auditor::write_demo(std::path::Path::new(dir)) {
                Ok(cmd) => {
                    println!("{cmd}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("demo failed: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    let parsed = match AuditorArgs::parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match auditor::run(&parsed) {
        Ok(report) => {
            println!("VERIFIED {}", parsed.export);
            print!("{}", report.to_text());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("VERIFICATION FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
