//! The `cutover` binary; everything it does is in the library's `main`.

fn main() -> std::process::ExitCode {
    cutover::main()
}
