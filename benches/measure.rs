//! Helpers the interleaved benchmark targets share: the median of their rounds, and
//! pinning a process or thread to a CPU.
// Each target uses what it needs of these.
#![allow(dead_code)]

use std::process::{Command, Stdio};

/// The median of the rounds (the upper one of an even count).
pub fn median<T: PartialOrd>(mut rounds: Vec<T>) -> T {
    rounds.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    rounds.swap_remove(rounds.len() / 2)
}

/// Pins the process `pid` (all its threads) to `cpu`.
pub fn pin_process(pid: u32, cpu: u32) {
    taskset(&["-a", "-cp", &cpu.to_string(), &pid.to_string()]);
}

/// Pins the thread `tid` to `cpu`.
pub fn pin_thread(tid: u32, cpu: u32) {
    taskset(&["-cp", &cpu.to_string(), &tid.to_string()]);
}

fn taskset(args: &[&str]) {
    let status = Command::new("taskset")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("taskset");
    assert!(status.success(), "taskset");
}
