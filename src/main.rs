//! The `presence-gateway` binary: parse the command line, load config, run.
#![forbid(unsafe_code)]

fn main() {
    println!("presence-gateway: nothing runs yet");
}
