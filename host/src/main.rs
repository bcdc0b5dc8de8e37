//! The `gatehouse` command. A thin edge over the library: the commands live in [`cli`].

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
