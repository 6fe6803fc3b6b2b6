//! The `cutover` binary; everything it does is in the library's `run`.

fn main() -> anyhow::Result<()> {
    cutover::run(std::env::args_os())
}
